"""Identifiers shaped like Vercel's (`prj_…`, `icfg_…`, `team_…`), and opaque secrets."""

from __future__ import annotations

import hashlib
import random
import secrets
import string

__all__ = ["digest", "new_id", "new_secret"]

_ALPHABET = string.ascii_letters + string.digits

# Vercel's lengths, from the spec examples: prj_XLKmu1DyR1eY7zq8UgeRKbA7yVLA,
# icfg_cuwj0AdCdH3BwWT4LPijCC7t, team_nLlpyC6RE1qxydlFKbrxDlud, kr1PsOIzqEL5Xg6M4VZcZosf.
_LENGTHS = {"prj_": 28, "icfg_": 24, "team_": 24, "dpl_": 28, "": 24}


def new_id(prefix: str = "", rng: random.Random | None = None, length: int | None = None) -> str:
    """A random id; pass a seeded `rng` for ids that are stable across resets."""
    size = length if length is not None else _LENGTHS.get(prefix, 24)
    if rng is None:
        return prefix + _random_chars(size)
    return prefix + "".join(rng.choice(_ALPHABET) for _ in range(size))


# The largest multiple of the alphabet's size in a byte: bytes at or above it are
# dropped, so every character stays equally likely (as with one secrets.choice each).
_CUTOFF = 256 - 256 % len(_ALPHABET)


def _random_chars(size: int) -> str:
    """`size` uniform characters of the alphabet from one urandom read, not one per
    character (a create stores several vars, each with an id and a ciphertext)."""
    out: list[str] = []
    while len(out) < size:
        out += [_ALPHABET[b % len(_ALPHABET)] for b in secrets.token_bytes(size * 2) if b < _CUTOFF]
    return "".join(out[:size])


def new_secret(nbytes: int = 24) -> str:
    """An unguessable token (access tokens, OAuth codes)."""
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """What the emulator stores instead of a token or code: it never keeps them in clear."""
    return hashlib.sha256(secret.encode()).hexdigest()
