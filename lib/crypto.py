"""Sealing secrets at rest, and the HMACs that authenticate what crosses the wire.

Sealed values are AES-256-GCM with a versioned, self-describing format:

    v1.<key id>.<base64url(nonce || ciphertext || tag)>

The key id lets keys rotate: new values are sealed with the current key, old values
still open with the old keys they name. Associated data binds a ciphertext to its
record (e.g. the configuration id), so a sealed token copied onto another
installation's record does not open. Every failure raises `CryptoError`: a caller
can never receive garbage plaintext.

`EncryptionKey` lives here, with the code that uses it; settings only parse it. The
`cryptography` package is imported on first seal or open, not with this module: settings
import this module, and `/health` (which never seals) should not pay for AES at cold
start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CryptoError",
    "EncryptionKey",
    "Keyring",
    "hmac_sha1_hex",
    "sign_token",
    "verify_hmac_sha1",
    "verify_token",
]

_VERSION = "v1"
_NONCE_BYTES = 12


class CryptoError(Exception):
    """A sealed value or signed token is malformed, tampered with, expired or unknown."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CryptoError("not valid base64") from None


class EncryptionKey(BaseModel):
    """One AES-256 key and the id that tags what it sealed, so keys can rotate."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    key_id: str
    key: bytes = Field(repr=False)


class Keyring:
    """The current key (seals and opens) and retired keys (open only)."""

    def __init__(self, current: EncryptionKey, old: Iterable[EncryptionKey] = ()) -> None:
        self._current = current
        self._keys = {k.key_id: k.key for k in (*old, current)}

    def seal(self, plaintext: str | bytes, aad: str) -> str:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(_NONCE_BYTES)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # see module doc

        sealed = AESGCM(self._current.key).encrypt(
            nonce, data, self._aad(self._current.key_id, aad)
        )
        return f"{_VERSION}.{self._current.key_id}.{_b64e(nonce + sealed)}"

    def open(self, sealed: str, aad: str) -> bytes:
        try:
            version, key_id, payload = sealed.split(".")
        except (ValueError, AttributeError):
            raise CryptoError("sealed value is malformed") from None
        if version != _VERSION:
            raise CryptoError(f"unsupported sealed format {version[:8]!r}")
        key = self._keys.get(key_id)
        if key is None:
            raise CryptoError("sealed with an unknown key (was a key retired too early?)")
        raw = _b64d(payload)
        if len(raw) < _NONCE_BYTES + 16:
            raise CryptoError("sealed value is truncated")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(key).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._aad(key_id, aad)
            )
        except InvalidTag:
            raise CryptoError("sealed value failed authentication") from None

    def open_text(self, sealed: str, aad: str) -> str:
        try:
            return self.open(sealed, aad).decode()
        except UnicodeDecodeError:
            raise CryptoError("sealed value is not text") from None

    def needs_reseal(self, sealed: str) -> bool:
        """True when `sealed` was made with a retired key."""
        parts = sealed.split(".")
        return len(parts) != 3 or parts[1] != self._current.key_id

    def derive(self, purpose: str) -> bytes:
        """A subkey for one purpose (state, sessions), so one key never serves two roles."""
        return hmac.new(self._current.key, b"derive:" + purpose.encode(), hashlib.sha256).digest()

    @staticmethod
    def _aad(key_id: str, aad: str) -> bytes:
        return f"{_VERSION}|{key_id}|{aad}".encode()


def hmac_sha1_hex(secret: str | bytes, body: bytes) -> str:
    """Vercel's webhook signature: hex HMAC-SHA1 of the raw body with the client secret."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha1).hexdigest()


def verify_hmac_sha1(secret: str | bytes, body: bytes, signature: str | None) -> bool:
    """Constant-time check of a webhook signature. An empty secret verifies nothing."""
    if not secret or not signature:
        return False
    expected = hmac_sha1_hex(secret, body)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def sign_token(key: bytes, payload: dict[str, Any], ttl_s: int, *, now: float | None = None) -> str:
    """A compact signed, expiring token (state, session, CSRF): base64url(JSON).hmac."""
    issued = int(time.time() if now is None else now)
    body = _b64e(json.dumps({**payload, "exp": issued + ttl_s}, separators=(",", ":")).encode())
    mac = _b64e(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def verify_token(key: bytes, token: str, *, now: float | None = None) -> dict[str, Any]:
    """The payload of a token made by `sign_token`, or `CryptoError`."""
    body, _, mac = token.partition(".")
    if not body or not mac:
        raise CryptoError("token is malformed")
    expected = _b64e(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), mac.encode("utf-8", "replace")):
        raise CryptoError("token signature is invalid")
    try:
        payload = json.loads(_b64d(body))
    except ValueError:
        raise CryptoError("token payload is malformed") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
        raise CryptoError("token payload is malformed")
    if payload["exp"] < (time.time() if now is None else now):
        raise CryptoError("token has expired")
    return payload
