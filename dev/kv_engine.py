"""An in-process stand-in for Redis, used when no redis-server answers.

The KV gateway prefers real Redis; this engine exists so `make dev` and the tests still
work on a machine without one. It implements the subset of commands the integration
uses with Redis 7.0's reply shapes and error texts (tests/dev/test_kv_engine.py runs the
same command list against both and compares), so the gateway has one code path for both
backends: replies are `bytes` for strings (simple or bulk), `int`, `None` or lists of
those, and a refused command raises `CommandError` carrying Redis's own message.

Thread-safe by one lock: every command, and every whole transaction, runs under it.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeAlias, TypeVar

__all__ = ["CommandError", "Engine", "Reply"]

Reply: TypeAlias = "int | bytes | list[Reply] | None"


class CommandError(Exception):
    """The server refused a command; `str(error)` is the Redis error text (`ERR …`)."""


_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
_NOT_INT = "ERR value is not an integer or out of range"
_NOT_FLOAT = "ERR value is not a valid float"
_SYNTAX = "ERR syntax error"
_OVERFLOW = "ERR increment or decrement would overflow"
_RANGE_NOT_FLOAT = "ERR min or max is not a float"
_RANGE_NOT_LEX = "ERR min or max not valid string range item"
_INT_RE = re.compile(rb"0|-?[1-9][0-9]{0,18}")
_CURSOR_RE = re.compile(rb"[+-]?[0-9]{1,20}")


class _Hash(dict[bytes, bytes]):
    """A Redis hash; insertion-ordered like Redis's small (listpack) encoding."""


class _Set(dict[bytes, None]):
    """A Redis set, as an ordered dict so iteration order is deterministic."""


class _ZSet:
    """A sorted set: member → score, plus the (score, member) order Redis sorts by."""

    __slots__ = ("order", "scores")

    def __init__(self) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, member: bytes, score: float) -> None:
        self.remove(member)
        self.scores[member] = score
        bisect.insort(self.order, (score, member))

    def remove(self, member: bytes) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        del self.order[bisect.bisect_left(self.order, (old, member))]
        return True


_Value: TypeAlias = "bytes | _Hash | _Set | _ZSet"
_V = TypeVar("_V", bytes, _Hash, _Set, _ZSet)
_Handler: TypeAlias = "Callable[[Engine, list[bytes]], Reply]"
_H = TypeVar("_H", bound=_Handler)

# name (lower case) → (Redis arity: exact if > 0, minimum if < 0; handler)
_COMMANDS: dict[str, tuple[int, _Handler]] = {}


def _command(name: str, arity: int) -> Callable[[_H], _H]:
    def register(handler: _H) -> _H:
        _COMMANDS[name] = (arity, handler)
        return handler

    return register


def _arity_error(name: str) -> CommandError:
    return CommandError(f"ERR wrong number of arguments for '{name}' command")


def _unknown_command(argv: Sequence[bytes]) -> CommandError:
    # Redis 7.0: the name, then quoted arguments until 128 bytes of them are shown.
    shown = b""
    for arg in argv[1:]:
        if len(shown) >= 128:
            break
        shown += b"'" + arg[: 128 - len(shown)] + b"' "
    text = b"unknown command '" + argv[0][:128] + b"', with args beginning with: " + shown
    message = text.decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")
    return CommandError("ERR " + message)


def _to_int(raw: bytes, error: str = _NOT_INT) -> int:
    """Redis's strict integer syntax: no sign but '-', no leading zeros, 64-bit."""
    if _INT_RE.fullmatch(raw):
        value = int(raw)
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
    raise CommandError(error)


def _strtod(text: str) -> float:
    """C's strtod over the whole text after leading blanks (hex floats included);
    raises ValueError. NaN and overflow are left for the callers, who differ on them."""
    body = text.lstrip(" \t\n\v\f\r")
    if body[-1:].isspace() or "_" in body:  # Python's float() would accept these
        raise ValueError(text)
    if body.lstrip("+-")[:2].lower() == "0x":
        return float.fromhex(body)
    return float(body)


def _to_float(raw: bytes, error: str = _NOT_FLOAT) -> float:
    """A score as Redis's getDoubleFromObject reads it: no blanks, no NaN, no overflow.
    -0 becomes 0, as Redis stores it."""
    text = raw.decode("ascii", "replace")
    try:
        value = _strtod(text)
    except ValueError:
        raise CommandError(error) from None
    if text[:1].isspace() or math.isnan(value):
        raise CommandError(error)
    if math.isinf(value) and text.lstrip("+-").lower() not in ("inf", "infinity"):
        raise CommandError(error)  # strtod reports overflow as an error here
    return value + 0.0


def _format_score(score: float) -> bytes:
    """Redis 7.0 replies doubles with printf's %.17g, infinities as inf/-inf."""
    if math.isinf(score):
        return b"inf" if score > 0 else b"-inf"
    return b"%.17g" % score


def _score_bound(raw: bytes) -> tuple[float, bool]:
    """One end of a score range: `(` means exclusive; parsed like zslParseRange, where
    leading blanks and overflow pass and an empty text is 0."""
    exclusive = raw.startswith(b"(")
    text = (raw[1:] if exclusive else raw).decode("ascii", "replace")
    if text == "":
        return 0.0, exclusive
    try:
        value = _strtod(text)
    except ValueError:
        raise CommandError(_RANGE_NOT_FLOAT) from None
    if math.isnan(value):
        raise CommandError(_RANGE_NOT_FLOAT)
    return value, exclusive


def _lex_bound(raw: bytes) -> tuple[bytes | None, bool, int]:
    """One end of a lex range as (value, exclusive, infinity): -1 for `-`, +1 for `+`."""
    if raw == b"-":
        return None, False, -1
    if raw == b"+":
        return None, False, 1
    if raw[:1] in (b"[", b"("):
        return raw[1:], raw[:1] == b"(", 0
    raise CommandError(_RANGE_NOT_LEX)


def _compile_glob(pattern: bytes) -> re.Pattern[bytes]:
    """Redis's glob (stringmatchlen): * ? [abc] [^a-z] and backslash escapes."""
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            out.append(b".*")
            i += 1
        elif c == 0x3F:  # ?
            out.append(b".")
            i += 1
        elif c == 0x5B:  # [
            i += 1
            negate = i < n and pattern[i] == 0x5E  # ^
            i += negate
            items: list[bytes] = []
            while i < n and pattern[i] != 0x5D:  # ]
                if pattern[i] == 0x5C and n - i >= 2:  # backslash
                    items.append(b"\\x%02x" % pattern[i + 1])
                    i += 2
                elif n - i >= 3 and pattern[i + 1] == 0x2D:  # a-z (reversed ranges swap)
                    lo, hi = sorted((pattern[i], pattern[i + 2]))
                    items.append(b"\\x%02x-\\x%02x" % (lo, hi))
                    i += 3
                else:
                    items.append(b"\\x%02x" % pattern[i])
                    i += 1
            i += 1  # the closing ] (an unterminated class runs to the end, as in Redis)
            if items:
                out.append(b"[" + (b"^" if negate else b"") + b"".join(items) + b"]")
            else:
                out.append(b"." if negate else b"(?!)")
        else:
            if c == 0x5C and n - i >= 2:
                i += 1
            out.append(re.escape(pattern[i : i + 1]))
            i += 1
    return re.compile(b"".join(out), re.DOTALL)


def _scan_order(key: bytes) -> int:
    """A key's fixed place in SCAN order, in [1, 2**63]: a cursor is the next place to
    visit, so keys present for a whole iteration are returned even as others change."""
    return (int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1) + 1


class Engine:
    """An embedded Redis subset with expiry; a `Backend` for the KV gateway."""

    def __init__(
        self,
        *,
        description: str = "embedded engine",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.description = description
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[bytes, _Value] = {}
        self._expires: dict[bytes, int] = {}  # key → absolute unix time in ms
        self._now = 0  # one time snapshot per command (per EXEC), like Redis

    # -- Backend -------------------------------------------------------------------

    def execute(self, command: Sequence[bytes]) -> Reply:
        """Run one command; raises `CommandError` when Redis would reply an error."""
        with self._lock:
            handler = self._resolve(command)
            self._now = self._clock_ms()
            return handler(self, list(command))

    def pipeline(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        """Each command in turn; an error is returned in its slot, not raised."""
        return [self._attempt(command) for command in commands]

    def transaction(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        """MULTI/EXEC: an unknown command or wrong arity discards everything (raises);
        any other error is returned in its slot while the rest still run."""
        with self._lock:
            handlers: list[_Handler] = []
            for command in commands:
                try:
                    handlers.append(self._resolve(command))
                except CommandError as exc:
                    raise CommandError(
                        f"EXECABORT Transaction discarded because of previous errors: {exc}"
                    ) from None
            self._now = self._clock_ms()
            results: list[Reply | CommandError] = []
            for handler, command in zip(handlers, commands, strict=True):
                try:
                    results.append(handler(self, list(command)))
                except CommandError as exc:
                    results.append(exc)
            return results

    def close(self) -> None:
        """Nothing to release; here so the engine is a drop-in `Backend`."""

    # -- dispatch ------------------------------------------------------------------

    def _attempt(self, command: Sequence[bytes]) -> Reply | CommandError:
        try:
            return self.execute(command)
        except CommandError as exc:
            return exc

    def _resolve(self, command: Sequence[bytes]) -> _Handler:
        if not command:
            raise CommandError("ERR empty command")
        name = command[0].decode("latin-1").lower()
        spec = _COMMANDS.get(name)
        if spec is None:
            raise _unknown_command(command)
        arity, handler = spec
        if (arity > 0 and len(command) != arity) or (arity < 0 and len(command) < -arity):
            raise _arity_error(name)
        return handler

    def _clock_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- keyspace --------------------------------------------------------------------

    def _live(self, key: bytes) -> _Value | None:
        """The key's value, deleting it first if it has expired (Redis: now > when)."""
        value = self._data.get(key)
        if value is None:
            return None
        when = self._expires.get(key)
        if when is not None and self._now > when:
            self._delete(key)
            return None
        return value

    def _typed(self, key: bytes, kind: type[_V]) -> _V | None:
        value = self._live(key)
        if value is None:
            return None
        if not isinstance(value, kind):
            raise CommandError(_WRONGTYPE)
        return value

    def _delete(self, key: bytes) -> bool:
        self._expires.pop(key, None)
        return self._data.pop(key, None) is not None

    def _store(self, key: bytes, value: _Value, *, keep_ttl: bool = False) -> None:
        self._data[key] = value
        if not keep_ttl:
            self._expires.pop(key, None)

    def _drop_if_empty(self, key: bytes, value: _Hash | _Set | _ZSet) -> None:
        if not len(value):
            self._delete(key)

    def _live_keys(self) -> Iterator[bytes]:
        for key in list(self._data):
            if self._live(key) is not None:
                yield key

    def _hash_for_write(self, key: bytes) -> _Hash:
        value = self._typed(key, _Hash)
        if value is None:
            value = _Hash()
            self._store(key, value)
        return value

    # -- connection ------------------------------------------------------------------

    @_command("ping", -1)
    def _ping(self, argv: list[bytes]) -> Reply:
        if len(argv) > 2:
            raise _arity_error("ping")
        return argv[1] if len(argv) == 2 else b"PONG"

    @_command("echo", 2)
    def _echo(self, argv: list[bytes]) -> Reply:
        return argv[1]

    # -- strings ---------------------------------------------------------------------

    @_command("get", 2)
    def _get(self, argv: list[bytes]) -> Reply:
        return self._typed(argv[1], bytes)

    @_command("getdel", 2)
    def _getdel(self, argv: list[bytes]) -> Reply:
        value = self._typed(argv[1], bytes)
        if value is not None:
            self._delete(argv[1])
        return value

    @_command("set", -3)
    def _set(self, argv: list[bytes]) -> Reply:
        key, value = argv[1], argv[2]
        nx = xx = get = keep_ttl = False
        expire_kind: bytes | None = None
        expire_raw = b""
        j = 3
        while j < len(argv):
            opt = argv[j].upper()
            has_next = j + 1 < len(argv)
            if opt == b"NX" and not xx:
                nx = True
            elif opt == b"XX" and not nx:
                xx = True
            elif opt == b"GET":
                get = True
            elif opt == b"KEEPTTL" and expire_kind is None:
                keep_ttl = True
            elif (
                opt in (b"EX", b"PX", b"EXAT", b"PXAT")
                and not keep_ttl
                and expire_kind in (None, opt)
                and has_next
            ):
                expire_kind, expire_raw = opt, argv[j + 1]
                j += 1
            else:
                raise CommandError(_SYNTAX)
            j += 1
        when: int | None = None
        if expire_kind is not None:
            when = self._expire_time(
                expire_raw,
                seconds=expire_kind in (b"EX", b"EXAT"),
                relative=expire_kind in (b"EX", b"PX"),
                command="set",
            )
        old = self._typed(key, bytes) if get else None
        exists = self._live(key) is not None
        if (nx and exists) or (xx and not exists):
            return old
        self._store(key, value, keep_ttl=keep_ttl)
        if when is not None:
            self._expires[key] = when
        return old if get else b"OK"

    @_command("setex", 4)
    def _setex(self, argv: list[bytes]) -> Reply:
        when = self._expire_time(argv[2], seconds=True, relative=True, command="setex")
        self._store(argv[1], argv[3])
        self._expires[argv[1]] = when
        return b"OK"

    @_command("setnx", 3)
    def _setnx(self, argv: list[bytes]) -> Reply:
        if self._live(argv[1]) is not None:
            return 0
        self._store(argv[1], argv[2])
        return 1

    def _expire_time(self, raw: bytes, *, seconds: bool, relative: bool, command: str) -> int:
        """SET-family expiry argument → absolute ms (getExpireMillisecondsOrReply)."""
        amount = _to_int(raw)
        invalid = CommandError(f"ERR invalid expire time in '{command}' command")
        if amount <= 0 or (seconds and amount > _INT64_MAX // 1000):
            raise invalid
        when = amount * 1000 if seconds else amount
        if relative:
            if when > _INT64_MAX - self._now:
                raise invalid
            when += self._now
        return when

    @_command("mget", -2)
    def _mget(self, argv: list[bytes]) -> Reply:
        values = (self._live(key) for key in argv[1:])
        return [value if isinstance(value, bytes) else None for value in values]

    @_command("mset", -3)
    def _mset(self, argv: list[bytes]) -> Reply:
        if len(argv) % 2 == 0:
            raise _arity_error("mset")
        for i in range(1, len(argv), 2):
            self._store(argv[i], argv[i + 1])
        return b"OK"

    @_command("incr", 2)
    def _incr(self, argv: list[bytes]) -> Reply:
        return self._incr_by(argv[1], 1)

    @_command("decr", 2)
    def _decr(self, argv: list[bytes]) -> Reply:
        return self._incr_by(argv[1], -1)

    @_command("incrby", 3)
    def _incrby(self, argv: list[bytes]) -> Reply:
        return self._incr_by(argv[1], _to_int(argv[2]))

    @_command("decrby", 3)
    def _decrby(self, argv: list[bytes]) -> Reply:
        amount = _to_int(argv[2])
        if amount == _INT64_MIN:
            raise CommandError("ERR decrement would overflow")
        return self._incr_by(argv[1], -amount)

    def _incr_by(self, key: bytes, amount: int) -> int:
        current = self._typed(key, bytes)
        value = 0 if current is None else _to_int(current)
        result = value + amount
        if not _INT64_MIN <= result <= _INT64_MAX:
            raise CommandError(_OVERFLOW)
        self._store(key, str(result).encode(), keep_ttl=True)
        return result

    # -- keys ------------------------------------------------------------------------

    @_command("del", -2)
    def _del(self, argv: list[bytes]) -> Reply:
        return sum(self._live(key) is not None and self._delete(key) for key in argv[1:])

    @_command("unlink", -2)
    def _unlink(self, argv: list[bytes]) -> Reply:
        return self._del(argv)

    @_command("exists", -2)
    def _exists(self, argv: list[bytes]) -> Reply:
        return sum(self._live(key) is not None for key in argv[1:])

    @_command("type", 2)
    def _type(self, argv: list[bytes]) -> Reply:
        value = self._live(argv[1])
        if value is None:
            return b"none"
        if isinstance(value, bytes):
            return b"string"
        return {_Hash: b"hash", _Set: b"set", _ZSet: b"zset"}[type(value)]

    @_command("expire", -3)
    def _expire(self, argv: list[bytes]) -> Reply:
        return self._expire_generic(argv, "expire", seconds=True, relative=True)

    @_command("pexpire", -3)
    def _pexpire(self, argv: list[bytes]) -> Reply:
        return self._expire_generic(argv, "pexpire", seconds=False, relative=True)

    @_command("expireat", -3)
    def _expireat(self, argv: list[bytes]) -> Reply:
        return self._expire_generic(argv, "expireat", seconds=True, relative=False)

    @_command("pexpireat", -3)
    def _pexpireat(self, argv: list[bytes]) -> Reply:
        return self._expire_generic(argv, "pexpireat", seconds=False, relative=False)

    def _expire_generic(
        self, argv: list[bytes], name: str, *, seconds: bool, relative: bool
    ) -> int:
        flags: set[bytes] = set()
        for opt in argv[3:]:
            flag = opt.upper()
            if flag not in (b"NX", b"XX", b"GT", b"LT"):
                shown = opt.decode("utf-8", "replace")
                raise CommandError(f"ERR Unsupported option {shown}")
            flags.add(flag)
        if b"NX" in flags and flags & {b"XX", b"GT", b"LT"}:
            raise CommandError(
                "ERR NX and XX, GT or LT options at the same time are not compatible"
            )
        if {b"GT", b"LT"} <= flags:
            raise CommandError("ERR GT and LT options at the same time are not compatible")
        when = _to_int(argv[2])
        invalid = CommandError(f"ERR invalid expire time in '{name}' command")
        if seconds:
            if not -(-_INT64_MIN // 1000) <= when <= _INT64_MAX // 1000:
                raise invalid
            when *= 1000
        base = self._now if relative else 0
        if when > _INT64_MAX - base:
            raise invalid
        when += base
        key = argv[1]
        if self._live(key) is None:
            return 0
        current = self._expires.get(key)
        if (
            (b"NX" in flags and current is not None)
            or (b"XX" in flags and current is None)
            or (b"GT" in flags and (current is None or when <= current))
            or (b"LT" in flags and current is not None and when >= current)
        ):
            return 0
        if when <= self._now:
            self._delete(key)
        else:
            self._expires[key] = when
        return 1

    @_command("ttl", 2)
    def _ttl(self, argv: list[bytes]) -> Reply:
        remaining = self._remaining_ms(argv[1])
        return remaining if remaining < 0 else (remaining + 500) // 1000

    @_command("pttl", 2)
    def _pttl(self, argv: list[bytes]) -> Reply:
        return self._remaining_ms(argv[1])

    def _remaining_ms(self, key: bytes) -> int:
        if self._live(key) is None:
            return -2
        when = self._expires.get(key)
        return -1 if when is None else max(when - self._now, 0)

    @_command("persist", 2)
    def _persist(self, argv: list[bytes]) -> Reply:
        if self._live(argv[1]) is None:
            return 0
        return int(self._expires.pop(argv[1], None) is not None)

    @_command("keys", 2)
    def _keys(self, argv: list[bytes]) -> Reply:
        matcher = _compile_glob(argv[1])
        return [key for key in self._live_keys() if matcher.fullmatch(key)]

    @_command("scan", -2)
    def _scan(self, argv: list[bytes]) -> Reply:
        # strtoul: an optional sign (a negative cursor wraps around), at most 2**64 - 1.
        if not _CURSOR_RE.fullmatch(argv[1]) or abs(int(argv[1])) >= 2**64:
            raise CommandError("ERR invalid cursor")
        cursor = int(argv[1]) % 2**64
        count, matcher, kind = 10, None, None
        i = 2
        while i < len(argv):
            opt, has_value = argv[i].upper(), len(argv) - i >= 2
            if opt == b"COUNT" and has_value:
                count = _to_int(argv[i + 1])
                if count < 1:
                    raise CommandError(_SYNTAX)
            elif opt == b"MATCH" and has_value:
                matcher = None if argv[i + 1] == b"*" else _compile_glob(argv[i + 1])
            elif opt == b"TYPE" and has_value:
                kind = argv[i + 1].lower()
            else:
                raise CommandError(_SYNTAX)
            i += 2
        ordered = sorted((_scan_order(key), key) for key in self._live_keys())
        start = bisect.bisect_left(ordered, (cursor, b""))
        end = min(start + count, len(ordered))
        while 0 < end < len(ordered) and ordered[end][0] == ordered[end - 1][0]:
            end += 1  # never split keys that share a place between two pages
        next_cursor = ordered[end][0] if end < len(ordered) else 0
        page = [key for _, key in ordered[start:end]]
        if matcher is not None:
            page = [key for key in page if matcher.fullmatch(key)]
        if kind is not None:
            page = [key for key in page if self._type([b"type", key]) == kind]
        return [str(next_cursor).encode(), list(page)]

    @_command("dbsize", 1)
    def _dbsize(self, argv: list[bytes]) -> Reply:
        return sum(1 for _ in self._live_keys())

    @_command("flushdb", -1)
    def _flushdb(self, argv: list[bytes]) -> Reply:
        if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() not in (b"SYNC", b"ASYNC")):
            raise CommandError(_SYNTAX)
        self._data.clear()
        self._expires.clear()
        return b"OK"

    # -- hashes ----------------------------------------------------------------------

    @_command("hset", -4)
    def _hset(self, argv: list[bytes]) -> Reply:
        if len(argv) % 2:
            raise _arity_error("hset")
        value = self._hash_for_write(argv[1])
        added = 0
        for i in range(2, len(argv), 2):
            added += argv[i] not in value
            value[argv[i]] = argv[i + 1]
        return added

    @_command("hsetnx", 4)
    def _hsetnx(self, argv: list[bytes]) -> Reply:
        value = self._hash_for_write(argv[1])
        if argv[2] in value:
            return 0
        value[argv[2]] = argv[3]
        return 1

    @_command("hget", 3)
    def _hget(self, argv: list[bytes]) -> Reply:
        value = self._typed(argv[1], _Hash)
        return None if value is None else value.get(argv[2])

    @_command("hmget", -3)
    def _hmget(self, argv: list[bytes]) -> Reply:
        value = self._typed(argv[1], _Hash) or _Hash()
        return [value.get(field) for field in argv[2:]]

    @_command("hgetall", 2)
    def _hgetall(self, argv: list[bytes]) -> Reply:
        value = self._typed(argv[1], _Hash) or _Hash()
        return [item for pair in value.items() for item in pair]

    @_command("hkeys", 2)
    def _hkeys(self, argv: list[bytes]) -> Reply:
        return list(self._typed(argv[1], _Hash) or ())

    @_command("hvals", 2)
    def _hvals(self, argv: list[bytes]) -> Reply:
        return list((self._typed(argv[1], _Hash) or _Hash()).values())

    @_command("hdel", -3)
    def _hdel(self, argv: list[bytes]) -> Reply:
        value = self._typed(argv[1], _Hash)
        if value is None:
            return 0
        removed = sum(value.pop(field, None) is not None for field in argv[2:])
        self._drop_if_empty(argv[1], value)
        return removed

    @_command("hexists", 3)
    def _hexists(self, argv: list[bytes]) -> Reply:
        return int(argv[2] in (self._typed(argv[1], _Hash) or ()))

    @_command("hlen", 2)
    def _hlen(self, argv: list[bytes]) -> Reply:
        return len(self._typed(argv[1], _Hash) or ())

    @_command("hincrby", 4)
    def _hincrby(self, argv: list[bytes]) -> Reply:
        amount = _to_int(argv[3])
        value = self._hash_for_write(argv[1])
        current = value.get(argv[2])
        old = 0 if current is None else _to_int(current, "ERR hash value is not an integer")
        result = old + amount
        if not _INT64_MIN <= result <= _INT64_MAX:
            raise CommandError(_OVERFLOW)
        value[argv[2]] = str(result).encode()
        return result

    # -- sets ------------------------------------------------------------------------

    @_command("sadd", -3)
    def _sadd(self, argv: list[bytes]) -> Reply:
        value = self._typed(argv[1], _Set)
        if value is None:
            value = _Set()
            self._store(argv[1], value)
        added = 0
        for member in argv[2:]:
            added += member not in value
            value[member] = None
        return added

    @_command("srem", -3)
    def _srem(self, argv: list[bytes]) -> Reply:
        value = self._typed(argv[1], _Set)
        if value is None:
            return 0
        removed = 0
        for member in argv[2:]:
            if member in value:
                del value[member]
                removed += 1
        self._drop_if_empty(argv[1], value)
        return removed

    @_command("smembers", 2)
    def _smembers(self, argv: list[bytes]) -> Reply:
        return list(self._typed(argv[1], _Set) or ())

    @_command("sismember", 3)
    def _sismember(self, argv: list[bytes]) -> Reply:
        return int(argv[2] in (self._typed(argv[1], _Set) or ()))

    @_command("scard", 2)
    def _scard(self, argv: list[bytes]) -> Reply:
        return len(self._typed(argv[1], _Set) or ())

    # -- sorted sets -----------------------------------------------------------------

    @_command("zadd", -4)
    def _zadd(self, argv: list[bytes]) -> Reply:
        flags: set[bytes] = set()
        i = 2
        while i < len(argv) and argv[i].upper() in (b"NX", b"XX", b"CH", b"INCR", b"GT", b"LT"):
            flags.add(argv[i].upper())
            i += 1
        pairs = argv[i:]
        if not pairs or len(pairs) % 2:
            raise CommandError(_SYNTAX)
        if {b"NX", b"XX"} <= flags:
            raise CommandError("ERR XX and NX options at the same time are not compatible")
        if (b"NX" in flags and flags & {b"GT", b"LT"}) or {b"GT", b"LT"} <= flags:
            raise CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
        incr = b"INCR" in flags
        if incr and len(pairs) > 2:
            raise CommandError("ERR INCR option supports a single increment-element pair")
        scores = [_to_float(pairs[j]) for j in range(0, len(pairs), 2)]
        key = argv[1]
        zset = self._typed(key, _ZSet)
        if zset is None:
            if b"XX" in flags:
                return None if incr else 0
            zset = _ZSet()
            self._store(key, zset)
        added = updated = processed = 0
        score = 0.0
        for score, member in zip(scores, pairs[1::2], strict=True):
            current = zset.scores.get(member)
            if current is None:
                if b"XX" in flags:
                    continue
                zset.add(member, score)
                added += 1
            else:
                if b"NX" in flags:
                    continue
                if incr:
                    score += current
                    if math.isnan(score):
                        self._drop_if_empty(key, zset)
                        raise CommandError("ERR resulting score is not a number (NaN)")
                if (b"LT" in flags and score >= current) or (b"GT" in flags and score <= current):
                    continue
                if score != current:
                    zset.add(member, score)
                    updated += 1
            processed += 1
        self._drop_if_empty(key, zset)
        if incr:
            return _format_score(score) if processed else None
        return added + updated if b"CH" in flags else added

    @_command("zrem", -3)
    def _zrem(self, argv: list[bytes]) -> Reply:
        zset = self._typed(argv[1], _ZSet)
        if zset is None:
            return 0
        removed = sum(zset.remove(member) for member in argv[2:])
        self._drop_if_empty(argv[1], zset)
        return removed

    @_command("zcard", 2)
    def _zcard(self, argv: list[bytes]) -> Reply:
        return len(self._typed(argv[1], _ZSet) or ())

    @_command("zscore", 3)
    def _zscore(self, argv: list[bytes]) -> Reply:
        zset = self._typed(argv[1], _ZSet)
        score = None if zset is None else zset.scores.get(argv[2])
        return None if score is None else _format_score(score)

    @_command("zcount", 4)
    def _zcount(self, argv: list[bytes]) -> Reply:
        low, high = _score_bound(argv[2]), _score_bound(argv[3])
        zset = self._typed(argv[1], _ZSet)
        return 0 if zset is None else len(self._by_score(zset, low, high))

    @_command("zremrangebyscore", 4)
    def _zremrangebyscore(self, argv: list[bytes]) -> Reply:
        low, high = _score_bound(argv[2]), _score_bound(argv[3])
        zset = self._typed(argv[1], _ZSet)
        if zset is None:
            return 0
        doomed = self._by_score(zset, low, high)
        for _, member in doomed:
            zset.remove(member)
        self._drop_if_empty(argv[1], zset)
        return len(doomed)

    @_command("zrange", -4)
    def _zrange(self, argv: list[bytes]) -> Reply:
        return self._zrange_generic(argv, by=None, reverse=None)

    @_command("zrangebyscore", -4)
    def _zrangebyscore(self, argv: list[bytes]) -> Reply:
        return self._zrange_generic(argv, by=b"BYSCORE", reverse=False)

    def _zrange_generic(self, argv: list[bytes], by: bytes | None, reverse: bool | None) -> Reply:
        """ZRANGE and its older forms, following zrangeGenericCommand's checks in order."""
        withscores = False
        offset, limit = 0, -1
        j = 4
        while j < len(argv):
            opt = argv[j].upper()
            if opt == b"WITHSCORES":
                withscores = True
            elif opt == b"LIMIT" and len(argv) - j - 1 >= 2:
                offset, limit = _to_int(argv[j + 1]), _to_int(argv[j + 2])
                j += 2
            elif opt == b"REV" and reverse is None:
                reverse = True
            elif opt in (b"BYSCORE", b"BYLEX") and by is None:
                by = opt
            else:
                raise CommandError(_SYNTAX)
            j += 1
        if limit != -1 and by is None:
            raise CommandError(
                "ERR syntax error, LIMIT is only supported in combination with either "
                "BYSCORE or BYLEX"
            )
        if withscores and by == b"BYLEX":
            raise CommandError(
                "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
            )
        low, high = (argv[3], argv[2]) if reverse and by else (argv[2], argv[3])
        if by == b"BYSCORE":
            score_range = _score_bound(low), _score_bound(high)
        elif by == b"BYLEX":
            lex_range = _lex_bound(low), _lex_bound(high)
        else:
            start, stop = _to_int(low), _to_int(high)
        zset = self._typed(argv[1], _ZSet)
        if zset is None:
            return []
        if by is None:
            size = len(zset)
            start, stop = (
                (start + size if start < 0 else start),
                (stop + size if stop < 0 else stop),
            )
            start = max(start, 0)
            if start > stop or start >= size:
                return []
            ordered = zset.order[::-1] if reverse else zset.order
            items = ordered[start : min(stop, size - 1) + 1]
        else:
            if by == b"BYSCORE":
                items = self._by_score(zset, *score_range)
            else:
                items = self._by_lex(zset, *lex_range)
            if reverse:
                items.reverse()
            if offset < 0:
                items = []
            items = items[offset:] if limit < 0 else items[offset : offset + limit]
        if not withscores:
            return [member for _, member in items]
        return [part for score, member in items for part in (member, _format_score(score))]

    @staticmethod
    def _by_score(
        zset: _ZSet, low: tuple[float, bool], high: tuple[float, bool]
    ) -> list[tuple[float, bytes]]:
        (lo, lo_ex), (hi, hi_ex) = low, high
        return [
            (score, member)
            for score, member in zset.order
            if (score > lo if lo_ex else score >= lo) and (score < hi if hi_ex else score <= hi)
        ]

    @staticmethod
    def _by_lex(
        zset: _ZSet, low: tuple[bytes | None, bool, int], high: tuple[bytes | None, bool, int]
    ) -> list[tuple[float, bytes]]:
        def above(member: bytes) -> bool:
            value, exclusive, infinity = low
            if infinity:
                return infinity < 0
            assert value is not None
            return member > value if exclusive else member >= value

        def below(member: bytes) -> bool:
            value, exclusive, infinity = high
            if infinity:
                return infinity > 0
            assert value is not None
            return member < value if exclusive else member <= value

        return [(score, member) for score, member in zset.order if above(member) and below(member)]
