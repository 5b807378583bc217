"""A point in time by which a unit of work must be done.

A Vercel Function has a hard time limit and Vercel gives a webhook 30 s to answer, so
every caller starts a `Deadline` at its entry point and hands it down. Whatever waits —
an HTTP timeout, a retry backoff, a pagination loop — asks the deadline how long it may
wait instead of carrying its own budget, so budgets never add up past the limit.

It measures on a monotonic clock (wall-clock jumps must not stretch or shrink a budget);
the clock is injectable so tests can move time by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["Clock", "Deadline"]

Clock = Callable[[], float]


class Deadline:
    """Expires `seconds` after creation; `math.inf` never expires."""

    __slots__ = ("_at", "_clock")

    def __init__(self, seconds: float, *, clock: Clock = time.monotonic) -> None:
        if math.isnan(seconds):
            raise ValueError("Deadline seconds must be a number, not NaN")
        self._clock = clock
        self._at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._at - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def within(self, seconds: float) -> Deadline:
        """The earlier of this deadline and `seconds` from now: a sub-budget for one step
        (say, a webhook handler keeping a margin before Vercel's 30 s cut-off)."""
        return Deadline(min(seconds, self._at - self._clock()), clock=self._clock)

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f}s)"
