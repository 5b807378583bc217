"""Per-route token buckets and Vercel's 429 (vercel-api.md §8).

Vercel limits per endpoint ("you could continue using another endpoints even if some of
them give you this error"); its published numbers were not found, so the buckets are
configured by tests. The 429 body is the documented one, with `Retry-After` in seconds.
`X-RateLimit-*` headers are UNVERIFIED for Vercel and only sent when asked for.
"""

from __future__ import annotations

import fnmatch
import math
import threading
from dataclasses import dataclass
from typing import Any

from dev.emulator.clock import Clock
from dev.emulator.errors import ApiError

__all__ = ["BucketRule", "RateLimiter", "rate_limited"]


@dataclass(frozen=True)
class BucketRule:
    """`capacity` calls per `window_s` for routes matching `route` (a glob over
    "METHOD /template", e.g. "POST /v10/projects/*/env" or "*")."""

    route: str = "*"
    capacity: int = 60
    window_s: float = 60.0

    def matches(self, route_key: str, method_path: str) -> bool:
        return fnmatch.fnmatchcase(route_key, self.route) or fnmatch.fnmatchcase(
            method_path, self.route
        )

    def to_json(self) -> dict[str, Any]:
        return {"route": self.route, "capacity": self.capacity, "windowS": self.window_s}


def rate_limited(route: str, total: int, reset_at: float, now: float) -> ApiError:
    """The documented 429: `limit.reset` epoch seconds, `resetMs` epoch ms."""
    wait = max(1, math.ceil(reset_at - now))
    return ApiError(
        429,
        "rate_limited",
        f"The rate limit of {total} exceeded for '{route}'. Try again in {wait} seconds",
        headers=[("Retry-After", str(wait))],
        limit={
            "remaining": 0,
            "reset": math.ceil(reset_at),
            "resetMs": math.ceil(reset_at * 1000),
            "total": total,
        },
    )


class RateLimiter:
    """Token buckets keyed by (rule, route, caller identity)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: list[BucketRule] = []
        self._buckets: dict[tuple[int, str, str], tuple[float, float]] = {}

    def configure(self, rules: list[BucketRule]) -> None:
        for rule in rules:
            if rule.capacity < 1 or rule.window_s <= 0:
                raise ValueError("a bucket needs capacity >= 1 and window_s > 0")
        with self._lock:
            self._rules = list(rules)
            self._buckets.clear()

    def rules(self) -> list[BucketRule]:
        with self._lock:
            return list(self._rules)

    def take(
        self, route_key: str, method_path: str, identity: str
    ) -> tuple[ApiError | None, list[tuple[str, str]]]:
        """Spend one token from every matching bucket: (429 error or None, headers)."""
        now = self._clock.now()
        headers: list[tuple[str, str]] = []
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not rule.matches(route_key, method_path):
                    continue
                rate = rule.capacity / rule.window_s
                key = (index, route_key, identity)
                tokens, last = self._buckets.get(key, (float(rule.capacity), now))
                tokens = min(float(rule.capacity), tokens + (now - last) * rate)
                if tokens < 1.0:
                    self._buckets[key] = (tokens, now)
                    reset_at = now + (1.0 - tokens) / rate
                    return rate_limited(route_key, rule.capacity, reset_at, now), []
                tokens -= 1.0
                self._buckets[key] = (tokens, now)
                reset = now + (rule.capacity - tokens) / rate
                headers = [
                    ("X-RateLimit-Limit", str(rule.capacity)),
                    ("X-RateLimit-Remaining", str(int(tokens))),
                    ("X-RateLimit-Reset", str(math.ceil(reset))),
                ]
        return None, headers
