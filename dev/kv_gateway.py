"""A local server speaking the Upstash Redis REST protocol, for `make dev` and the tests.

The integration talks to Vercel KV through the real `upstash-redis` SDK; pointing that SDK
at this gateway lets the whole stack run offline, against real Redis when one answers at
`REDIS_URL` and otherwise against the embedded engine (fakeredis with Lua, dev/kv_engine.py;
`REQUIRE_REDIS=1` in the tests fails instead of falling back). Where the protocol is
undocumented it follows Upstash's docs (https://upstash.com/docs/redis/features/restapi)
and the SDK's behaviour:

* `POST /` takes a JSON command array; `POST /pipeline` and `POST /multi-exec` take 2-D
  arrays and answer per-command `{"result"}`/`{"error"}` items with status 200; a
  discarded transaction is one `{"error"}` with 400. Path-style `/set/foo/bar` works too.
* 200 when a command ran, 400 for bad input or a failed command, 401 for a missing or
  wrong token (Bearer header or `_token` query parameter), 405 for other methods.
* `Upstash-Encoding: base64` base64-encodes every string in a result except "OK".
* JSON strings and numbers are arguments (numbers keep the exact text sent); JSON
  true/false/null, arrays and objects are refused with 400. Redis has no such types, and
  silently turning `True` into "true" or "1" would hide a bug in the caller.
* Blocking commands, connection commands other than PING/ECHO, MULTI/WATCH and the like,
  and server administration are refused with 400, as Upstash does. FLUSHALL flushes only
  the gateway's database (an Upstash database is one keyspace). EVAL, EVALSHA and SCRIPT
  LOAD/EXISTS/FLUSH run, as on Upstash.

Tests observe and steer it through `/_gateway/…` (same token) or the same methods on
`Gateway`. A 5xx from this gateway (injected, Redis gone, a hold timing out) has a
plain-text body, as a failing proxy would; the SDK then raises instead of reading a
command error.

* `GET /_gateway/stats`, `POST /_gateway/stats/reset` (`stats()`, `reset_stats()`):
  request/command counters.
* `GET|POST|DELETE /_gateway/faults` (`faults()`, `set_faults(…)`, `clear_faults()`):
  injected stalls, error replies and dropped connections (see `Faults`).
* Holds, to force an interleaving deterministically (`hold(…)`, `holds()`, `clear_holds()`;
  details in dev/kv_holds.py). `POST /_gateway/holds` with
  `{"match": {"command": "EVAL", "key_glob": "vi:inst:*", "path": "/"}, "count": 1,
  "timeout_seconds": 10}` (every field optional) answers the hold's state with its `id`;
  the next `count` matching requests are parked *before they run*.
  `GET /_gateway/holds/<id>` says how many are parked now (`held`), caught so far and
  timed out (`?wait_seconds=N`, at most 30, first waits until one is parked);
  `POST /_gateway/holds/<id>/release` lets them run; a parked request not released within
  `timeout_seconds` fails with 504 without running. `GET /_gateway/holds` lists them,
  `DELETE /_gateway/holds` cancels all (parked requests fail with 503 without running), and
  so does clearing the faults, so no test leaves a hold behind. In process:

      with gateway.hold(command="EVAL", key_glob="vi:inst:*") as held:
          a = threading.Thread(target=uninstall); a.start()
          assert held.wait_held()        # A is parked before its EVAL ran
          run_b()                        # B runs to completion meanwhile
      a.join()                           # leaving the block released A
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import http
import itertools
import json
import logging
import math
import os
import random
import signal
import socket
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol, TypedDict
from urllib.parse import parse_qsl, urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment

import httpx
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dev import serve
from dev.kv_engine import BackendUnavailable, ClientBackend, CommandError, Engine, Reply
from dev.kv_holds import DEFAULT_HOLD_TIMEOUT_S, Hold, HoldMatch

__all__ = [
    "DEFAULT_REDIS_URL",
    "MAX_REQUEST_BYTES",
    "Backend",
    "BackendUnavailable",
    "Faults",
    "Gateway",
    "GatewayStats",
    "Hold",
    "HoldMatch",
    "RedisBackend",
    "create_app",
    "main",
    "open_backend",
]

log = logging.getLogger("dev.kv_gateway")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
MAX_REQUEST_BYTES = 10 * 1024 * 1024
_ALLOWED_METHODS = frozenset({"HEAD", "GET", "POST", "PUT"})
_WRONGPASS = "WRONGPASS invalid or missing auth token"
_EXECABORT = "EXECABORT Transaction discarded because of previous errors"
_CONTROL_PREFIX = "/_gateway"

# Commands Upstash refuses (blocking, connection state, pub/sub, transactions outside
# /multi-exec) plus server administration no test should run against a shared Redis.
# fmt: off
_REFUSED = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "WAIT", "WAITAOF",
    "AUTH", "CLIENT", "HELLO", "QUIT", "RESET", "SELECT", "READONLY", "READWRITE",
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
    "MONITOR", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH",
    "SHUTDOWN", "DEBUG", "SYNC", "PSYNC", "REPLICAOF", "SLAVEOF", "FAILOVER", "CONFIG",
    "SAVE", "BGSAVE", "BGREWRITEAOF", "MODULE", "ACL", "CLUSTER", "SWAPDB", "MOVE", "MIGRATE",
})
# fmt: on


class Backend(Protocol):
    """Where commands run: real Redis (`RedisBackend`) or the embedded `Engine`.

    Replies use Redis's shapes: `bytes` for any string, `int`, `None`, lists of those.
    """

    @property
    def description(self) -> str:
        """Which store this is, safe to print (never a password)."""
        ...

    def execute(self, command: Sequence[bytes]) -> Reply:
        """One command; raises `CommandError` with Redis's error text."""
        ...

    def pipeline(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        """Commands in one round trip, not atomic; errors are returned in place."""
        ...

    def transaction(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        """MULTI/EXEC; raises `CommandError` if Redis discards the whole transaction."""
        ...

    def close(self) -> None: ...


class RedisBackend(ClientBackend):
    """Real Redis through redis-py, replies in Redis's own shapes (see dev/kv_engine.py)."""

    @classmethod
    def connect(
        cls, url: str, *, connect_timeout: float = 0.5, timeout: float = 5.0
    ) -> RedisBackend:
        """Connect and PING; raises `BackendUnavailable` when Redis does not answer and
        `ValueError` (naming REDIS_URL, never echoing it) when the URL is malformed."""
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("REDIS_URL must look like redis://host:port/db")
        try:
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=connect_timeout,
                socket_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                protocol=2,  # RESP2 shapes are what the REST protocol returns
            )
        except ValueError:
            raise ValueError("REDIS_URL must look like redis://host:port/db") from None
        description = _describe_url(client)
        try:
            client.ping()
        except redis.RedisError as exc:
            client.close()
            raise BackendUnavailable(
                f"Redis at {description} is unreachable ({type(exc).__name__}: {exc})"
            ) from None
        return cls(client, description)


def _describe_url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    tls = client.connection_pool.connection_class is redis.SSLConnection
    host, port, db = kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"{'rediss' if tls else 'redis'}://{host}:{port}/{db}"


def open_backend(redis_url: str | None = None, *, require_redis: bool = False) -> Backend:
    """Real Redis at `redis_url` (else $REDIS_URL, else 127.0.0.1:6379) if it answers
    within half a second, else the embedded engine, whose description says why.

    `require_redis=True` raises `BackendUnavailable` instead of falling back (CI)."""
    url = redis_url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    try:
        return RedisBackend.connect(url)
    except BackendUnavailable as exc:
        if require_redis:
            raise
        log.warning("kv gateway: %s; using the embedded engine", exc)
        return Engine(description=f"embedded engine (fallback: {exc})")


# -- faults and counters ----------------------------------------------------------------


@dataclass(frozen=True)
class Faults:
    """Misbehaviour to inject into protocol requests (never into `/_gateway/…`).

    Every request first stalls `stall_seconds` (a change of faults cuts a stall short and
    the stalled request then fails without running), then fails with `error_status` with
    probability `error_rate` before running, else runs and then has its connection
    closed without a reply with probability `drop_rate` (the command did run: the case
    that makes retrying non-idempotent commands unsafe). `seed` makes the dice repeatable.
    """

    stall_seconds: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    drop_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = {"error_rate": self.error_rate, "drop_rate": self.drop_rate}
        for name, value in {"stall_seconds": self.stall_seconds, **rates}.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
            if name in rates and value > 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.stall_seconds > 600:
            raise ValueError("stall_seconds must be at most 600")
        status = self.error_status
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("error_status must be an integer HTTP status from 400 to 599")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError("seed must be an integer or null")

    @classmethod
    def from_json(cls, data: Any) -> Faults:
        """Validate a `/_gateway/faults` body; raises `ValueError` saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        return cls(**data)


class GatewayStats(TypedDict):
    """Counters since the last reset. `requests` counts HTTP round trips to the protocol
    endpoints (a pipeline is one), `commands` the commands those requests carried."""

    requests: int
    commands: int
    by_path: dict[str, int]
    injected: dict[str, int]


def _empty_stats() -> GatewayStats:
    return {
        "requests": 0,
        "commands": 0,
        "by_path": {},
        "injected": {"stall": 0, "error": 0, "drop": 0},
    }


# -- HTTP plumbing ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    protocol: bool = True  # carries an upstash-sync-token

    @classmethod
    def of(cls, status: int, payload: Any, *, protocol: bool = True) -> _Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, body, protocol=protocol)

    @classmethod
    def error(cls, status: int, message: str, *, protocol: bool = True) -> _Response:
        return cls.of(status, {"error": message}, protocol=protocol)

    @classmethod
    def text(cls, status: int, message: str) -> _Response:
        return cls(status, message.encode(), "text/plain; charset=utf-8")


_DROP = _Response(0, b"")  # sentinel: close the connection without replying


class _Reject(Exception):
    """Bad input: answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _read_body(environ: WSGIEnvironment) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise _Reject(400, "ERR invalid Content-Length header") from None
    if length < 0:
        raise _Reject(400, "ERR invalid Content-Length header")
    stream = environ["wsgi.input"]
    if length > MAX_REQUEST_BYTES:
        # Read and discard (up to a bound) so the client gets the answer, not a reset.
        remaining = min(length, 8 * MAX_REQUEST_BYTES)
        while remaining > 0 and (chunk := stream.read(min(remaining, 1 << 20))):
            remaining -= len(chunk)
        raise _Reject(400, "ERR max request size exceeded")
    return bytes(stream.read(length)) if length else b""


def _require_json(environ: WSGIEnvironment) -> None:
    media_type = str(environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise _Reject(400, "ERR Invalid content type. Expected application/json.")


def _parse_json(body: bytes) -> Any:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        # Numbers stay as the text the client sent: that text is the Redis argument.
        return json.loads(body, parse_int=str, parse_float=str, parse_constant=no_constants)
    except (ValueError, RecursionError) as exc:
        raise _Reject(400, f"ERR invalid JSON body: {exc}") from None


def _json_kind(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return "array" if isinstance(value, list) else "object"


def _command_from_json(item: Any, where: str) -> list[bytes]:
    if not isinstance(item, list):
        raise _Reject(400, f"ERR {where} must be a JSON array of strings and numbers")
    if not item:
        raise _Reject(400, f"ERR {where} is empty")
    command: list[bytes] = []
    for index, arg in enumerate(item):
        if not isinstance(arg, str):
            raise _Reject(
                400,
                f"ERR {where}: argument {index} is JSON {_json_kind(arg)}; "
                "only strings and numbers are allowed",
            )
        try:
            command.append(arg.encode())
        except UnicodeEncodeError:
            raise _Reject(400, f"ERR {where}: argument {index} is not valid Unicode") from None
    return command


def _commands_from_json(data: Any, path: str) -> list[list[bytes]]:
    if not isinstance(data, list) or not data:
        raise _Reject(400, f"ERR {path} expects a non-empty JSON array of command arrays")
    return [_command_from_json(item, f"command #{n}") for n, item in enumerate(data, 1)]


def _refusal(command: Sequence[bytes]) -> str | None:
    name = command[0].decode("utf-8", "replace").upper()
    blocking_read = name in ("XREAD", "XREADGROUP") and any(
        arg.upper() == b"BLOCK" for arg in command[1:]
    )
    if name in _REFUSED or blocking_read:
        return (
            f"ERR Command is not available: '{name}'. "
            "See https://upstash.com/docs/redis/overall/rediscompatibility for details"
        )
    return None


def _normalize(command: list[bytes]) -> list[bytes]:
    # An Upstash database is one keyspace: FLUSHALL must not reach other Redis DBs.
    if command[0].upper() == b"FLUSHALL":
        return [b"FLUSHDB", *command[1:]]
    return command


def _encode(value: Reply, b64: bool) -> Any:
    if isinstance(value, bytes):
        if not b64:
            return value.decode("utf-8", "replace")
        return "OK" if value == b"OK" else base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [_encode(item, b64) for item in value]
    return value


def _item(value: Reply | CommandError, b64: bool) -> dict[str, Any]:
    if isinstance(value, CommandError):
        return {"error": str(value)}
    return {"result": _encode(value, b64)}


def _drop_connection(environ: WSGIEnvironment) -> bool:
    """Shut the client's TCP connection down; False when there is no socket to close."""
    try:
        fd = environ["wsgi.input"].fileno()
    except (AttributeError, OSError, ValueError):
        return False
    with socket.socket(fileno=os.dup(fd)) as sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # OSError: the client has already gone
    return True


# -- the app ----------------------------------------------------------------------------


class Gateway:
    """The WSGI app. Thread-safe; one instance serves every request of a server."""

    def __init__(self, token: str, backend: Backend) -> None:
        if not token:
            raise ValueError("the gateway needs a non-empty token")
        self._token = token.encode()
        self._backend = backend
        self._lock = threading.Lock()
        self._stats = _empty_stats()
        self._faults = Faults()
        self._rng = random.Random()
        self._wake = threading.Event()
        self._sync = itertools.count(1)
        self._holds: dict[str, Hold] = {}
        self._hold_ids = itertools.count(1)

    @property
    def backend(self) -> Backend:
        return self._backend

    # -- controls (also reachable under /_gateway/) ----------------------------------

    def stats(self) -> GatewayStats:
        """A snapshot of the counters."""
        with self._lock:
            snapshot = self._stats
            return {
                "requests": snapshot["requests"],
                "commands": snapshot["commands"],
                "by_path": dict(snapshot["by_path"]),
                "injected": dict(snapshot["injected"]),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = _empty_stats()

    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(
        self,
        *,
        stall_seconds: float = 0.0,
        error_rate: float = 0.0,
        error_status: int = 503,
        drop_rate: float = 0.0,
        seed: int | None = None,
    ) -> Faults:
        """Replace the active faults (fields not given return to their defaults)."""
        faults = Faults(stall_seconds, error_rate, error_status, drop_rate, seed)
        self._install(faults)
        return faults

    def clear_faults(self) -> None:
        """No faults, and no holds: `clear_holds()` too, so no test leaves one behind."""
        self._install(Faults())
        self.clear_holds()

    def hold(
        self,
        *,
        command: str | None = None,
        key_glob: str | None = None,
        path: str | None = None,
        count: int = 1,
        timeout_seconds: float = DEFAULT_HOLD_TIMEOUT_S,
    ) -> Hold:
        """Park the next `count` matching requests before they run (see dev/kv_holds.py)."""
        return self._add_hold(HoldMatch(command, key_glob, path), count, timeout_seconds)

    def holds(self) -> list[Hold]:
        with self._lock:
            return list(self._holds.values())

    def clear_holds(self) -> None:
        """Cancel and forget every hold; requests parked by one fail without running."""
        with self._lock:
            holds, self._holds = list(self._holds.values()), {}
        for hold in holds:
            hold.cancel()

    def _add_hold(self, match: HoldMatch, count: int, timeout_seconds: float) -> Hold:
        with self._lock:
            hold = Hold(f"h{next(self._hold_ids)}", match, count, timeout_seconds)
            self._holds[hold.id] = hold
        return hold

    def _pass_holds(self, path: str, commands: Sequence[Sequence[bytes]]) -> None:
        """Park the request if a hold claims it; raise `_Reject` if it must not run."""
        for hold in self.holds():
            if hold.claim(path, commands):
                outcome = hold.park()
                if outcome == "timed out":
                    raise _Reject(504, f"KV gateway: held request timed out (hold {hold.id})")
                if outcome == "cancelled":
                    raise _Reject(503, f"KV gateway: hold {hold.id} was cancelled")
                return

    def _install(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)
            woken, self._wake = self._wake, threading.Event()
        woken.set()  # stalled requests stop waiting and fail

    # -- WSGI ----------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self._handle(environ)
        except _Reject as exc:
            if exc.status >= 500:  # a gateway failure: plain text, as a failing proxy's
                response = _Response.text(exc.status, exc.message)
            else:
                response = _Response.error(exc.status, exc.message)
        except BackendUnavailable as exc:
            log.warning("kv gateway: %s", exc)
            response = _Response.text(503, "KV gateway: the Redis behind it is unavailable")
        except Exception:
            log.exception("kv gateway: internal error")
            response = _Response.text(500, "KV gateway: internal error")
        if response is _DROP:
            if _drop_connection(environ):
                raise ConnectionResetError("injected fault: connection dropped")  # wsgiref: quiet
            # In-process (httpx.WSGITransport): what httpx raises for a dropped socket.
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
        ]
        if response.protocol:
            headers.append(("upstash-sync-token", f"local-{next(self._sync)}"))
        start_response(f"{response.status} {_phrase(response.status)}", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [response.body]

    def _handle(self, environ: WSGIEnvironment) -> _Response:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO") or "/")
        if path == _CONTROL_PREFIX or path.startswith(_CONTROL_PREFIX + "/"):
            return self._control(environ, method, path[len(_CONTROL_PREFIX) :])
        self._count(_path_label(path))
        if method not in _ALLOWED_METHODS:
            return _Response.error(405, f"ERR method {method} is not allowed")
        if path == "/" and method in ("GET", "HEAD"):
            welcome = (
                f"Welcome to the local Upstash-protocol KV gateway ({self._backend.description})."
            )
            return _Response.text(200, welcome)
        if not self._authorized(environ):
            return _Response.error(401, _WRONGPASS)
        if str(environ.get("HTTP_UPSTASH_RESPONSE_FORMAT") or "").lower() == "resp2":
            return _Response.error(400, "ERR Upstash-Response-Format: resp2 is not supported here")
        with self._lock:
            faults, wake = self._faults, self._wake
            error_roll, drop_roll = self._rng.random(), self._rng.random()
        if faults.stall_seconds:
            self._count_injected("stall")
            if wake.wait(faults.stall_seconds):
                return _Response.text(503, "KV gateway: stalled request cancelled")
        if error_roll < faults.error_rate:
            self._count_injected("error")
            return self._injected_error(faults.error_status)
        b64 = str(environ.get("HTTP_UPSTASH_ENCODING") or "").lower() == "base64"
        response = self._dispatch(environ, method, path, b64)
        if drop_roll < faults.drop_rate:
            self._count_injected("drop")
            return _DROP
        return response

    def _dispatch(self, environ: WSGIEnvironment, method: str, path: str, b64: bool) -> _Response:
        if path in ("/pipeline", "/multi-exec"):
            if method not in ("POST", "PUT"):
                raise _Reject(400, f"ERR {path} expects a POST of a JSON array of commands")
            _require_json(environ)
            commands = _commands_from_json(_parse_json(_read_body(environ)), path)
            self._count_commands(len(commands))
            self._pass_holds(path, commands)
            if path == "/pipeline":
                return self._pipeline(commands, b64)
            return self._multi_exec(commands, b64)
        if path == "/":
            _require_json(environ)
            command = _command_from_json(_parse_json(_read_body(environ)), "command")
        else:
            command = self._path_command(environ, method, path)
        self._count_commands(1)
        refusal = _refusal(command)
        if refusal:
            raise _Reject(400, refusal)
        self._pass_holds("/", [command])
        try:
            result = self._backend.execute(_normalize(command))
        except CommandError as exc:
            return _Response.error(400, str(exc))
        return _Response.of(200, {"result": _encode(result, b64)})

    def _pipeline(self, commands: list[list[bytes]], b64: bool) -> _Response:
        # Refused commands answer in their slot; the others still run, as in Redis.
        refusals = [_refusal(command) for command in commands]
        runnable = [
            _normalize(c) for c, refusal in zip(commands, refusals, strict=True) if not refusal
        ]
        replies = iter(self._backend.pipeline(runnable))
        results = [CommandError(refusal) if refusal else next(replies) for refusal in refusals]
        return _Response.of(200, [_item(result, b64) for result in results])

    def _multi_exec(self, commands: list[list[bytes]], b64: bool) -> _Response:
        for command in commands:
            refusal = _refusal(command)
            if refusal:
                raise _Reject(400, f"{_EXECABORT}: {refusal}")
        try:
            results = self._backend.transaction([_normalize(c) for c in commands])
        except CommandError as exc:
            return _Response.error(400, str(exc))
        return _Response.of(200, [_item(result, b64) for result in results])

    @staticmethod
    def _path_command(environ: WSGIEnvironment, method: str, path: str) -> list[bytes]:
        """`/set/foo/bar?EX=100` with an optional body: path parts, body, then query.

        PATH_INFO arrives percent-decoded (PEP 3333, as latin-1), so a `/` inside a
        key cannot be sent this way; the JSON form has no such limit."""
        command = [part.encode("latin-1", "replace") for part in path.strip("/").split("/")]
        if method in ("POST", "PUT"):
            body = _read_body(environ)
            if body:
                command.append(body)
        query = parse_qsl(str(environ.get("QUERY_STRING") or ""), keep_blank_values=True)
        for name, value in query:
            if name != "_token":
                command.append(name.encode())
                if value:
                    command.append(value.encode())
        return command

    def _authorized(self, environ: WSGIEnvironment) -> bool:
        header = str(environ.get("HTTP_AUTHORIZATION") or "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and credential:
            return hmac.compare_digest(credential.strip().encode(), self._token)
        query = dict(parse_qsl(str(environ.get("QUERY_STRING") or "")))
        token = query.get("_token", "")
        return bool(token) and hmac.compare_digest(token.encode(), self._token)

    def _injected_error(self, status: int) -> _Response:
        if status >= 500:
            return _Response.text(status, f"KV gateway: injected fault ({status})")
        return _Response.error(status, f"ERR injected fault ({status})")

    def _control(self, environ: WSGIEnvironment, method: str, route: str) -> _Response:
        if not self._authorized(environ):
            return _Response.error(401, _WRONGPASS, protocol=False)
        if route == "/holds" or route.startswith("/holds/"):
            return self._control_holds(environ, method, route)
        allowed = {
            "/stats": ("GET",),
            "/stats/reset": ("POST",),
            "/faults": ("GET", "POST", "PUT", "DELETE"),
        }
        if route not in allowed:
            return _Response.error(
                404, f"ERR no gateway control endpoint {route or '/'}", protocol=False
            )
        if method not in allowed[route]:
            return _Response.error(405, f"ERR method {method} is not allowed here", protocol=False)
        if route == "/stats":
            return _Response.of(200, self.stats(), protocol=False)
        if route == "/stats/reset":
            self.reset_stats()
            return _Response.of(200, {"result": "OK"}, protocol=False)
        if method == "DELETE":
            self.clear_faults()
        elif method in ("POST", "PUT"):
            _require_json(environ)
            try:
                data = json.loads(_read_body(environ))
                self._install(Faults.from_json(data))
            except (ValueError, TypeError, RecursionError) as exc:
                return _Response.error(400, f"ERR invalid faults: {exc}", protocol=False)
        return _Response.of(200, asdict(self.faults()), protocol=False)

    def _control_holds(self, environ: WSGIEnvironment, method: str, route: str) -> _Response:
        parts = route.strip("/").split("/")  # ["holds"], ["holds", id], ["holds", id, "release"]
        allowed = {1: ("GET", "POST", "DELETE"), 2: ("GET",), 3: ("POST",)}.get(len(parts), ())
        if len(parts) == 3 and parts[2] != "release":
            allowed = ()
        if not allowed:
            return _Response.error(404, f"ERR no gateway control endpoint {route}", protocol=False)
        if method not in allowed:
            return _Response.error(405, f"ERR method {method} is not allowed here", protocol=False)
        if len(parts) == 1:
            if method == "DELETE":
                self.clear_holds()
            if method == "POST":
                _require_json(environ)
                try:
                    hold = self._hold_from_json(json.loads(_read_body(environ)))
                except (ValueError, TypeError, RecursionError) as exc:
                    return _Response.error(400, f"ERR invalid hold: {exc}", protocol=False)
                return _Response.of(200, hold.state(), protocol=False)
            return _Response.of(200, {"holds": [h.state() for h in self.holds()]}, protocol=False)
        with self._lock:
            found = self._holds.get(parts[1])
        if found is None:
            return _Response.error(404, f"ERR no hold {parts[1]}", protocol=False)
        if len(parts) == 3:
            found.release()
        else:
            query = dict(parse_qsl(str(environ.get("QUERY_STRING") or "")))
            try:
                wait = float(query.get("wait_seconds", "0"))
            except ValueError:
                wait = -1.0
            if not 0 <= wait <= 30:
                return _Response.error(400, "ERR wait_seconds must be from 0 to 30", protocol=False)
            if wait:
                found.wait_held(1, wait)
        return _Response.of(200, found.state(), protocol=False)

    def _hold_from_json(self, data: Any) -> Hold:
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        unknown = sorted(set(data) - {"match", "count", "timeout_seconds"})
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(unknown)}")
        match = HoldMatch.from_json(data.get("match", {}))
        count = data.get("count", 1)
        return self._add_hold(match, count, data.get("timeout_seconds", DEFAULT_HOLD_TIMEOUT_S))

    # -- counters ------------------------------------------------------------------------

    def _count(self, label: str) -> None:
        with self._lock:
            self._stats["requests"] += 1
            by_path = self._stats["by_path"]
            by_path[label] = by_path.get(label, 0) + 1

    def _count_commands(self, n: int) -> None:
        with self._lock:
            self._stats["commands"] += n

    def _count_injected(self, kind: str) -> None:
        with self._lock:
            self._stats["injected"][kind] += 1


def _path_label(path: str) -> str:
    if path in ("/", "/pipeline", "/multi-exec"):
        return path
    return "/" + path.strip("/").split("/", 1)[0].lower()


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def create_app(token: str, backend: Backend) -> Gateway:
    """The gateway WSGI app for `token` over `backend`."""
    return Gateway(token, backend)


# -- `python -m dev.kv_gateway` ---------------------------------------------------------


def _token_from_env(environ: Mapping[str, str]) -> tuple[str, str]:
    for name in ("KV_REST_API_TOKEN", "UPSTASH_REDIS_REST_TOKEN"):
        if environ.get(name):
            return environ[name], name
    return "dev-kv-token", "the development default"


def main() -> int:
    """Serve the gateway on 127.0.0.1:$KV_PORT (default 8079) until Ctrl-C or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raw_port = os.environ.get("KV_PORT", "8079")
    if not raw_port.isdigit() or int(raw_port) > 65535:
        print(f"KV_PORT must be a TCP port number (0-65535), got {raw_port!r}", file=sys.stderr)
        return 2
    token, token_source = _token_from_env(os.environ)
    try:
        backend = open_backend()
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    server = serve.start(create_app(token, backend), "127.0.0.1", int(raw_port))
    print(
        f"kv gateway: {server.url} backed by {backend.description} (token from {token_source})",
        flush=True,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.stop()
        backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
