"""The emulated Sign in with Vercel's signing keys: RS256 JWTs and the JWKS that verifies them.

Vercel signs ID tokens with RS256 and publishes the public keys at
https://vercel.com/.well-known/jwks (`jwks_uri` and `id_token_signing_alg_values_supported`
of https://vercel.com/.well-known/oauth-authorization-server). The emulator makes one RSA
key when it starts and names it with a `kid`; rotating it (control API) puts a new `kid`
in every later token, so a client that caches the JWKS must refetch it on an unknown key
id. JWTs are assembled by hand (RFC 7515 compact form) so no JWT library is needed.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["SigningKeys", "b64url"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKeys:
    """The current signing key, plus (after a rotation that retains it) the previous one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self.rotate(retain_previous=False)

    @property
    def current_kid(self) -> str:
        with self._lock:
            return self._keys[0][0]

    def kids(self) -> list[str]:
        with self._lock:
            return [kid for kid, _ in self._keys]

    def rotate(self, *, retain_previous: bool) -> str:
        """A new current key; the old one stays published only with `retain_previous`."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = "emu-" + secrets.token_hex(8)
        with self._lock:
            self._keys = [(kid, key), *self._keys[:1]] if retain_previous else [(kid, key)]
        return kid

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (RFC 7517)."""
        with self._lock:
            keys = list(self._keys)
        out = []
        for kid, key in keys:
            numbers = key.public_key().public_numbers()
            out.append(
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": kid,
                    "n": _uint(numbers.n),
                    "e": _uint(numbers.e),
                }
            )
        return {"keys": out}

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS of `claims`, RS256 with the current key."""
        with self._lock:
            kid, key = self._keys[0]
        header = {"alg": "RS256", "typ": "JWT", "kid": kid}
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"
