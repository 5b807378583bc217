"""The emulator's notion of "now", injectable and advanceable.

Code expiry (30 minutes) and rate-limit refills must be testable without sleeping, so
every timestamp the emulator hands out comes from here; tests inject a clock or advance
this one through the control API.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Clock"]


class Clock:
    """Wall-clock seconds from `source`, plus an offset that only moves forward."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0
        self._last_ms = 0
        self._lock = threading.Lock()

    def set_source(self, source: Callable[[], float]) -> None:
        self._source = source

    def now(self) -> float:
        return self._source() + self._offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def tick_ms(self) -> int:
        """A millisecond timestamp strictly greater than any tick before it.

        Vercel pages lists by `updatedAt`; equal timestamps would make the emulator's
        `until` cursor skip items, which real pagination would not do to a seeded demo.
        """
        with self._lock:
            self._last_ms = max(self.now_ms(), self._last_ms + 1)
            return self._last_ms

    def reset(self) -> None:
        """Back to the source's time, for a new world (the emulator's reset)."""
        with self._lock:
            self._offset = 0.0
            self._last_ms = 0

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
