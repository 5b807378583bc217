"""Counts KV round trips per request, so each request's log line can report them.

A context variable rather than a global: Fluid compute serves concurrent requests on
threads of one process, and each must count only its own calls.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["record", "start", "stop"]

_calls: ContextVar[list[int] | None] = ContextVar("kv_calls", default=None)


def start() -> Token[list[int] | None]:
    return _calls.set([0])


def record() -> None:
    box = _calls.get()
    if box is not None:
        box[0] += 1


def stop(token: Token[list[int] | None]) -> int:
    box = _calls.get()
    _calls.reset(token)
    return box[0] if box else 0
