"""Sign in with Vercel, the product's half: settings that fail closed, the authorize URL
with PKCE, the sealed pending cookie, and ID-token verification (signature against a key
set served over real HTTP, iss, aud, exp/nbf/iat with leeway, nonce)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import unittest.mock
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from dev import serve
from lib.crypto import EncryptionKey, Keyring
from lib.settings import (
    VERCEL_ISSUER,
    VERCEL_JWKS_URL,
    SettingsError,
    SigninConfig,
    load_settings,
)
from lib.web import signin
from lib.web.signin import LEEWAY_S, SigninError, authorization, read_pending, verify_id_token

BASE_ENV = {
    "VERCEL_CLIENT_ID": "oac_x",
    "VERCEL_CLIENT_SECRET": "s",
    "TOKEN_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
    "UPSTASH_REDIS_REST_URL": "https://kv.example",
    "UPSTASH_REDIS_REST_TOKEN": "t",
}
APP = {
    "VERCEL_APP_CLIENT_ID": "cl_app",
    "VERCEL_APP_CLIENT_SECRET": "app-secret",
    "VERCEL_APP_REDIRECT_URI": "https://acme.example/configure",
}
KEYRING = Keyring(EncryptionKey(key_id="t", key=b"t" * 32))


# -- settings ----------------------------------------------------------------------------


def test_production_issuer_and_jwks_are_vercels_and_endpoints_follow_the_urls() -> None:
    settings = load_settings({**BASE_ENV, **APP})
    config = settings.signin
    assert config is not None
    assert config.issuer == VERCEL_ISSUER == "https://vercel.com"
    assert config.jwks_url == VERCEL_JWKS_URL == "https://vercel.com/.well-known/jwks"
    assert config.authorize_url == "https://vercel.com/oauth/authorize"
    assert config.token_url == "https://api.vercel.com/login/oauth/token"
    assert "app-secret" not in repr(settings)


def test_without_the_app_sign_in_is_off_and_names_what_is_missing() -> None:
    settings = load_settings({**BASE_ENV, "VERCEL_APP_CLIENT_ID": "cl_app"})
    assert settings.signin is None
    assert settings.signin_missing == ("VERCEL_APP_CLIENT_SECRET", "VERCEL_APP_REDIRECT_URI")


@pytest.mark.parametrize("host", ["127.0.0.1:4000", "localhost:4000", "[::1]:4000"])
def test_dev_overrides_are_honoured_on_loopback(host: str) -> None:
    env = {
        **BASE_ENV,
        **APP,
        "VERCEL_OIDC_ISSUER_DEV": f"http://{host}",
        "VERCEL_OIDC_JWKS_URL_DEV": f"http://{host}/.well-known/jwks",
    }
    config = load_settings(env).signin
    assert config is not None
    assert config.issuer == f"http://{host}"
    assert config.jwks_url == f"http://{host}/.well-known/jwks"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VERCEL_OIDC_ISSUER_DEV", "https://evil.example"),
        ("VERCEL_OIDC_JWKS_URL_DEV", "https://evil.example/jwks"),
        ("VERCEL_OIDC_JWKS_URL_DEV", "http://127.0.0.1.evil.example/jwks"),
        ("VERCEL_OIDC_ISSUER_DEV", "file:///etc/passwd"),
    ],
)
def test_dev_overrides_off_this_machine_fail_closed(name: str, value: str) -> None:
    env = {**BASE_ENV, **APP, name: value}
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    assert name in str(raised.value)
    assert value not in str(raised.value)


def test_dev_overrides_go_together() -> None:
    with pytest.raises(SettingsError, match="go together"):
        load_settings({**BASE_ENV, **APP, "VERCEL_OIDC_ISSUER_DEV": "http://127.0.0.1:4000"})


# -- the authorize URL and the pending cookie ---------------------------------------------

CONFIG = SigninConfig(
    client_id="cl_app",
    client_secret="app-secret",
    redirect_uri="https://acme.example/configure",
    issuer="https://issuer.example",
    jwks_url="http://127.0.0.1:9/unused",
)


def test_authorization_sends_pkce_s256_state_and_nonce_and_seals_them() -> None:
    url, cookie = authorization(CONFIG, KEYRING, "icfg_abc")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://vercel.com/oauth/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == CONFIG.redirect_uri
    assert query["scope"].split()[0] == "openid"
    for secret in (query["state"], query["nonce"], "icfg_abc"):
        assert secret not in cookie
    pending = read_pending(KEYRING, cookie, query["state"])
    assert pending.configuration_id == "icfg_abc"
    assert pending.nonce == query["nonce"]
    digest = hashlib.sha256(pending.verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]
    assert 43 <= len(pending.verifier) <= 128
    # Two sign-ins never share a state, nonce or verifier.
    url2, _ = authorization(CONFIG, KEYRING, "icfg_abc")
    assert parse_qs(urlsplit(url2).query)["state"][0] != query["state"]


def test_the_pending_cookie_needs_its_state_key_and_time() -> None:
    url, cookie = authorization(CONFIG, KEYRING, "icfg_abc")
    state = parse_qs(urlsplit(url).query)["state"][0]
    other = Keyring(EncryptionKey(key_id="o", key=b"o" * 32))
    cases: list[tuple[Keyring, str | None, str | None, str]] = [
        (KEYRING, cookie, "another-state", "state_mismatch"),
        (KEYRING, cookie, None, "state_mismatch"),
        (KEYRING, None, state, "no_pending"),
        (KEYRING, cookie[:-4] + "AAAA", state, "no_pending"),
        (other, cookie, state, "no_pending"),
    ]
    for keyring, value, given, reason in cases:
        with pytest.raises(SigninError) as raised:
            read_pending(keyring, value, given)
        assert raised.value.reason == reason
    later = time.time() + signin.SIGNIN_TTL_S + 1
    with (
        unittest.mock.patch("lib.web.signin.time.time", return_value=later),
        pytest.raises(SigninError) as raised,
    ):
        read_pending(KEYRING, cookie, state)
    assert raised.value.reason == "expired"


# -- ID tokens -----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b(n: int) -> str:
        return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": b(numbers.n),
        "e": b(numbers.e),
    }


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(
    claims: dict[str, Any], *, key: rsa.RSAPrivateKey = KEY, kid: str = "k1", alg: str = "RS256"
) -> str:
    head = _b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64(sig)}"


class _Jwks:
    def __init__(self) -> None:
        self.keys: list[dict[str, str]] = [_jwk(KEY, "k1")]
        self.fetches = 0

    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        self.fetches += 1
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"keys": self.keys}).encode()]


@pytest.fixture
def jwks() -> Iterator[tuple[_Jwks, SigninConfig]]:
    app = _Jwks()
    signin.reset_jwks_cache()
    server = serve.start(app)
    try:
        yield app, CONFIG.model_copy(update={"jwks_url": f"{server.url}/jwks"})
    finally:
        server.stop()
        signin.reset_jwks_cache()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "https://issuer.example",
        "sub": "user_123",
        "aud": "cl_app",
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "jti": "j",
        "nonce": "n-1",
        "name": "Dev User",
        "preferred_username": "dev-user",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_a_good_token_is_accepted_and_the_key_set_is_cached(jwks: Any) -> None:
    app, config = jwks
    identity = verify_id_token(config, _token(_claims()), "n-1")
    assert (identity.sub, identity.name, identity.username) == ("user_123", "Dev User", "dev-user")
    verify_id_token(config, _token(_claims()), "n-1")
    assert app.fetches == 1


def test_an_unknown_kid_refetches_once(jwks: Any) -> None:
    app, config = jwks
    verify_id_token(config, _token(_claims()), "n-1")
    app.keys.append(_jwk(OTHER, "k2"))  # Vercel rotates its key
    verify_id_token(config, _token(_claims(), key=OTHER, kid="k2"), "n-1")
    assert app.fetches == 2
    with pytest.raises(SigninError) as raised:
        verify_id_token(config, _token(_claims(), kid="k-never"), "n-1")
    assert raised.value.reason == "unknown_key"
    assert app.fetches == 3  # one refetch, no more


def _refused(config: SigninConfig, token: str, nonce: str = "n-1") -> str:
    with pytest.raises(SigninError) as raised:
        verify_id_token(config, token, nonce)
    return raised.value.reason


def test_bad_tokens_are_refused(jwks: Any) -> None:
    _, config = jwks
    now = int(time.time())
    head, body, sig = _token(_claims()).split(".")
    forged_body = _b64(json.dumps(_claims(sub="someone_else")).encode())
    none_head = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    cases = {
        "forged signature": (_token(_claims(), key=OTHER), "bad_signature"),
        "body swapped": (f"{head}.{forged_body}.{sig}", "bad_signature"),
        "alg none": (f"{none_head}.{body}.", "bad_alg"),
        "alg HS256": (_token(_claims(), alg="HS256"), "bad_alg"),
        "wrong issuer": (_token(_claims(iss="https://vercel.example")), "wrong_issuer"),
        "wrong audience": (_token(_claims(aud="cl_other")), "wrong_audience"),
        "audience list without azp": (_token(_claims(aud=["cl_app", "x"])), "wrong_audience"),
        "expired": (_token(_claims(exp=now - LEEWAY_S - 1)), "expired"),
        "no exp": (_token(_claims(exp=None)), "bad_claims"),
        "not yet valid": (_token(_claims(nbf=now + LEEWAY_S + 30)), "not_yet_valid"),
        "issued in the future": (_token(_claims(iat=now + LEEWAY_S + 30)), "not_yet_valid"),
        "wrong nonce": (_token(_claims(nonce="n-2")), "nonce_mismatch"),
        "no nonce": (_token(_claims(nonce=None)), "nonce_mismatch"),
        "no sub": (_token(_claims(sub=None)), "bad_claims"),
        "not a jwt": ("abc", "malformed"),
        "garbage parts": ("a.b.c", "malformed"),
    }
    for label, (token, reason) in cases.items():
        assert _refused(config, token) == reason, label


def test_small_clock_skew_is_tolerated(jwks: Any) -> None:
    _, config = jwks
    now = int(time.time())
    skewed = _claims(exp=now - LEEWAY_S + 5, iat=now + LEEWAY_S - 5, nbf=now + LEEWAY_S - 5)
    assert verify_id_token(config, _token(skewed), "n-1").sub == "user_123"
    listed = _claims(aud=["cl_app", "x"], azp="cl_app")
    assert verify_id_token(config, _token(listed), "n-1").sub == "user_123"


def test_weak_or_foreign_keys_in_the_set_are_ignored(jwks: Any) -> None:
    app, config = jwks
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)
    app.keys = [_jwk(weak, "k1"), {"kty": "EC", "kid": "k1"}, {"kty": "RSA", "kid": 3}]
    assert _refused(config, _token(_claims(), key=weak)) == "unknown_key"
