"""The KV connection: the real `upstash-redis` client, made safe for a function.

The SDK has no timeout (its httpx client is built with `timeout=None`) and retries
*every* command once after 3 s, which can run an `INCR` or a `SET NX` twice and can
hang a function until Vercel kills it. Here the SDK's own retries are off, its
transport gets a bounded timeout, and retries happen in this module only for calls the
caller declares idempotent. Failures surface as `KVError`s that say whether repeating
could help, so a webhook can answer 5xx and let Vercel redeliver.

Every round trip is counted per request (`start_counting` / `stop_counting`), so each
request's log line reports its KV calls. A context variable rather than a global: Fluid
compute serves concurrent requests on threads of one process, and each must count only
its own calls (https://vercel.com/docs/fluid-compute).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar, Token
from typing import Any

import httpx
from upstash_redis import Redis
from upstash_redis.errors import UpstashError

__all__ = [
    "KV",
    "KVCommandError",
    "KVError",
    "KVUnavailable",
    "get_kv",
    "reset_kv",
    "set_succeeded",
    "start_counting",
    "stop_counting",
    "use_transport",
]

Arg = str | int | float
Command = Sequence[Arg]

_round_trips: ContextVar[list[int] | None] = ContextVar("kv_calls", default=None)


def start_counting() -> Token[list[int] | None]:
    """Count this context's KV round trips from now on (one request)."""
    return _round_trips.set([0])


def stop_counting(token: Token[list[int] | None]) -> int:
    """Stop counting; the number of round trips since `start_counting`."""
    box = _round_trips.get()
    _round_trips.reset(token)
    return box[0] if box else 0


def _count_round_trip() -> None:
    box = _round_trips.get()
    if box is not None:
        box[0] += 1


class KVError(Exception):
    """A KV call failed. `retryable` says whether repeating it later may succeed."""

    retryable = True


class KVUnavailable(KVError):
    """The store did not answer in time or answered garbage (network, gateway, outage)."""


class KVCommandError(KVError):
    """The store refused the command (wrong type, bad auth, …): repeating won't help."""

    retryable = False


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: Upstash's REST API is stateless."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class KV:
    """A thread-safe KV client with bounded time per call and honest retries."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 2.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._redis = Redis(url, token, rest_retries=0, allow_telemetry=False)
        # The SDK offers no timeout parameter; its transport is the only place to put one.
        self._redis._http._client.close()
        client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 1.0)),
            transport=transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        client._cookies = _NoCookies()  # the REST API sets none; parsing for them cost ~20 %
        self._redis._http._client = client
        self._retries = retries

    def call(self, *command: Arg, idempotent: bool = False) -> Any:
        """Run one command. Retried on transport failure only when `idempotent`."""
        return self._attempt(lambda: self._redis.execute(list(command)), idempotent)

    def pipeline(self, commands: Sequence[Command], *, idempotent: bool = False) -> list[Any]:
        """Several commands in one round trip, not atomic."""
        return self._batch(commands, self._redis.pipeline, idempotent)

    def transaction(self, commands: Sequence[Command], *, idempotent: bool = False) -> list[Any]:
        """Several commands in one round trip, applied atomically (MULTI/EXEC)."""
        return self._batch(commands, self._redis.multi, idempotent)

    def ping(self) -> Any:
        """One PING: whether the store answers (health checks; never retried)."""
        return self.call("PING", idempotent=False)

    def close(self) -> None:
        self._redis._http._client.close()

    def _batch(self, commands: Sequence[Command], factory: Any, idempotent: bool) -> list[Any]:
        if not commands:
            return []

        def run() -> list[Any]:
            pipe = factory()
            for command in commands:
                pipe.execute(list(command))
            return list(pipe.exec())

        result: list[Any] = self._attempt(run, idempotent)
        return result

    def _attempt(self, fn: Any, idempotent: bool) -> Any:
        attempts = 1 + (self._retries if idempotent else 0)
        for attempt in range(attempts):
            _count_round_trip()
            try:
                return fn()
            except UpstashError as exc:
                raise KVCommandError(_describe(exc)) from None
            except (httpx.HTTPError, json.JSONDecodeError, KeyError, TypeError) as exc:
                # KeyError/TypeError: a body that is JSON but not an Upstash reply.
                if attempt + 1 >= attempts:
                    raise KVUnavailable(f"KV store unavailable ({type(exc).__name__})") from None
                time.sleep(random.uniform(0.02, 0.08) * (attempt + 1))  # noqa: S311 - jitter
        raise AssertionError("unreachable")  # pragma: no cover


def set_succeeded(reply: Any) -> bool:
    """Whether a `SET … NX` took effect: the SDK turns Upstash's "OK" into True."""
    return reply is True or reply == "OK"


def _describe(exc: UpstashError) -> str:
    # Upstash messages carry no secrets, but keep them short and single-line.
    return " ".join(str(exc).split())[:200]


_shared: KV | None = None
_shared_lock = threading.Lock()
_transport: httpx.BaseTransport | None = None


def get_kv(url: str, token: str, *, timeout_s: float) -> KV:
    """The process's KV client, created on first use and reused by warm invocations."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = KV(url, token, timeout_s=timeout_s, transport=_transport)
    return _shared


def use_transport(transport: httpx.BaseTransport | None) -> None:
    """Build the process's KV client over `transport` from now on (None: the network).

    For in-process test stacks (dev/inprocess.py): the SDK and every code path stay the
    same, only the bytes go to a WSGI app instead of a socket."""
    global _transport
    reset_kv()
    _transport = transport


def reset_kv() -> None:
    """Drop the shared client (tests switch stores)."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
        _shared = None
