"""Where the KV gateway's commands run: real Redis, or fakeredis embedded in the process.

Both give the gateway Redis's own reply shapes: `bytes` for any string (simple or bulk),
`int`, `None` and lists of those, and a refused command raises `CommandError` carrying the
server's text. `ClientBackend` drives real Redis through redis-py with its reply
post-processing turned off.

`Engine` is the fallback when no Redis answers: fakeredis (https://fakeredis.readthedocs.io)
speaking as Redis 7.0, with Lua through lupa so EVAL/EVALSHA/SCRIPT LOAD run as they do on
Upstash. It is thread-safe: each concurrent caller gets its own fakeredis socket, and
fakeredis runs every command, every whole MULTI/EXEC and every script under its server
lock, so a transaction or a script is atomic against the gateway's other threads.

tests/dev/test_kv_engine.py replays the same commands through the gateway over both and
compares the answers; where fakeredis words an error differently from Redis 7.0, the
rewordings below restore Redis's text, and the differences left are listed in that test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import fakeredis
import redis
from fakeredis._socket import FakeSocket
from redis.client import Pipeline

__all__ = ["BackendUnavailable", "ClientBackend", "CommandError", "Engine", "Reply"]

Reply: TypeAlias = "int | bytes | list[Reply] | None"

_EXECABORT = "EXECABORT Transaction discarded because of previous errors"


class CommandError(Exception):
    """The server refused a command; `str(error)` is the Redis error text (`ERR …`)."""


class BackendUnavailable(RuntimeError):
    """The Redis behind the gateway cannot be reached (at start-up or mid-request)."""


class _Transaction(Pipeline):
    """A redis-py transaction that keeps Redis's error text as it is: redis-py would prefix
    a queue-time error with "Command # n (…) of pipeline caused error"."""

    def annotate_exception(self, exception: Exception, number: int, command: Any) -> None:
        return None


def _error_text(exc: redis.RedisError) -> str:
    # redis-py strips a known error code ("ERR", "EXECABORT", …) off the message and
    # keeps it as `status_code`; put it back so clients see what Redis said.
    code = getattr(exc, "status_code", None)
    return f"{code} {exc}" if code else str(exc)


def _from_redis(value: Any) -> Reply:
    if value is None or isinstance(value, bytes | int):
        return value
    if isinstance(value, list):
        return [_from_redis(item) for item in value]
    if isinstance(value, redis.ResponseError):  # an error nested in an array (scripts)
        return _error_text(value).encode()
    raise TypeError(f"unexpected reply type from Redis: {type(value).__name__}")


def _redis_args(command: Sequence[bytes]) -> list[str | bytes]:
    # redis-py looks commands up by name in places; give it the name as text.
    name = command[0]
    return [name.decode() if name.isascii() else name, *command[1:]]


class ClientBackend:
    """Commands through a redis-py client with its reply post-processing turned off, and
    with no client-side retries (a retry could run a non-idempotent command twice behind
    the caller's back)."""

    def __init__(self, client: redis.Redis, description: str) -> None:
        client.response_callbacks.clear()
        self._client = client
        self.description = description

    def execute(self, command: Sequence[bytes]) -> Reply:
        """One command; raises `CommandError` with Redis's error text."""
        try:
            reply = self._client.execute_command(*_redis_args(command))  # type: ignore[no-untyped-call]
            return _from_redis(reply)
        except redis.ResponseError as exc:
            raise CommandError(_error_text(exc)) from None
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis failed: {type(exc).__name__}: {exc}") from None

    def pipeline(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        """Commands in one round trip, not atomic; errors are returned in place."""
        return self._run(self._client.pipeline(transaction=False), commands)

    def transaction(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        """MULTI/EXEC; raises `CommandError` if Redis discards the whole transaction."""
        pipe = _Transaction(
            self._client.connection_pool, self._client.response_callbacks, True, None
        )
        try:
            return self._run(pipe, commands)
        except redis.exceptions.ExecAbortError as exc:
            raise CommandError(_error_text(exc)) from None
        except redis.ResponseError as exc:  # the first queue-time error, which aborted it
            raise CommandError(f"{_EXECABORT}: {_error_text(exc)}") from None

    def close(self) -> None:
        self._client.close()

    @staticmethod
    def _run(pipe: Pipeline, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        try:
            for command in commands:
                pipe.execute_command(*_redis_args(command))  # type: ignore[no-untyped-call]
            replies = pipe.execute(raise_on_error=False)
        except redis.ResponseError:
            raise
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis failed: {type(exc).__name__}: {exc}") from None
        finally:
            pipe.reset()
        return [
            CommandError(_error_text(reply))
            if isinstance(reply, redis.ResponseError)
            else _from_redis(reply)
            for reply in replies
        ]


def _unknown_command(argv: Sequence[bytes]) -> str:
    # Redis 7.0: the name as sent, then quoted arguments until 128 bytes of them are shown.
    shown = b""
    for arg in argv[1:]:
        if len(shown) >= 128:
            break
        shown += b"'" + arg[: 128 - len(shown)] + b"' "
    text = b"unknown command '" + argv[0][:128] + b"', with args beginning with: " + shown
    return "ERR " + text.decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")


def _has(argv: Sequence[bytes], *flags: bytes) -> bool:
    return any(arg.upper() in flags for arg in argv[1:])


# Where fakeredis words an error differently from Redis 7.0 (found by the differential
# test): (command names or None for any, the fakeredis text, a test on the arguments or
# None, Redis's text as a function of the arguments).
_Rewording: TypeAlias = tuple[
    frozenset[bytes] | None,
    str,
    Callable[[Sequence[bytes]], bool] | None,
    Callable[[Sequence[bytes]], str],
]
_REWORDINGS: list[_Rewording] = [
    (
        frozenset({b"SCRIPT"}),
        "ERR unknown command '",
        lambda argv: len(argv) > 1,
        lambda argv: (
            f"ERR unknown subcommand '{argv[1].decode('utf-8', 'replace')}'. Try SCRIPT HELP."
        ),
    ),
    (None, "ERR unknown command '", None, _unknown_command),
    (frozenset({b"SCAN"}), "ERR Wrong number of args", None, lambda argv: "ERR syntax error"),
    (
        None,
        "ERR Wrong number of args calling Redis command from script",
        lambda argv: argv[0].upper() not in (b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO"),
        lambda argv: (
            f"ERR wrong number of arguments for '{argv[0].decode('utf-8', 'replace').lower()}' command"
        ),
    ),
    (
        frozenset({b"SET", b"SETEX", b"PSETEX", b"GETEX"}),
        "ERR invalid expire time in ",
        None,
        lambda argv: f"ERR invalid expire time in '{argv[0].decode().lower()}' command",
    ),
    (
        frozenset({b"SCAN"}),
        "ERR value is not an integer",
        lambda argv: len(argv) > 1 and not (argv[1].isdigit() and int(argv[1]) < 2**64),
        lambda argv: "ERR invalid cursor",
    ),
    (
        frozenset({b"ZRANGE"}),
        "ERR min or max is not a float",
        lambda argv: not _has(argv, b"BYSCORE", b"BYLEX"),
        lambda argv: "ERR value is not an integer or out of range",
    ),
    (
        None,
        "ERR min or max not a valid string range item",
        None,
        lambda argv: "ERR min or max not valid string range item",
    ),
    (
        frozenset({b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT"}),
        "ERR NX and XX, GT or LT options",
        lambda argv: not _has(argv, b"NX", b"XX"),
        lambda argv: "ERR GT and LT options at the same time are not compatible",
    ),
]


class Engine:
    """An in-process Redis 7.0 (fakeredis with Lua), private to this instance.

    Commands go straight to fakeredis's command processor on a fakeredis socket (one per
    concurrent caller, reused), not through redis-py and RESP: that is 4x faster, and the
    gateway's tests send tens of thousands of commands. The socket API is fakeredis's own
    (`FakeSocket._process_command`), hence the pinned major version in requirements-dev.
    """

    def __init__(self, *, description: str = "embedded engine") -> None:
        self.description = description
        self._server = fakeredis.FakeServer(version=(7, 0))
        self._idle: list[FakeSocket] = []
        self._idle_lock = threading.Lock()

    def execute(self, command: Sequence[bytes]) -> Reply:
        if not command:
            raise CommandError("ERR empty command")
        (reply,) = self._run([command])
        if isinstance(reply, redis.ResponseError):
            raise CommandError(self._word(command, _error_text(reply)))
        return self._reply(reply, command)

    def pipeline(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        return [
            self._item(c, reply) for c, reply in zip(commands, self._run(commands), strict=True)
        ]

    def transaction(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        replies = self._run([[b"MULTI"], *commands, [b"EXEC"]])
        queued, outcome = replies[1:-1], replies[-1]
        if isinstance(outcome, redis.ResponseError):  # discarded: say which command was refused
            for command, reply in zip(commands, queued, strict=True):
                if isinstance(reply, redis.ResponseError):
                    text = self._word(command, _error_text(reply))
                    raise CommandError(f"{_EXECABORT}: {text}")
            raise CommandError(_error_text(outcome))
        assert isinstance(outcome, list)
        return [self._item(c, reply) for c, reply in zip(commands, outcome, strict=True)]

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    def _run(self, commands: Sequence[Sequence[bytes]]) -> list[Any]:
        with self._idle_lock:
            sock = self._idle.pop() if self._idle else None
        if sock is None:
            sock = FakeSocket(self._server, db=0, client_class=redis.Redis, lua_modules=None)
        replies = []
        try:
            for command in commands:
                sock._process_command(list(self._prepare(command)))
                assert sock.responses is not None
                replies.append(sock.responses.get_nowait())
        except Exception as exc:  # a fakeredis bug (e.g. a script returning a function)
            sock.close()  # its state is unknown: never reused
            raise CommandError(f"ERR embedded engine failed: {type(exc).__name__}") from None
        with self._idle_lock:
            self._idle.append(sock)
        return replies

    def _item(self, command: Sequence[bytes], reply: Any) -> Reply | CommandError:
        if isinstance(reply, redis.ResponseError):
            return CommandError(self._word(command, _error_text(reply)))
        return self._reply(reply, command)

    def _reply(self, value: Any, command: Sequence[bytes]) -> Reply:
        if value is None or isinstance(value, bytes | int):
            return value
        if isinstance(value, list):
            return [self._reply(item, command) for item in value]
        if isinstance(value, redis.ResponseError):  # an error nested in an array (scripts)
            return self._word(command, _error_text(value)).encode()
        raise TypeError(f"unexpected reply type from fakeredis: {type(value).__name__}")

    def _prepare(self, command: Sequence[bytes]) -> Sequence[bytes]:
        # fakeredis 2.41 truncates SETEX's deadline to a whole second (TTL 99 right after
        # SETEX 100); SET … EX keeps it exact, and errors are still worded for SETEX.
        if len(command) == 4 and command[0].upper() == b"SETEX":
            return [b"SET", command[1], command[3], b"EX", command[2]]
        if len(command) > 1 and command[0].upper() in (b"EVALSHA", b"EVALSHA_RO"):
            return [command[0], command[1].lower(), *command[2:]]  # Redis ignores the case
        return command

    def _word(self, command: Sequence[bytes], text: str) -> str:
        """Redis 7.0's text for an error fakeredis words its own way."""
        name = command[0].upper()
        for names, prefix, applies, word in _REWORDINGS:
            if (
                text.startswith(prefix)
                and (names is None or name in names)
                and (applies is None or applies(command))
            ):
                return word(command)
        return text
