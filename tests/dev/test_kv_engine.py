"""The embedded engine: differential parity with real Redis, then what only it can show.

The parity test runs one command script on a fresh engine and on real Redis (the test
DB) and compares every reply and every error text, so the gateway behaves the same
whichever backend `make dev` finds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dev.kv_engine import CommandError, Engine, Reply
from dev.kv_gateway import Backend, RedisBackend

Step = str | Sequence[str | bytes]
Outcome = tuple[str, object]

# Replies whose order Redis does not define: compared sorted.
_UNORDERED = {b"SMEMBERS", b"KEYS"}

# One string per command (split on spaces), or a list when an argument needs spaces,
# emptiness or raw bytes. Scores stay exactly representable in a short decimal so the
# script holds on Redis 7.0 (%.17g) and on 7.2+ (shortest form) alike.
SCRIPT: list[Step] = [
    # connection
    "PING",
    "PING hello",
    "PING a b",
    "ECHO hi",
    "ECHO",
    "NOSUCHCOMMAND a b",
    ["NOSUCHCOMMAND", "x" * 200, "y"],
    "NOSUCHCOMMAND",
    # strings and SET options
    "SET s v",
    "GET s",
    "GET missing",
    "GET",
    "SET s",
    "SET s v2 NX",
    "SET s v2 XX",
    "GET s",
    "SET new v XX",
    "GET new",
    "SET s v3 GET",
    "SET fresh v GET",
    "SET s v4 NX GET",
    "GET s",
    "SET s v NX XX",
    "SET s v XX NX",
    "SET s v EX",
    "SET s v EX 0",
    "SET s v EX -5",
    "SET s v EX abc",
    "SET s v PX 1.5",
    "SET s v EX 9223372036854775807",
    "SET s v EX 100 PX 100",
    "SET s v EX 100 EX 200",
    "TTL s",
    "SET s v EX 100 KEEPTTL",
    "SET s v KEEPTTL EX 100",
    "SET s v2 KEEPTTL",
    "TTL s",
    "SET s v3",
    "TTL s",
    "SET s v BOGUS",
    "SET s v nx",
    "SET s v ex 50",
    "TTL s",
    "SET s v PXAT 1",
    "GET s",
    "EXISTS s",
    ["SET", "", "empty key"],
    ["GET", ""],
    ["SET", "bin", b"\x00\xff\xfe"],
    "GET bin",
    "MSET a 1 b 2 c 3",
    "MSET a 1 b",
    "MGET a b c missing",
    "MGET",
    "GETDEL a",
    "GETDEL a",
    "SETNX b 9",
    "SETNX z 9",
    "GET z",
    "SETEX e 100 v",
    "TTL e",
    "SETEX e 0 v",
    "SETEX e x v",
    # counters
    "INCR n",
    "INCR n",
    "INCRBY n 10",
    "INCRBY n -3",
    "DECR n",
    "DECRBY n 5",
    "INCRBY n x",
    "INCRBY n 1.5",
    "DECRBY n -9223372036854775808",
    "SET big 9223372036854775807",
    "INCR big",
    "SET small -9223372036854775808",
    "DECR small",
    "SET txt hello",
    "INCR txt",
    "SET lead 007",
    "INCR lead",
    "SET plus +5",
    "INCR plus",
    "SET negzero -0",
    "INCR negzero",
    ["SET", "spaced", " 5"],
    "INCR spaced",
    "SET n2 5 EX 100",
    "INCR n2",
    "TTL n2",
    # keys, types and expiry
    "DEL b c missing",
    "DEL b",
    "UNLINK z missing",
    "EXISTS n n missing",
    "TYPE n",
    "TYPE missing",
    "EXPIRE n 100",
    "TTL n",
    "PTTL missing",
    "PTTL txt",
    "TTL missing",
    "TTL txt",
    "EXPIRE missing 100",
    "EXPIRE n abc",
    "EXPIRE n 100 NX",
    "EXPIRE n 200 XX",
    "TTL n",
    "EXPIRE n 50 GT",
    "EXPIRE n 500 GT",
    "TTL n",
    "EXPIRE n 900 LT",
    "EXPIRE n 10 LT",
    "TTL n",
    "EXPIRE txt 100 XX",
    "EXPIRE txt 100 GT",
    "EXPIRE txt 100 LT",
    "TTL txt",
    "PERSIST txt",
    "EXPIRE txt 100 NX",
    "EXPIRE n 100 NX XX",
    "EXPIRE n 100 GT LT",
    "EXPIRE n 100 NX GT",
    "EXPIRE n 100 BOGUS",
    "EXPIRE n 9223372036854775807",
    "PEXPIRE n 9223372036854775807",
    "PEXPIRE n 100000",
    "TTL n",
    "PERSIST n",
    "PERSIST n",
    "PERSIST missing",
    "TTL n",
    "EXPIREAT n 4102444800",
    "EXPIREAT n 1",
    "EXISTS n",
    "PEXPIREAT txt 1",
    "GET txt",
    "SET gone v",
    "EXPIRE gone -1",
    "EXISTS gone",
    "EXPIRE",
    "TTL",
    # hashes
    "HSET h f1 v1 f2 v2",
    "HSET h f1 x f3 v3",
    "HSET h f1",
    "HSET h f1 v1 f2",
    "HGET h f1",
    "HGET h nope",
    "HGET nohash f",
    "HMGET h f1 nope f3",
    "HMGET nohash a b",
    "HGETALL h",
    "HGETALL nohash",
    "HKEYS h",
    "HVALS h",
    "HSETNX h f1 y",
    "HSETNX h f4 y",
    "HEXISTS h f4",
    "HEXISTS h nope",
    "HLEN h",
    "HLEN nohash",
    "HDEL h f4 nope",
    "HDEL nohash f",
    "HINCRBY h cnt 5",
    "HINCRBY h cnt -7",
    "HINCRBY h f1 1",
    "HINCRBY h cnt x",
    "HSET h maxed 9223372036854775807",
    "HINCRBY h maxed 1",
    "HDEL h f1 f2 f3 cnt maxed",
    "EXISTS h",
    "TYPE h",
    # sets
    "SADD st a b c a",
    "SADD st c d",
    "SADD st",
    "SMEMBERS st",
    "SMEMBERS noset",
    "SISMEMBER st a",
    "SISMEMBER st z",
    "SISMEMBER noset a",
    "SCARD st",
    "SCARD noset",
    "SREM st a z",
    "SREM noset a",
    "SREM st b c d",
    "EXISTS st",
    "SADD st x",
    "TYPE st",
    # sorted sets
    "ZADD zs 1 a 2 b 3 c",
    "ZADD zs 1.5 a 4 d",
    "ZADD zs CH 1 a 5 d 6 e",
    "ZADD zs NX 100 a 7 f",
    "ZADD zs XX 8 f 9 nope",
    "ZADD zs GT 0 a 9 b",
    "ZADD zs LT 0 a 99 c",
    "ZADD zs XX GT CH 10 b",
    "ZADD zs INCR 2.5 a",
    "ZADD zs INCR NX 1 a",
    "ZADD zs INCR XX 1 nope",
    "ZADD zs INCR 1 a 2 b",
    "ZADD zs NX XX 1 a",
    "ZADD zs NX GT 1 a",
    "ZADD zs GT LT 1 a",
    "ZADD zs 1",
    "ZADD zs 1 a 2",
    "ZADD zs x a",
    "ZADD zs nan a",
    "ZADD zs inf top -inf bottom",
    "ZADD zs INCR -inf top",
    "ZADD odd 1e2 a +3 b -0 c .5 d 1.5e1 e",
    "ZADD odd infinity f -Infinity g",
    "ZADD odd 0x10 h",
    ["ZADD", "odd", " 1", "i"],
    ["ZADD", "odd", "1 ", "i"],
    "ZADD odd 1_0 i",
    "ZADD odd 1e999 i",
    "ZRANGE odd 0 -1 WITHSCORES",
    ["ZRANGE", "odd", "", "(", "BYSCORE", "WITHSCORES"],
    ["ZRANGE", "odd", " 1", "1e2", "BYSCORE"],
    ["ZRANGE", "odd", "  ", "1", "BYSCORE"],
    "ZRANGE odd (-inf (inf BYSCORE",
    "ZRANGE odd (1e999 +inf BYSCORE",
    "ZCOUNT odd -inf 0",
    "ZADD nozs XX 1 a",
    "EXISTS nozs",
    "ZCARD zs",
    "ZCARD nozs",
    "ZSCORE zs a",
    "ZSCORE zs top",
    "ZSCORE zs bottom",
    "ZSCORE zs nope",
    "ZSCORE nozs a",
    "ZRANGE zs 0 -1",
    "ZRANGE zs 0 -1 WITHSCORES",
    "ZRANGE zs 1 3",
    "ZRANGE zs -3 -1",
    "ZRANGE zs -100 100",
    "ZRANGE zs 5 2",
    "ZRANGE zs 50 60",
    "ZRANGE zs 0 -1 REV",
    "ZRANGE zs 0 1 REV WITHSCORES",
    "ZRANGE zs 0 x",
    "ZRANGE zs 2 5 BYSCORE",
    "ZRANGE zs (2 5 BYSCORE WITHSCORES",
    "ZRANGE zs 2 (5 BYSCORE",
    "ZRANGE zs -inf +inf BYSCORE",
    "ZRANGE zs +inf -inf BYSCORE REV",
    "ZRANGE zs 5 2 BYSCORE REV WITHSCORES",
    "ZRANGE zs -inf +inf BYSCORE LIMIT 1 2",
    "ZRANGE zs -inf +inf BYSCORE LIMIT 1 -1",
    "ZRANGE zs -inf +inf BYSCORE LIMIT -1 2",
    "ZRANGE zs -inf +inf BYSCORE LIMIT 0 0",
    "ZRANGE zs -inf +inf BYSCORE LIMIT 100 2",
    "ZRANGE zs +inf -inf BYSCORE REV LIMIT 1 2 WITHSCORES",
    "ZRANGE zs x 5 BYSCORE",
    "ZRANGE zs 5 2 BYSCORE",
    "ZRANGE zs 2 2 BYSCORE",
    "ZRANGE zs (2 2 BYSCORE",
    "ZRANGE zs 0 -1 LIMIT 0 1",
    "ZRANGE zs 0 -1 LIMIT 0 -1",
    "ZRANGE zs 0 -1 LIMIT 0",
    "ZRANGE zs 0 -1 BYSCORE BYLEX",
    "ZRANGE zs 0 -1 REV REV",
    "ZRANGE zs 0 -1 BOGUS",
    "ZRANGE zs - + BYLEX",
    "ZRANGE zs [a [c BYLEX WITHSCORES",
    "ZRANGE zs a c BYLEX",
    "ZRANGE nozs 0 -1",
    "ZRANGE nozs x 1",
    "ZRANGE zs 0",
    "ZRANGEBYSCORE zs 2 6",
    "ZRANGEBYSCORE zs (2 (6 WITHSCORES",
    "ZRANGEBYSCORE zs -inf +inf LIMIT 2 3",
    "ZRANGEBYSCORE zs -inf +inf WITHSCORES LIMIT 0 2",
    "ZRANGEBYSCORE zs 6 2",
    "ZRANGEBYSCORE zs 0 -1 REV",
    "ZRANGEBYSCORE zs 0 -1 BYSCORE",
    "ZRANGEBYSCORE zs a b",
    "ZRANGEBYSCORE nozs 0 1",
    "ZCOUNT zs 2 6",
    "ZCOUNT zs (2 +inf",
    "ZCOUNT zs x 1",
    "ZCOUNT nozs 0 1",
    "ZREMRANGEBYSCORE zs -inf (0",
    "ZREMRANGEBYSCORE zs x 1",
    "ZRANGE zs 0 -1 WITHSCORES",
    "ZREM zs a nope",
    "ZREM nozs a",
    "ZREM zs b c d e f top",
    "EXISTS zs",
    "ZADD zl 0 alpha 0 beta 0 gamma 0 delta",
    "ZRANGE zl [b (g BYLEX",
    "ZRANGE zl + - BYLEX REV",
    "ZRANGE zl - + BYLEX LIMIT 1 2",
    # wrong types, each way round
    "SET str v",
    "HSET hh f v",
    "SADD ss m",
    "ZADD zz 1 m",
    "GET hh",
    "GETDEL ss",
    "INCR zz",
    "SET str2 v GET",
    "HSET hh2 f v",
    "SET hh2 v GET",
    "HGET str f",
    "HSET str f v",
    "HGETALL ss",
    "HINCRBY zz f 1",
    "SADD str m",
    "SMEMBERS hh",
    "SISMEMBER zz m",
    "ZADD str 1 m",
    "ZRANGE hh 0 -1",
    "ZSCORE ss m",
    "ZCARD str",
    "MGET str hh ss zz",
    "TYPE str",
    "TYPE hh",
    "TYPE ss",
    "TYPE zz",
    "SET hh now-a-string",
    "TYPE hh",
    # the keyspace
    "KEYS *",
    "KEYS s*",
    "KEYS ?t?",
    "KEYS [sz]*",
    "KEYS [^sz]*",
    "KEYS [a-c]*",
    "KEYS [c-a]*",
    "KEYS *[",
    "KEYS nomatch*",
    ["KEYS", "\\*"],
    "KEYS",
    "DBSIZE",
    "DBSIZE x",
    "SCAN x",
    "SCAN 99999999999999999999999",
    "SCAN 18446744073709551616",
    "SCAN 0 COUNT 0",
    "SCAN 0 COUNT x",
    "SCAN 0 MATCH",
    "SCAN 0 BOGUS 1",
    "FLUSHDB BOGUS",
    "FLUSHDB SYNC ASYNC",
    "FLUSHDB",
    "DBSIZE",
    "KEYS *",
]


def _argv(step: Step) -> list[bytes]:
    if isinstance(step, str):
        return [part.encode() for part in step.split(" ")]
    return [part if isinstance(part, bytes) else part.encode() for part in step]


def _outcome(backend: Backend, argv: list[bytes]) -> Outcome:
    try:
        reply = backend.execute(argv)
    except CommandError as exc:
        return ("error", str(exc))
    if argv[0].upper() in _UNORDERED and isinstance(reply, list):
        reply = sorted(reply, key=repr)
    return ("reply", reply)


@pytest.fixture
def redis_backend(kv_backend: Backend) -> Backend:
    if not isinstance(kv_backend, RedisBackend):
        pytest.skip(f"parity needs real Redis; the tests run on {kv_backend.description}")
    kv_backend.execute([b"FLUSHDB"])
    return kv_backend


def test_engine_replies_like_redis_to_the_shared_script(redis_backend: Backend) -> None:
    engine = Engine()
    mismatches = []
    for n, step in enumerate(SCRIPT):
        argv = _argv(step)
        want, got = _outcome(redis_backend, argv), _outcome(engine, argv)
        if want != got:
            mismatches.append(f"#{n} {step!r}:\n  redis:  {want!r}\n  engine: {got!r}")
    assert not mismatches, "\n".join(mismatches)


def test_engine_pipelines_and_transactions_like_redis(redis_backend: Backend) -> None:
    engine = Engine()
    batches: list[list[Step]] = [
        ["SET k 1", "INCR k", "HGET k f", "GET k"],
        ["SADD s a", "GET s", "SCARD s", "NOSUCH x"],
    ]
    for backend in (redis_backend, engine):
        backend.execute([b"FLUSHDB"])
    for batch in batches:
        commands = [_argv(step) for step in batch]
        want = [_plain(item) for item in redis_backend.pipeline(commands)]
        assert [_plain(item) for item in engine.pipeline(commands)] == want
        want = [_plain(item) for item in redis_backend.transaction(commands[:3])]
        assert [_plain(item) for item in engine.transaction(commands[:3])] == want
    for discarded in (["INCR k", "GET", "INCR k"], ["INCR k", "NOSUCH a", "INCR k"]):
        commands = [_argv(step) for step in discarded]
        with pytest.raises(CommandError) as from_redis:
            redis_backend.transaction(commands)
        with pytest.raises(CommandError) as from_engine:
            engine.transaction(commands)
        assert str(from_engine.value) == str(from_redis.value)
        assert str(from_engine.value).startswith("EXECABORT Transaction discarded")
    # Nothing of a discarded transaction ran.
    assert engine.execute([b"GET", b"k"]) == redis_backend.execute([b"GET", b"k"]) == b"2"


def _plain(item: Reply | CommandError) -> object:
    return ("error", str(item)) if isinstance(item, CommandError) else ("reply", item)


def _scan_all(backend: Backend, *options: bytes) -> list[bytes]:
    seen: list[bytes] = []
    cursor = b"0"
    for _ in range(1000):
        reply = backend.execute([b"SCAN", cursor, *options])
        assert isinstance(reply, list)
        cursor, keys = reply
        assert isinstance(cursor, bytes)
        assert isinstance(keys, list)
        seen.extend(key for key in keys if isinstance(key, bytes))
        if cursor == b"0":
            return seen
    raise AssertionError("SCAN never finished")


def test_scan_visits_the_same_keys_as_redis(redis_backend: Backend) -> None:
    engine = Engine()
    setup = [f"SET user:{i} v" for i in range(40)]
    setup += [f"HSET hash:{i} f v" for i in range(15)] + ["SADD set:1 m", "ZADD z:1 1 m"]
    for backend in (redis_backend, engine):
        for step in setup:
            backend.execute(_argv(step))
    for options in ([], [b"COUNT", b"7"], [b"MATCH", b"user:1*"], [b"TYPE", b"hash"]):
        want = sorted(_scan_all(redis_backend, *options))
        got = _scan_all(engine, *options)
        assert len(got) == len(set(got)), "SCAN returned a key twice"
        assert sorted(got) == want, options


_keys = st.sampled_from([b"a", b"b", b"c"])
_values = st.sampled_from([b"1", b"-2", b"x", b"", b"10", b"9223372036854775807"])
_scores = st.sampled_from([b"1", b"2.5", b"-1", b"0", b"inf", b"-inf", b"x"])
_bounds = st.sampled_from([b"-inf", b"+inf", b"1", b"(1", b"2.5", b"(0", b"-1"])
_ranks = st.sampled_from([b"0", b"1", b"-1", b"-2", b"5"])
_options = st.lists(st.sampled_from([b"NX", b"XX", b"GET", b"KEEPTTL", b"EX", b"100"]), max_size=3)


def _commands() -> st.SearchStrategy[list[bytes]]:
    def cmd(*parts: st.SearchStrategy[bytes] | bytes) -> st.SearchStrategy[list[bytes]]:
        return st.tuples(*(st.just(p) if isinstance(p, bytes) else p for p in parts)).map(list)

    zadd_flags = st.lists(st.sampled_from([b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"]), max_size=2)
    zrange_opts = st.lists(
        st.sampled_from([b"BYSCORE", b"REV", b"WITHSCORES", b"LIMIT", b"1", b"2"]), max_size=4
    )
    return st.one_of(
        cmd(b"GET", _keys),
        st.tuples(cmd(b"SET", _keys, _values), _options).map(lambda t: t[0] + t[1]),
        cmd(b"INCR", _keys),
        cmd(b"INCRBY", _keys, _values),
        cmd(b"DECR", _keys),
        cmd(b"GETDEL", _keys),
        cmd(b"SETNX", _keys, _values),
        cmd(b"MGET", _keys, _keys),
        cmd(b"DEL", _keys, _keys),
        cmd(b"EXISTS", _keys),
        cmd(b"TYPE", _keys),
        cmd(b"EXPIRE", _keys, st.sampled_from([b"100", b"200", b"-1"])),
        st.tuples(cmd(b"EXPIRE", _keys, b"150"), st.sampled_from([b"NX", b"XX", b"GT", b"LT"])).map(
            lambda t: [*t[0], t[1]]
        ),
        cmd(b"TTL", _keys),
        cmd(b"PERSIST", _keys),
        cmd(b"HSET", _keys, _keys, _values),
        cmd(b"HGET", _keys, _keys),
        cmd(b"HDEL", _keys, _keys),
        cmd(b"HINCRBY", _keys, _keys, _values),
        cmd(b"HGETALL", _keys),
        cmd(b"HLEN", _keys),
        cmd(b"SADD", _keys, _values),
        cmd(b"SREM", _keys, _values),
        cmd(b"SCARD", _keys),
        cmd(b"SISMEMBER", _keys, _values),
        st.tuples(cmd(b"ZADD", _keys), zadd_flags, cmd(_scores, _keys)).map(
            lambda t: t[0] + t[1] + t[2]
        ),
        cmd(b"ZREM", _keys, _keys),
        cmd(b"ZSCORE", _keys, _keys),
        cmd(b"ZCARD", _keys),
        cmd(b"ZCOUNT", _keys, _bounds, _bounds),
        st.tuples(cmd(b"ZRANGE", _keys, _ranks, _ranks), zrange_opts).map(lambda t: t[0] + t[1]),
        st.tuples(cmd(b"ZRANGE", _keys, _bounds, _bounds, b"BYSCORE"), zrange_opts).map(
            lambda t: t[0] + t[1]
        ),
    )


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(script=st.lists(_commands(), min_size=1, max_size=25))
def test_random_command_sequences_agree_with_redis(
    redis_backend: Backend, script: list[list[bytes]]
) -> None:
    redis_backend.execute([b"FLUSHDB"])
    engine = Engine()
    for n, argv in enumerate(script):
        want, got = _outcome(redis_backend, argv), _outcome(engine, argv)
        assert got == want, f"step {n} of {script!r}"


# -- what only the engine can show -------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_keys_expire_on_the_clock() -> None:
    clock = FakeClock()
    engine = Engine(clock=clock)
    engine.execute([b"SET", b"k", b"v", b"PX", b"1500"])
    engine.execute([b"HSET", b"h", b"f", b"v"])
    engine.execute([b"EXPIRE", b"h", b"1"])
    assert engine.execute([b"PTTL", b"k"]) == 1500
    clock.now += 1.0
    assert engine.execute([b"TTL", b"k"]) == 1  # (500 ms + 500) // 1000, as Redis rounds
    assert engine.execute([b"PTTL", b"h"]) == 0  # at the deadline: still there
    assert engine.execute([b"HGET", b"h", b"f"]) == b"v"
    clock.now += 0.001
    assert engine.execute([b"EXISTS", b"h"]) == 0
    assert engine.execute([b"GET", b"k"]) == b"v"
    clock.now += 0.5
    assert engine.execute([b"GET", b"k"]) is None
    assert engine.execute([b"DBSIZE"]) == 0
    assert engine.execute([b"TTL", b"k"]) == -2


def test_an_expired_key_is_gone_for_nx_and_counters() -> None:
    clock = FakeClock()
    engine = Engine(clock=clock)
    engine.execute([b"SET", b"lock", b"a", b"EX", b"10"])
    engine.execute([b"SET", b"n", b"41", b"EX", b"10"])
    assert engine.execute([b"SET", b"lock", b"b", b"NX"]) is None
    clock.now += 11
    assert engine.execute([b"SET", b"lock", b"b", b"NX"]) == b"OK"
    assert engine.execute([b"TTL", b"lock"]) == -1
    assert engine.execute([b"INCR", b"n"]) == 1
    assert engine.execute([b"KEYS", b"*"]) in ([b"lock", b"n"], [b"n", b"lock"])


def test_scan_returns_keys_present_throughout_while_others_change() -> None:
    engine = Engine()
    stable = {f"stable:{i}".encode() for i in range(100)}
    for key in stable:
        engine.execute([b"SET", key, b"v"])
    seen: set[bytes] = set()
    cursor, step = b"0", 0
    while True:
        reply = engine.execute([b"SCAN", cursor, b"COUNT", b"9"])
        assert isinstance(reply, list)
        cursor, keys = reply
        assert isinstance(cursor, bytes)
        assert isinstance(keys, list)
        seen.update(key for key in keys if isinstance(key, bytes))
        step += 1
        engine.execute([b"SET", f"churn:{step}".encode(), b"v"])
        engine.execute([b"DEL", f"churn:{step - 1}".encode()])
        if cursor == b"0":
            break
    assert stable <= seen


def test_glob_patterns_follow_redis() -> None:
    engine = Engine()
    keys = [b"hello", b"hallo", b"hxllo", b"hllo", b"heeeello", b"h*llo", b"a\nb", b"[x]"]
    for key in keys:
        engine.execute([b"SET", key, b"v"])

    def keys_matching(pattern: bytes) -> list[bytes]:
        reply = engine.execute([b"KEYS", pattern])
        assert isinstance(reply, list)
        return sorted(key for key in reply if isinstance(key, bytes))

    assert keys_matching(b"h?llo") == [b"h*llo", b"hallo", b"hello", b"hxllo"]
    assert keys_matching(b"h*llo") == [b"h*llo", b"hallo", b"heeeello", b"hello", b"hllo", b"hxllo"]
    assert keys_matching(b"h[ae]llo") == [b"hallo", b"hello"]
    assert keys_matching(b"h[^e]llo") == [b"h*llo", b"hallo", b"hxllo"]
    assert keys_matching(b"h[a-b]llo") == [b"hallo"]
    assert keys_matching(b"h\\*llo") == [b"h*llo"]
    assert keys_matching(b"a?b") == [b"a\nb"]
    assert keys_matching(b"\\[x\\]") == [b"[x]"]
    assert keys_matching(b"h[]llo") == []


def test_concurrent_increments_are_not_lost() -> None:
    engine = Engine()

    def bump() -> None:
        for _ in range(500):
            engine.execute([b"INCR", b"n"])
            engine.execute([b"HINCRBY", b"h", b"f", b"1"])

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert engine.execute([b"GET", b"n"]) == b"2000"
    assert engine.execute([b"HGET", b"h", b"f"]) == b"2000"


def test_a_transaction_runs_atomically_against_other_threads() -> None:
    engine = Engine()
    engine.execute([b"SET", b"a", b"0"])
    engine.execute([b"SET", b"b", b"0"])
    stop = threading.Event()
    torn: list[Reply] = []

    def reader() -> None:
        while not stop.is_set():
            pair = engine.execute([b"MGET", b"a", b"b"])
            assert isinstance(pair, list)
            if pair[0] != pair[1]:
                torn.append(pair)

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(300):
        engine.transaction([[b"INCR", b"a"], [b"INCR", b"b"]])
    stop.set()
    thread.join()
    assert torn == []
    assert engine.execute([b"MGET", b"a", b"b"]) == [b"300", b"300"]


def test_unknown_commands_get_redis_text_and_empty_ones_an_error() -> None:
    engine = Engine()
    with pytest.raises(CommandError, match=r"^ERR unknown command 'LPUSH', with args"):
        engine.execute([b"LPUSH", b"l", b"x"])
    with pytest.raises(CommandError, match="empty command"):
        engine.execute([])
    assert engine.description == "embedded engine"
