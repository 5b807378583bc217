"""Where the KV gateway's commands run: real Redis, or fakeredis embedded in the process.

Both are driven through redis-py with its reply post-processing turned off, so the gateway
sees Redis's own shapes from either: `bytes` for any string (simple or bulk), `int`, `None`
and lists of those, and a refused command raises `CommandError` carrying the server's text.

`Engine` is the fallback when no Redis answers: fakeredis (https://fakeredis.readthedocs.io)
speaking as Redis 7.0, with Lua through lupa so EVAL/EVALSHA/SCRIPT LOAD run as they do on
Upstash. It is thread-safe: each thread takes its own connection from redis-py's pool, and
fakeredis runs every command, every whole MULTI/EXEC and every script under its server lock,
so a transaction or a script is atomic against the gateway's other threads.

tests/dev/test_kv_engine.py replays the same commands through the gateway over both engines
and compares the answers; where fakeredis words an error differently from Redis 7.0, the
rewrite below restores Redis's text, and the differences left are listed in that test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import fakeredis
import redis
from redis.client import Pipeline

__all__ = ["BackendUnavailable", "ClientBackend", "CommandError", "Engine", "Reply"]

Reply: TypeAlias = "int | bytes | list[Reply] | None"

_EXECABORT = "EXECABORT Transaction discarded because of previous errors"


class CommandError(Exception):
    """The server refused a command; `str(error)` is the Redis error text (`ERR …`)."""


class BackendUnavailable(RuntimeError):
    """The Redis behind the gateway cannot be reached (at start-up or mid-request)."""


class _Transaction(Pipeline):
    """A redis-py transaction that keeps Redis's error text as it is (redis-py would prefix
    a queue-time error with "Command # n (…) of pipeline caused error"), and remembers which
    command failed so an engine can word its error."""

    def annotate_exception(self, exception: Exception, number: int, command: Any) -> None:
        exception.command = command  # type: ignore[attr-defined]


def _error_text(exc: redis.RedisError) -> str:
    # redis-py strips a known error code ("ERR", "EXECABORT", …) off the message and
    # keeps it as `status_code`; put it back so clients see what Redis said.
    code = getattr(exc, "status_code", None)
    return f"{code} {exc}" if code else str(exc)


def _redis_args(command: Sequence[bytes]) -> list[str | bytes]:
    # redis-py looks commands up by name in places; give it the name as text.
    name = command[0]
    return [name.decode() if name.isascii() else name, *command[1:]]


class ClientBackend:
    """Commands through a redis-py client, with no client-side retries (a retry could run
    a non-idempotent command twice behind the caller's back)."""

    def __init__(self, client: redis.Redis, description: str) -> None:
        client.response_callbacks.clear()
        self._client = client
        self.description = description

    def execute(self, command: Sequence[bytes]) -> Reply:
        """One command; raises `CommandError` with Redis's error text."""
        try:
            reply = self._client.execute_command(*_redis_args(self._prepare(command)))  # type: ignore[no-untyped-call]
            return self._reply(reply, command)
        except redis.ResponseError as exc:
            raise CommandError(self._word(command, _error_text(exc))) from None
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
            failed = [
                a if isinstance(a, bytes) else str(a).encode() for a in getattr(exc, "command", ())
            ]
            raise CommandError(f"{_EXECABORT}: {self._word(failed, _error_text(exc))}") from None

    def close(self) -> None:
        self._client.close()

    def _prepare(self, command: Sequence[bytes]) -> Sequence[bytes]:
        """What to send for `command` (an engine may rewrite it)."""
        return command

    def _word(self, command: Sequence[bytes], text: str) -> str:
        """The error text a client sees for `command` (an engine may reword it)."""
        return text

    def _reply(self, value: Any, command: Sequence[bytes]) -> Reply:
        if value is None or isinstance(value, bytes | int):
            return value
        if isinstance(value, list):
            return [self._reply(item, command) for item in value]
        if isinstance(value, redis.ResponseError):  # an error nested in an array (scripts)
            return self._word(command, _error_text(value)).encode()
        raise TypeError(f"unexpected reply type from Redis: {type(value).__name__}")

    def _run(
        self, pipe: Pipeline, commands: Sequence[Sequence[bytes]]
    ) -> list[Reply | CommandError]:
        try:
            for command in commands:
                pipe.execute_command(*_redis_args(self._prepare(command)))  # type: ignore[no-untyped-call]
            replies = pipe.execute(raise_on_error=False)
        except redis.ResponseError:
            raise
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis failed: {type(exc).__name__}: {exc}") from None
        finally:
            pipe.reset()
        return [
            CommandError(self._word(command, _error_text(reply)))
            if isinstance(reply, redis.ResponseError)
            else self._reply(reply, command)
            for command, reply in zip(commands, replies, strict=True)
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


class Engine(ClientBackend):
    """An in-process Redis 7.0 (fakeredis with Lua), private to this instance."""

    def __init__(self, *, description: str = "embedded engine") -> None:
        server = fakeredis.FakeServer(version=(7, 0))
        super().__init__(fakeredis.FakeRedis(server=server, protocol=2), description)

    def execute(self, command: Sequence[bytes]) -> Reply:
        if not command:  # redis-py would send nothing and wait for a reply forever
            raise CommandError("ERR empty command")
        try:
            return super().execute(command)
        except (CommandError, BackendUnavailable):
            raise
        except Exception as exc:  # a fakeredis bug (e.g. a script returning a function)
            raise CommandError(f"ERR embedded engine failed: {type(exc).__name__}") from None

    def _prepare(self, command: Sequence[bytes]) -> Sequence[bytes]:
        # fakeredis 2.41 truncates SETEX's deadline to a whole second (TTL 99 right after
        # SETEX 100); SET … EX keeps it exact, and errors are still worded for SETEX.
        if len(command) == 4 and command[0].upper() == b"SETEX":
            return [b"SET", command[1], command[3], b"EX", command[2]]
        if len(command) > 1 and command[0].upper() in (b"EVALSHA", b"EVALSHA_RO"):
            return [command[0], command[1].lower(), *command[2:]]  # Redis ignores the case
        return command

    def _word(self, command: Sequence[bytes], text: str) -> str:
        if not command:
            return text
        name = command[0].upper()
        for names, prefix, applies, word in _REWORDINGS:
            if (
                text.startswith(prefix)
                and (names is None or name in names)
                and (applies is None or applies(command))
            ):
                return word(command)
        return text
