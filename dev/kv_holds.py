"""Holds: park chosen KV gateway requests until a test lets them go, to force interleavings.

A hold matches requests by command name, by a glob over the command's keys and by endpoint,
and parks up to `count` of them *before they run*. The test waits until a request is parked
(`Hold.wait_held`), does whatever must happen in between, then `release()`s it, and the
parked request runs as if nothing had happened. A parked request that is not released within
`timeout_seconds` fails with a 504 without running, so a broken test never hangs; a cancelled
hold (`Gateway.clear_holds`) fails its parked requests with a 503, also without running.

The keys a command names, for `key_glob`: a script's KEYS (EVAL, EVALSHA and their _RO
forms), every argument of DEL/UNLINK/EXISTS/MGET/TOUCH, every other argument of MSET, and
otherwise the first argument (the key of nearly every Redis command). The glob is Python's
`fnmatch` (`*`, `?`, `[abc]`, `[!abc]`), case-sensitive, over the keys as UTF-8 text.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from fnmatch import fnmatchcase
from typing import Any

__all__ = ["DEFAULT_HOLD_TIMEOUT_S", "Hold", "HoldMatch", "command_keys"]

DEFAULT_HOLD_TIMEOUT_S = 10.0
_MAX_TIMEOUT_S = 600.0
_PATHS = ("/", "/pipeline", "/multi-exec")
_SCRIPTS = frozenset({b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO"})
_ALL_KEYS = frozenset({b"DEL", b"UNLINK", b"EXISTS", b"MGET", b"TOUCH"})


def command_keys(command: Sequence[bytes]) -> list[bytes]:
    """The keys `command` names, as `key_glob` sees them (see the module docstring)."""
    name = command[0].upper() if command else b""
    if name in _SCRIPTS:
        try:
            numkeys = int(command[2])
        except (IndexError, ValueError):
            return []
        return list(command[3 : 3 + max(numkeys, 0)])
    if name in _ALL_KEYS:
        return list(command[1:])
    if name == b"MSET":
        return list(command[1::2])
    return list(command[1:2])


@dataclass(frozen=True)
class HoldMatch:
    """Which requests a hold parks; a field left `None` matches anything. A request matches
    when one of its commands has the name and a key matching the glob (a pipeline or a
    transaction is parked whole), and it came to `path` ("/", "/pipeline", "/multi-exec";
    path-style commands count as "/")."""

    command: str | None = None
    key_glob: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"match.{field.name} must be a non-empty string or null")
        if self.path is not None and self.path not in _PATHS:
            raise ValueError(f"match.path must be one of {', '.join(_PATHS)}")

    @classmethod
    def from_json(cls, data: Any) -> HoldMatch:
        if not isinstance(data, dict):
            raise ValueError("match must be a JSON object")
        unknown = sorted(set(data) - {field.name for field in fields(cls)})
        if unknown:
            raise ValueError(f"unknown match field(s): {', '.join(unknown)}")
        return cls(**data)

    def matches(self, path: str, commands: Sequence[Sequence[bytes]]) -> bool:
        if self.path is not None and path != self.path:
            return False
        name = self.command.upper().encode() if self.command else None
        for command in commands:
            if name is not None and command[0].upper() != name:
                continue
            if self.key_glob is None or any(
                fnmatchcase(key.decode("utf-8", "replace"), self.key_glob)
                for key in command_keys(command)
            ):
                return True
        return False


class Hold:
    """One hold; thread-safe. Create it with `Gateway.hold(…)` or `POST /_gateway/holds`."""

    def __init__(self, hold_id: str, match: HoldMatch, count: int, timeout_seconds: float) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be an integer >= 1")
        if (
            isinstance(timeout_seconds, bool)
            or not isinstance(timeout_seconds, int | float)
            or not math.isfinite(timeout_seconds)
            or not 0 < timeout_seconds <= _MAX_TIMEOUT_S
        ):
            raise ValueError(f"timeout_seconds must be a number in (0, {_MAX_TIMEOUT_S:g}]")
        self.id = hold_id
        self.match = match
        self.count = count
        self.timeout_seconds = float(timeout_seconds)
        self._cond = threading.Condition()
        self._caught = self._held = self._timed_out = 0
        self._released = self._cancelled = False

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    @property
    def held(self) -> int:
        """How many requests are parked right now."""
        with self._cond:
            return self._held

    def release(self) -> None:
        """Let every parked request run, and park no more."""
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """Fail every parked request (without running it), and park no more."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def wait_held(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Wait until `n` requests are parked at once; False if that took over `timeout` s."""
        with self._cond:
            return self._cond.wait_for(lambda: self._held >= n, timeout)

    def state(self) -> dict[str, Any]:
        """What `GET /_gateway/holds/<id>` answers."""
        with self._cond:
            return {
                "id": self.id,
                "match": asdict(self.match),
                "count": self.count,
                "timeout_seconds": self.timeout_seconds,
                "caught": self._caught,
                "held": self._held,
                "timed_out": self._timed_out,
                "released": self._released,
                "cancelled": self._cancelled,
            }

    def claim(self, path: str, commands: Sequence[Sequence[bytes]]) -> bool:
        """Whether this hold parks the request (then the caller must `park()`)."""
        with self._cond:
            if self._released or self._cancelled or self._caught >= self.count:
                return False
            if not self.match.matches(path, commands):
                return False
            self._caught += 1
            self._held += 1
            self._cond.notify_all()
            return True

    def park(self) -> str:
        """Block a claimed request: "released", "cancelled" or "timed out"."""
        deadline = time.monotonic() + self.timeout_seconds
        with self._cond:
            try:
                while not (self._released or self._cancelled):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._timed_out += 1
                        return "timed out"
                    self._cond.wait(left)
                return "released" if self._released else "cancelled"
            finally:
                self._held -= 1
                self._cond.notify_all()
