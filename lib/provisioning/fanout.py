"""Bounded thread fan-out that keeps each caller's context (request-scoped counters).

Project reconciles are I/O bound (Vercel round trips), so threads give real parallelism;
`contextvars` do not follow work into a pool by themselves, so each task runs in a copy
of the submitting context — that is how KV calls made on workers still count towards
the request that caused them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["fan_out"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def fan_out(fn: Callable[[_T], _R], items: Iterable[_T], max_workers: int) -> list[_R]:
    """`[fn(x) for x in items]`, at most `max_workers` at a time, results in order."""
    work = list(items)
    if len(work) <= 1:
        return [fn(x) for x in work]
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(work)))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, fn, x) for x in work]
        return [f.result() for f in futures]
