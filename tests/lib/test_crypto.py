import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.crypto import (
    CryptoError,
    EncryptionKey,
    Keyring,
    hmac_sha1_hex,
    sign_token,
    verify_hmac_sha1,
    verify_token,
)

K1 = EncryptionKey(key_id="k1", key=bytes(range(32)))
K2 = EncryptionKey(key_id="k2", key=bytes(range(1, 33)))


def test_seal_and_open_round_trip() -> None:
    ring = Keyring(K1)
    sealed = ring.seal("vca_token", aad="token:icfg_1")
    assert sealed.startswith("v1.k1.")
    assert "vca_token" not in sealed
    assert ring.open_text(sealed, aad="token:icfg_1") == "vca_token"


def test_each_seal_is_different() -> None:
    ring = Keyring(K1)
    assert ring.seal("x", aad="a") != ring.seal("x", aad="a")


def test_associated_data_binds_ciphertext_to_its_record() -> None:
    ring = Keyring(K1)
    sealed = ring.seal("vca_token", aad="token:icfg_1")
    with pytest.raises(CryptoError, match="authentication"):
        ring.open(sealed, aad="token:icfg_2")


def test_rotation_opens_old_and_seals_with_current() -> None:
    old_ring = Keyring(K1)
    sealed_old = old_ring.seal("secret", aad="a")
    ring = Keyring(K2, old=[K1])
    assert ring.open_text(sealed_old, aad="a") == "secret"
    assert ring.needs_reseal(sealed_old)
    fresh = ring.seal("secret", aad="a")
    assert fresh.startswith("v1.k2.")
    assert not ring.needs_reseal(fresh)


def test_wrong_key_raises_typed_error() -> None:
    sealed = Keyring(K1).seal("secret", aad="a")
    with pytest.raises(CryptoError, match="unknown key"):
        Keyring(K2).open(sealed, aad="a")
    # Same key id but different key material: authentication fails, no garbage.
    impostor = EncryptionKey(key_id="k1", key=bytes(32))
    with pytest.raises(CryptoError, match="authentication"):
        Keyring(impostor).open(sealed, aad="a")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1],
        lambda s: s[:20],
        lambda s: "v2" + s[2:],
        lambda s: s.replace(".", "", 1),
        lambda s: s + "A",
        lambda s: "",
        lambda s: "v1.k1.!!!!",
    ],
)
def test_truncated_or_malformed_input_raises(mangle: object) -> None:
    ring = Keyring(K1)
    sealed = ring.seal("secret", aad="a")
    with pytest.raises(CryptoError):
        ring.open(mangle(sealed), aad="a")  # type: ignore[operator]


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=1, max_value=255))
def test_any_single_byte_flip_is_detected(position: int, flip: int) -> None:
    ring = Keyring(K1)
    sealed = ring.seal("a secret worth protecting", aad="a")
    head, payload = sealed.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[position % len(raw)] ^= flip
    mutated = head + "." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(CryptoError):
        ring.open(mutated, aad="a")


def test_hmac_sha1_matches_vercel_signature_format() -> None:
    sig = hmac_sha1_hex("secret", b'{"a":1}')
    assert len(sig) == 40
    assert set(sig) <= set(string.hexdigits.lower())
    assert verify_hmac_sha1("secret", b'{"a":1}', sig)


@pytest.mark.parametrize(
    ("secret", "body", "sig"),
    [
        ("secret", b'{"a":2}', None),  # different body
        ("other", b'{"a":1}', None),  # wrong secret
        ("", b'{"a":1}', None),  # empty secret never verifies
    ],
)
def test_hmac_rejections(secret: str, body: bytes, sig: str | None) -> None:
    good = hmac_sha1_hex("secret", b'{"a":1}')
    assert not verify_hmac_sha1(secret, body, sig or good)


def test_hmac_rejects_mangled_signatures() -> None:
    body = b'{"a":1}'
    good = hmac_sha1_hex("secret", body)
    for bad in (good.upper(), good[:-1], "sha1=" + good, "", " " + good, good + "0", "é" * 40):
        assert not verify_hmac_sha1("secret", body, bad)
    assert not verify_hmac_sha1("secret", body, None)


def test_signed_token_round_trip_and_expiry() -> None:
    key = b"k" * 32
    token = sign_token(key, {"cfg": "icfg_1"}, ttl_s=60, now=1000)
    assert verify_token(key, token, now=1059)["cfg"] == "icfg_1"
    with pytest.raises(CryptoError, match="expired"):
        verify_token(key, token, now=1061)


def test_signed_token_rejects_tampering_and_other_keys() -> None:
    key = b"k" * 32
    token = sign_token(key, {"cfg": "icfg_1"}, ttl_s=60)
    body, mac = token.split(".")
    forged_body = (
        base64.urlsafe_b64encode(b'{"cfg":"icfg_2","exp":9999999999}').decode().rstrip("=")
    )
    for bad in (f"{forged_body}.{mac}", token[:-2], "nodot", f"{body}.", "." + mac):
        with pytest.raises(CryptoError):
            verify_token(key, bad)
    with pytest.raises(CryptoError):
        verify_token(b"x" * 32, token)


def test_derived_keys_differ_by_purpose() -> None:
    ring = Keyring(K1)
    assert ring.derive("state") != ring.derive("session")
    assert ring.derive("state") == Keyring(K1).derive("state")
