"""Who is looking at a configuration page: a short-lived session bound to one installation.

Vercel opens the Configuration URL with `configurationId`, which proves nothing (anyone can
type it). A session is issued only after Sign in with Vercel said who the visitor is and
that person installed the configuration or belongs to the team that owns it
(`api/configure.py`); it may carry their Vercel username, to build links to their
personal account's pages on Vercel. Sessions and CSRF tokens are HMAC-signed with keys
derived from the encryption key, so no session store is needed.
"""

from __future__ import annotations

import hashlib
import secrets

from lib.crypto import CryptoError, Keyring, sign_token, verify_token

__all__ = [
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "SESSION_TTL_S",
    "csrf_token",
    "issue",
    "username",
    "verify",
    "verify_csrf",
]

SESSION_COOKIE = "vi_session"
SESSION_TTL_S = 30 * 60
CSRF_FIELD = "csrf"


def issue(
    keyring: Keyring,
    configuration_id: str,
    *,
    username: str | None = None,
    now: float | None = None,
) -> str:
    """A session cookie value for one configuration, valid `SESSION_TTL_S` seconds."""
    payload = {"cfg": configuration_id, "sid": secrets.token_urlsafe(12)}
    if username:
        payload["u"] = username
    return sign_token(keyring.derive("session"), payload, SESSION_TTL_S, now=now)


def username(keyring: Keyring, cookie: str | None) -> str | None:
    """The Vercel username a live session carries, if any."""
    try:
        payload = verify_token(keyring.derive("session"), cookie or "")
    except CryptoError:
        return None
    value = payload.get("u")
    return value if isinstance(value, str) else None


def verify(
    keyring: Keyring, cookie: str | None, configuration_id: str, *, now: float | None = None
) -> str | None:
    """The session id when `cookie` is a live session for exactly this configuration."""
    if not cookie:
        return None
    try:
        payload = verify_token(keyring.derive("session"), cookie, now=now)
    except CryptoError:
        return None
    if payload.get("cfg") != configuration_id or not isinstance(payload.get("sid"), str):
        return None
    return str(payload["sid"])


def csrf_token(keyring: Keyring, session_id: str, *, now: float | None = None) -> str:
    """A form token tied to one session (a stolen form token is useless without its cookie)."""
    return sign_token(keyring.derive("csrf"), {"s": _h(session_id)}, SESSION_TTL_S, now=now)


def verify_csrf(
    keyring: Keyring, token: str | None, session_id: str, *, now: float | None = None
) -> bool:
    """True when `token` was issued for this session and has not expired."""
    if not token:
        return False
    try:
        payload = verify_token(keyring.derive("csrf"), token, now=now)
    except CryptoError:
        return False
    return secrets.compare_digest(str(payload.get("s", "")), _h(session_id))


def _h(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]
