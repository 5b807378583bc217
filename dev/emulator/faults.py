"""Injected failures and latency for the REST API (never the control API or pages).

Decisions are deterministic: the n-th call of a route under seed S always gets the same
fate, however other routes interleave across threads, so a flaky-looking test can be
replayed exactly. A fault can strike `before` the handler (nothing happened) or `after`
it (the change is made, the answer is lost), which is what makes retrying an unsafe
request dangerous.
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from dev.emulator.errors import ApiError
from dev.emulator.limits import rate_limited
from dev.emulator.wsgi import Disconnect, Response

__all__ = ["FAULT_KINDS", "FaultInjector", "FaultRule"]

FAULT_KINDS = ("500", "502", "503", "429", "timeout", "reset")


@dataclass(frozen=True)
class FaultRule:
    """With `probability`, answer a call matching `route` with one of `kinds` (weighted)."""

    route: str = "*"
    probability: float = 0.0
    kinds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 1.0))
    when: Literal["before", "after"] = "before"
    timeout_s: float = 35.0  # "timeout": hold the connection this long, then close it
    retry_after: int | None = 1  # header on injected 429/503

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds or any(w < 0 for w in self.kinds.values()):
            raise ValueError(f"fault kinds must be weights over {', '.join(FAULT_KINDS)}")
        if self.when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")

    def matches(self, route_key: str, method_path: str) -> bool:
        return fnmatch.fnmatchcase(route_key, self.route) or fnmatch.fnmatchcase(
            method_path, self.route
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "probability": self.probability,
            "kinds": dict(self.kinds),
            "when": self.when,
            "timeoutS": self.timeout_s,
            "retryAfter": self.retry_after,
        }


@dataclass(frozen=True)
class Fault:
    rule: FaultRule
    kind: str


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._seed = 0
        self._counts: dict[str, int] = defaultdict(int)
        self._injected: dict[str, int] = defaultdict(int)
        self.latency_ms = 0.0
        self._stop = threading.Event()

    def configure(self, rules: list[FaultRule], seed: int = 0) -> None:
        with self._lock:
            self._rules = list(rules)
            self._seed = seed
            self._counts.clear()
            self._injected.clear()

    def reset(self) -> None:
        self.configure([], 0)
        self.latency_ms = 0.0
        # Wake calls parked in an injected timeout; later ones get a fresh event.
        self._stop.set()
        self._stop = threading.Event()

    def close(self) -> None:
        self._stop.set()

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "seed": self._seed,
                "rules": [r.to_json() for r in self._rules],
                "latencyMs": self.latency_ms,
                "injected": dict(self._injected),
            }

    def delay(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)

    def decide(self, route_key: str, method_path: str) -> Fault | None:
        """This call's fate, drawn from (seed, route, call number) only."""
        with self._lock:
            if not self._rules:
                return None
            n = self._counts[route_key]
            self._counts[route_key] = n + 1
            rng = random.Random(f"{self._seed}:{route_key}:{n}")
            for rule in self._rules:
                if not rule.matches(route_key, method_path):
                    continue
                if rng.random() < rule.probability:
                    kinds = [k for k, w in rule.kinds.items() if w > 0]
                    if not kinds:
                        continue
                    kind = rng.choices(kinds, weights=[rule.kinds[k] for k in kinds])[0]
                    self._injected[kind] += 1
                    return Fault(rule, kind)
            return None

    def strike(self, fault: Fault, route_key: str, now: float) -> Response:
        """The injected answer; raises Disconnect for timeouts and resets."""
        retry = [("Retry-After", str(fault.rule.retry_after))] if fault.rule.retry_after else []
        if fault.kind == "timeout":
            self._stop.wait(fault.rule.timeout_s)
            raise Disconnect(reset=False)
        if fault.kind == "reset":
            raise Disconnect(reset=True)
        if fault.kind == "429":
            error = rate_limited(route_key, 1, now + (fault.rule.retry_after or 1), now)
            return error.response()
        if fault.kind == "500":
            return ApiError(
                500, "internal_server_error", "An unexpected internal error occurred"
            ).response()
        if fault.kind == "502":
            return ApiError(502, "bad_gateway", "The upstream server did not respond").response()
        return ApiError(
            503, "service_unavailable", "The service is temporarily unavailable", headers=retry
        ).response()
