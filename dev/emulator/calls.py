"""How often each REST route was called, and what it answered.

Benchmarks and tests assert call budgets ("≤ 2 calls per project") on these counts,
keyed by "METHOD /template" so the project id does not split them.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

__all__ = ["CallLog"]


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def record(self, route_key: str, outcome: int | str) -> None:
        with self._lock:
            self._statuses[route_key][str(outcome)] += 1

    def reset(self) -> None:
        with self._lock:
            self._statuses.clear()

    def count(self, route_key: str) -> int:
        with self._lock:
            return sum(self._statuses.get(route_key, {}).values())

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            routes = {
                key: {"count": sum(by.values()), "statuses": dict(by)}
                for key, by in sorted(self._statuses.items())
            }
        return {"total": sum(r["count"] for r in routes.values()), "routes": routes}
