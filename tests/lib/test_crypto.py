import base64
import hashlib
import hmac
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


# ------------------------------------------------- what earlier releases stored must still read

# Recorded from this implementation: installations in KV hold values sealed like this one,
# and live states and sessions carry tokens signed under derived keys. A change of format,
# associated data or derivation would strand every one of them.
RECORDED_SEALED = "v1.k1.Ny_9y9KSeonyWu90BGgYhUBPFvR4PEPwULZGOP9VuZhTMAth1JLXSg"
RECORDED_DERIVED = "fc467bc55ad09cab9a0137ad2a23f3ac9f45ee110e4b35658ab94271f9de76cf"
RECORDED_TOKEN = "eyJjZmciOiJpY2ZnXzEiLCJleHAiOjEwNjB9.sv6jy1viq_dYiYft7bB780jH95Xg4j_CQzcALWvrJxs"


def test_a_value_sealed_by_an_earlier_release_still_opens() -> None:
    assert Keyring(K1).open_text(RECORDED_SEALED, aad="token:icfg_1") == "vca_recorded"
    # ... also once k1 is retired, and never under another record's associated data.
    assert Keyring(K2, old=[K1]).open_text(RECORDED_SEALED, aad="token:icfg_1") == "vca_recorded"
    with pytest.raises(CryptoError):
        Keyring(K1).open(RECORDED_SEALED, aad="token:icfg_2")


def test_derived_keys_are_stable_across_releases() -> None:
    assert Keyring(K1).derive("install-state").hex() == RECORDED_DERIVED
    # Derived from the current key only: a retired key derives nothing.
    assert Keyring(K2, old=[K1]).derive("install-state").hex() != RECORDED_DERIVED


def test_signed_tokens_are_stable_across_releases() -> None:
    assert sign_token(b"k" * 32, {"cfg": "icfg_1"}, ttl_s=60, now=1000) == RECORDED_TOKEN
    assert verify_token(b"k" * 32, RECORDED_TOKEN, now=1000) == {"cfg": "icfg_1", "exp": 1060}


def test_hmac_sha1_known_answer() -> None:
    # RFC 2202-style vector (https://en.wikipedia.org/wiki/HMAC#Examples); a bytes secret
    # is the same key as its text.
    body = b"The quick brown fox jumps over the lazy dog"
    assert hmac_sha1_hex("key", body) == "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
    assert hmac_sha1_hex(b"key", body) == "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
    assert verify_hmac_sha1(b"key", body, "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9")


# ------------------------------------------------------------ every refusal says which one


def _sealed_with(payload: bytes, key_id: str = "k1") -> str:
    return f"v1.{key_id}." + base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sealed", "reason"),
    [
        ("v1.k1", "sealed value is malformed"),
        ("v1.k1.a.b", "sealed value is malformed"),
        ("v2.k1.AAAA", "unsupported sealed format 'v2'"),
        # Only a prefix of an unknown version is echoed into the message.
        ("v123456789abc.k1.AAAA", "unsupported sealed format 'v1234567'"),
        ("v1.k9.AAAA", "sealed with an unknown key (was a key retired too early?)"),
        ("v1.k1.A", "not valid base64"),
        (_sealed_with(bytes(27)), "sealed value is truncated"),
        (_sealed_with(bytes(28)), "sealed value failed authentication"),
    ],
)
def test_open_says_why_it_refuses(sealed: str, reason: str) -> None:
    with pytest.raises(CryptoError) as refused:
        Keyring(K1).open(sealed, aad="a")
    assert str(refused.value) == reason


def test_an_empty_secret_seals_and_opens() -> None:
    # The shortest sealed value: nonce and tag only (12 + 16 bytes).
    ring = Keyring(K1)
    assert ring.open(ring.seal(b"", aad="a"), aad="a") == b""


def test_bytes_and_text_seal_alike() -> None:
    ring = Keyring(K1)
    assert ring.open(ring.seal(b"\x00\xffraw", aad="a"), aad="a") == b"\x00\xffraw"
    assert ring.open(ring.seal("tëxt", aad="a"), aad="a") == "tëxt".encode()


def test_open_text_refuses_bytes_that_are_not_text() -> None:
    ring = Keyring(K1)
    with pytest.raises(CryptoError) as refused:
        ring.open_text(ring.seal(b"\xff\xfe", aad="a"), aad="a")
    assert str(refused.value) == "sealed value is not text"


@pytest.mark.parametrize("length", range(0, 40))
def test_every_length_round_trips_through_unpadded_base64(length: int) -> None:
    ring = Keyring(K1)
    data = bytes(range(length))
    sealed = ring.seal(data, aad="a")
    assert "=" not in sealed
    assert ring.open(sealed, aad="a") == data


def test_the_current_key_wins_over_a_retired_one_of_the_same_id() -> None:
    # A key re-issued under an old id: values sealed now must open with what sealed them.
    replaced = EncryptionKey(key_id="k1", key=bytes(32))
    ring = Keyring(K1, old=[replaced])
    assert ring.open_text(ring.seal("x", aad="a"), aad="a") == "x"


def test_malformed_values_need_resealing() -> None:
    ring = Keyring(K1)
    for value in ("", "garbage", "v1.k1", "v1.k1.a.b"):
        assert ring.needs_reseal(value)


def test_an_empty_secret_verifies_nothing_not_even_its_own_signature() -> None:
    body = b'{"a":1}'
    assert not verify_hmac_sha1("", body, hmac_sha1_hex("", body))
    assert not verify_hmac_sha1(b"", body, hmac_sha1_hex(b"", body))


def test_signatures_that_are_not_text_are_refused_not_raised() -> None:
    # A header value decoded from bytes can carry lone surrogates.
    body = b'{"a":1}'
    assert not verify_hmac_sha1("secret", body, "\ud800" * 40)
    token = sign_token(b"k" * 32, {"a": 1}, ttl_s=60)
    with pytest.raises(CryptoError) as refused:
        verify_token(b"k" * 32, token.split(".")[0] + ".\ud800")
    assert str(refused.value) == "token signature is invalid"


def _signed_body(key: bytes, body: bytes) -> str:
    text = base64.urlsafe_b64encode(body).decode().rstrip("=")
    mac = base64.urlsafe_b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest())
    return f"{text}.{mac.decode().rstrip('=')}"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("nodot", "token is malformed"),
        ("body.", "token is malformed"),
        (".mac", "token is malformed"),
        ("body.mac", "token signature is invalid"),
        (_signed_body(b"k" * 32, b"not json"), "token payload is malformed"),
        (_signed_body(b"k" * 32, b"[1]"), "token payload is malformed"),
        (_signed_body(b"k" * 32, b'{"exp":"2000"}'), "token payload is malformed"),
        (_signed_body(b"k" * 32, b'{"a":1}'), "token payload is malformed"),
        (_signed_body(b"k" * 32, b'{"exp":999}'), "token has expired"),
    ],
)
def test_verify_token_says_why_it_refuses(token: str, reason: str) -> None:
    with pytest.raises(CryptoError) as refused:
        verify_token(b"k" * 32, token, now=1000)
    assert str(refused.value) == reason


def test_a_token_is_valid_through_its_last_second_on_the_real_clock() -> None:
    key = b"k" * 32
    assert verify_token(key, sign_token(key, {"a": 1}, ttl_s=60, now=1000), now=1060)["a"] == 1
    fresh = sign_token(key, {"a": 1}, ttl_s=60)  # the real clock on both sides
    assert verify_token(key, fresh)["a"] == 1
    with pytest.raises(CryptoError, match="expired"):
        verify_token(key, sign_token(key, {"a": 1}, ttl_s=-5))


def test_a_sealed_value_whose_text_ends_in_x_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only base64's padding is stripped from a sealed value's text: "X" is a letter of
    the alphabet like any other (found with a fixed nonce: 650 bytes of "x")."""
    monkeypatch.setattr("os.urandom", lambda n: bytes(n))
    ring = Keyring(K1)
    sealed = ring.seal("x" * 650, aad="a")
    assert sealed.endswith("X")
    assert ring.open_text(sealed, aad="a") == "x" * 650
