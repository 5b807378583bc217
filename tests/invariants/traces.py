"""After an uninstall: a scan of every key and value in the KV (issue 11).

Nothing may name the installation, its owner index or hold a sealed token; only the
tombstone is left, keyed by a digest of the id, and it expires after Vercel's 24 h of
webhook retries (https://vercel.com/docs/webhooks) and the 48 h dedupe window.
"""

from __future__ import annotations

from typing import Any

from lib.kv.store import EVENT_DONE_TTL_S, GONE_TTL_S

VERCEL_RETRY_WINDOW_S = 24 * 3600


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def dump(backend: Any) -> dict[str, Any]:
    """Every key of the KV with its content (strings, hashes, sets, sorted sets)."""
    out: dict[str, Any] = {}
    for raw_key in backend.execute([b"KEYS", b"*"]):
        key = _text(raw_key)
        kind = _text(backend.execute([b"TYPE", raw_key]))
        command = {
            "string": [b"GET", raw_key],
            "hash": [b"HGETALL", raw_key],
            "set": [b"SMEMBERS", raw_key],
            "zset": [b"ZRANGE", raw_key, b"0", b"-1"],
            "list": [b"LRANGE", raw_key, b"0", b"-1"],
        }[kind]
        out[key] = _text(backend.execute(command))
    return out


def assert_uninstalled(backend: Any, gone_key: str, configuration_id: str, owner_id: str) -> None:
    """Only the tombstone is left of the installation."""
    everything = dump(backend)
    for key, value in everything.items():
        assert configuration_id not in key, key
        assert configuration_id not in repr(value), key
        assert f":owner:{owner_id}" not in key, key
        assert "v1." not in repr(value), key  # no sealed token or secret
    assert everything.get(gone_key) == "1", sorted(everything)
    ttl = backend.execute([b"TTL", gone_key.encode()])
    assert VERCEL_RETRY_WINDOW_S < EVENT_DONE_TTL_S < int(ttl) <= GONE_TTL_S
