"""Sign in with Vercel for the configuration page: OpenID Connect, authorization code
with PKCE, so knowing who the visitor is never takes an install flow.

Vercel's provider (https://vercel.com/.well-known/oauth-authorization-server): issuer
https://vercel.com, authorization at https://vercel.com/oauth/authorize, code exchange
at https://api.vercel.com/login/oauth/token, S256 PKCE only, RS256 ID tokens whose keys
are at https://vercel.com/.well-known/jwks. ID token claims
(https://vercel.com/docs/sign-in-with-vercel/tokens): iss sub aud exp iat nbf jti nonce,
and name preferred_username email picture with the profile/email scopes.

The browser's half of the flow (PKCE verifier, nonce, state, the configuration asked
for) travels in one short-lived HttpOnly cookie, sealed with the deployment's key, so
no store is written before the sign-in succeeded. The ID token comes straight from the
token endpoint, and is still verified in full (signature against the JWKS, iss, aud,
exp/nbf/iat, nonce) as OpenID Connect Core 1.0 section 3.1.3.7 asks
(https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lib.crypto import CryptoError, Keyring
from lib.settings import SigninConfig

__all__ = [
    "LEEWAY_S",
    "SIGNIN_COOKIE",
    "SIGNIN_TTL_S",
    "Identity",
    "Pending",
    "SigninError",
    "authorization",
    "exchange",
    "read_pending",
    "reset_jwks_cache",
    "verify_id_token",
]

SIGNIN_COOKIE = "vi_signin"
SIGNIN_TTL_S = 10 * 60  # Vercel's authorization codes live 10 minutes too
LEEWAY_S = 60  # clock skew tolerated on exp, nbf and iat
SCOPES = "openid profile"
_AAD = "signin"
_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_JWKS_TTL_S = 60 * 60
_MAX_KEYS = 16  # per key set: Vercel publishes one or two during a rotation
_MAX_SETS = 4  # key sets cached per process (one in practice)
_MAX_JWKS_BYTES = 64 * 1024
_MAX_TOKEN_BYTES = 16 * 1024


class SigninError(Exception):
    """A sign-in that cannot be accepted. `reason` is a short, stable code for the logs
    and the page; the message never carries a token or a code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.configuration_id: str | None = None  # once known, for the audit line


@dataclass(frozen=True)
class Pending:
    """What the browser carries between leaving for Vercel and coming back."""

    configuration_id: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class Identity:
    """Who Vercel says signed in: `sub` is the Vercel user id."""

    sub: str
    name: str | None = None
    username: str | None = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def authorization(config: SigninConfig, keyring: Keyring, configuration_id: str) -> tuple[str, str]:
    """The authorize URL to send the browser to, and the sealed cookie value to set."""
    pending = Pending(
        configuration_id=configuration_id,
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),  # 64 characters of RFC 7636's alphabet
    )
    challenge = _b64url(hashlib.sha256(pending.verifier.encode("ascii")).digest())
    query = urlencode(
        {
            "client_id": config.client_id,
            "redirect_uri": config.redirect_uri,
            "response_type": "code",
            "scope": SCOPES,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    payload = json.dumps(
        {
            "cfg": pending.configuration_id,
            "s": pending.state,
            "n": pending.nonce,
            "v": pending.verifier,
            "exp": int(time.time()) + SIGNIN_TTL_S,
        }
    )
    return f"{config.authorize_url}?{query}", keyring.seal(payload, _AAD)


def cookie_path(config: SigninConfig) -> str:
    """The sign-in cookie goes only to the redirect URI's path."""
    return urlsplit(config.redirect_uri).path or "/"


def read_pending(keyring: Keyring, cookie: str | None, state: str | None) -> Pending:
    """The pending sign-in the callback's `state` belongs to, or `SigninError`."""
    if not cookie:
        raise SigninError("no_pending", "This sign-in was not started here, or it expired.")
    try:
        data = json.loads(keyring.open_text(cookie, _AAD))
        pending = Pending(str(data["cfg"]), str(data["s"]), str(data["n"]), str(data["v"]))
        expires = int(data["exp"])
    except (CryptoError, ValueError, KeyError, TypeError):
        raise SigninError("no_pending", "This sign-in was not started here.") from None
    if expires < time.time():
        raise SigninError("expired", "This sign-in took too long and expired.")
    if not state or not secrets.compare_digest(state.encode(), pending.state.encode()):
        raise SigninError("state_mismatch", "This sign-in does not belong to this browser.")
    return pending


def exchange(config: SigninConfig, code: str, verifier: str) -> str:
    """Trade the authorization code for tokens (client_secret_post) and return the ID token."""
    try:
        response = httpx.post(
            config.token_url,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": config.redirect_uri,
                "code_verifier": verifier,
                "client_id": config.client_id,
                "client_secret": config.client_secret,
            },
            headers={"Accept": "application/json"},
            timeout=_TIMEOUT,
        )
    except httpx.HTTPError:
        raise SigninError("provider_unreachable", "Vercel did not answer the sign-in.") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SigninError("provider_error", "Vercel's answer to the sign-in was not readable.")
    if response.status_code != 200:
        error = str(body.get("error") or "error")
        if error == "invalid_grant":
            raise SigninError(
                "invalid_grant",
                "Vercel refused this sign-in code (it was already used, expired, or did not "
                "match this browser).",
            )
        if error == "invalid_client":
            raise SigninError("invalid_client", "Vercel did not accept this app's credentials.")
        raise SigninError("provider_error", "Vercel refused the sign-in.")
    token = body.get("id_token")
    if not isinstance(token, str) or not token:
        raise SigninError("no_id_token", "Vercel's answer carried no ID token.")
    return token


# -- ID token verification ------------------------------------------------------------


class _KeySet:
    def __init__(self, keys: dict[str, rsa.RSAPublicKey], fetched_at: float) -> None:
        self.keys = keys
        self.fetched_at = fetched_at


_jwks: dict[str, _KeySet] = {}
_jwks_lock = threading.Lock()


def reset_jwks_cache() -> None:
    with _jwks_lock:
        _jwks.clear()


def _fetch_jwks(url: str) -> dict[str, rsa.RSAPublicKey]:
    try:
        response = httpx.get(url, timeout=_TIMEOUT, headers={"Accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > _MAX_JWKS_BYTES:
            raise ValueError("key set too large")
        body = response.json()
    except (httpx.HTTPError, ValueError):
        raise SigninError("jwks_unavailable", "Vercel's signing keys could not be read.") from None
    keys: dict[str, rsa.RSAPublicKey] = {}
    for item in body.get("keys", []) if isinstance(body, dict) else []:
        if len(keys) >= _MAX_KEYS:
            break
        if not isinstance(item, dict) or item.get("kty") != "RSA":
            continue
        if item.get("use", "sig") != "sig" or item.get("alg", "RS256") != "RS256":
            continue
        kid, n, e = item.get("kid"), item.get("n"), item.get("e")
        if not (isinstance(kid, str) and isinstance(n, str) and isinstance(e, str)):
            continue
        try:
            numbers = rsa.RSAPublicNumbers(
                int.from_bytes(_b64url_decode(e), "big"), int.from_bytes(_b64url_decode(n), "big")
            )
            key = numbers.public_key()
        except ValueError:
            continue
        if key.key_size >= 2048:
            keys[kid] = key
    return keys


def _key(url: str, kid: str, now: float) -> rsa.RSAPublicKey:
    """The key `kid` of the set at `url`: cached, refetched once when `kid` is unknown."""
    with _jwks_lock:
        cached = _jwks.get(url)
    if cached is not None and now - cached.fetched_at < _JWKS_TTL_S and kid in cached.keys:
        return cached.keys[kid]
    keys = _fetch_jwks(url)
    with _jwks_lock:
        if url not in _jwks and len(_jwks) >= _MAX_SETS:
            _jwks.pop(next(iter(_jwks)))
        _jwks[url] = _KeySet(keys, now)
    if kid not in keys:
        raise SigninError("unknown_key", "The ID token was signed with a key Vercel does not list.")
    return keys[kid]


def verify_id_token(
    config: SigninConfig, token: str, nonce: str, *, now: float | None = None
) -> Identity:
    """The identity in `token` once its signature and claims check out, else `SigninError`."""
    now = time.time() if now is None else now
    if len(token) > _MAX_TOKEN_BYTES or token.count(".") != 2:
        raise SigninError("malformed", "The ID token is not a JSON Web Token.")
    head_b64, body_b64, sig_b64 = token.split(".")
    try:
        header = json.loads(_b64url_decode(head_b64))
        claims = json.loads(_b64url_decode(body_b64))
        signature = _b64url_decode(sig_b64)
    except (ValueError, UnicodeDecodeError):
        raise SigninError("malformed", "The ID token is not a JSON Web Token.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise SigninError("malformed", "The ID token is not a JSON Web Token.")
    if header.get("alg") != "RS256":
        raise SigninError("bad_alg", "The ID token is not signed with RS256.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SigninError("unknown_key", "The ID token names no signing key.")
    key = _key(config.jwks_url, kid, now)
    try:
        key.verify(
            signature,
            f"{head_b64}.{body_b64}".encode("ascii"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, UnicodeEncodeError):
        raise SigninError("bad_signature", "The ID token's signature is not Vercel's.") from None
    _check_claims(config, claims, nonce, now)
    return Identity(
        sub=claims["sub"],
        name=claims.get("name") if isinstance(claims.get("name"), str) else None,
        username=(
            claims.get("preferred_username")
            if isinstance(claims.get("preferred_username"), str)
            else None
        ),
    )


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SigninError("bad_claims", f"The ID token has no valid '{name}'.")
    return float(value)


def _check_claims(config: SigninConfig, claims: dict[str, Any], nonce: str, now: float) -> None:
    if claims.get("iss") != config.issuer:
        raise SigninError("wrong_issuer", "The ID token was not issued by Vercel.")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if config.client_id not in audiences:
        raise SigninError("wrong_audience", "The ID token was issued for another application.")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != config.client_id:
        raise SigninError("wrong_audience", "The ID token was issued for another application.")
    if _number(claims, "exp") <= now - LEEWAY_S:
        raise SigninError("expired", "The sign-in has expired.")
    if "nbf" in claims and _number(claims, "nbf") > now + LEEWAY_S:
        raise SigninError("not_yet_valid", "The ID token is not valid yet.")
    if _number(claims, "iat") > now + LEEWAY_S:
        raise SigninError("not_yet_valid", "The ID token is not valid yet.")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not secrets.compare_digest(
        token_nonce.encode(), nonce.encode()
    ):
        raise SigninError("nonce_mismatch", "The ID token does not belong to this sign-in.")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise SigninError("bad_claims", "The ID token names no user.")
