"""The KV gateway through real HTTP, driven by the real `upstash_redis` SDK where it can be.

Raw httpx requests pin the wire format (status codes, bodies, headers) that the SDK
hides; the SDK proves the gateway is something it can actually talk to.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from upstash_redis import Redis
from upstash_redis.errors import UpstashError

from dev.kv_engine import CommandError, Engine, Reply
from dev.kv_gateway import (
    MAX_REQUEST_BYTES,
    Backend,
    BackendUnavailable,
    Faults,
    Gateway,
    RedisBackend,
    create_app,
    open_backend,
)
from dev.kv_holds import command_keys
from tests.conftest import KVGateway

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "redis://127.0.0.1:1/0"


def sdk(url: str, token: str, *, timeout: float = 5.0) -> Redis:
    """The SDK as the integration runs it: no SDK retries, a bounded timeout."""
    client = Redis(url, token, rest_retries=0, allow_telemetry=False)
    client._http._client.close()
    client._http._client = httpx.Client(timeout=timeout)
    return client


@pytest.fixture
def client(kv: KVGateway) -> Redis:
    return sdk(kv.url, kv.token)


@pytest.fixture
def http(kv: KVGateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {kv.token}"}
    with httpx.Client(base_url=kv.url, headers=headers, timeout=5.0) as raw:
        yield raw


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- the SDK round trip ----------------------------------------------------------------


def test_sdk_commands_round_trip_with_base64_and_non_ascii(client: Redis) -> None:
    text = "héllo ✓ 日本 🙂"
    assert client.set("k", text) is True
    assert client.get("k") == text
    assert client.get("missing") is None
    assert client.set("k", "other", nx=True) is False
    assert client.incr("n") == 1
    assert client.hset("h", values={"ä": "ö", "n": "1"}) == 2
    assert client.hgetall("h") == {"ä": "ö", "n": "1"}
    assert client.zadd("z", {"é": 1.5, "a": 2}) == 2
    assert client.zrange("z", 0, -1, withscores=True) == [("é", 1.5), ("a", 2.0)]
    assert client.expire("k", 100) is True
    assert client.ttl("k") == 100
    assert client.exists("k", "n", "missing") == 2
    with pytest.raises(UpstashError, match="WRONGTYPE"):
        client.incr("h")


def test_base64_encodes_every_string_but_ok_and_nothing_else(http: httpx.Client) -> None:
    enc = {"Upstash-Encoding": "base64"}
    reply = http.post("/", json=["SET", "k", "ü"], headers=enc)
    assert (reply.status_code, reply.json()) == (200, {"result": "OK"})
    assert http.post("/", json=["GET", "k"], headers=enc).json() == {"result": b64("ü")}
    assert http.post("/", json=["PING"], headers=enc).json() == {"result": b64("PONG")}
    assert http.post("/", json=["INCR", "n"], headers=enc).json() == {"result": 1}
    assert http.post("/", json=["GET", "nope"], headers=enc).json() == {"result": None}
    http.post("/", json=["HSET", "h", "f", "v"])
    reply = http.post("/", json=["SCAN", 0, "MATCH", "h", "COUNT", 1000], headers=enc)
    assert reply.json() == {"result": [b64("0"), [b64("h")]]}
    reply = http.post("/", json=["HGET", "k", "f"], headers=enc)
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "WRONGTYPE Operation against a key holding the wrong kind of value"
    }


def test_without_encoding_strings_are_plain_and_numbers_keep_their_text(
    http: httpx.Client,
) -> None:
    assert http.post("/", json=["SET", "k", "ü"]).json() == {"result": "OK"}
    assert http.post("/", json=["GET", "k"]).json() == {"result": "ü"}
    # Numbers are sent as the exact text the client wrote: 1e3 is not an integer.
    http.post("/", content=b'["ZADD", "z", 1e3, "m", 2.50, "n"]', headers=_JSON)
    assert http.post("/", json=["ZSCORE", "z", "m"]).json() == {"result": "1000"}
    reply = http.post("/", content=b'["EXPIRE", "k", 1e3]', headers=_JSON)
    assert reply.json() == {"error": "ERR value is not an integer or out of range"}
    assert http.post("/", content=b'["EXPIRE", "k", 100]', headers=_JSON).json() == {"result": 1}


def test_pipeline_answers_per_command_with_status_200(client: Redis, http: httpx.Client) -> None:
    pipe = client.pipeline()
    pipe.set("a", "1")
    pipe.incr("a")
    pipe.get("a")
    pipe.hset("h", "f", "v")
    assert pipe.exec() == [True, 2, "2", 1]

    reply = http.post("/pipeline", json=[["INCR", "a"], ["HGET", "a", "f"], ["GET", "a"]])
    assert reply.status_code == 200
    assert reply.json() == [
        {"result": 3},
        {"error": "WRONGTYPE Operation against a key holding the wrong kind of value"},
        {"result": "3"},
    ]


def test_multi_exec_runs_atomically_and_discards_on_queue_errors(
    client: Redis, http: httpx.Client
) -> None:
    tx = client.multi()
    tx.incr("c")
    tx.incr("c")
    tx.set("k", "v")
    assert tx.exec() == [1, 2, True]

    # A command failing at run time does not stop the others (Redis EXEC semantics).
    reply = http.post("/multi-exec", json=[["INCR", "c"], ["INCR", "k"], ["INCR", "c"]])
    assert reply.status_code == 200
    assert reply.json() == [
        {"result": 3},
        {"error": "ERR value is not an integer or out of range"},
        {"result": 4},
    ]

    # A command Redis refuses at queue time discards the whole transaction.
    for bad in (["GET"], ["NOSUCH", "x"], ["BLPOP", "l", 0]):
        reply = http.post("/multi-exec", json=[["INCR", "c"], bad])
        assert reply.status_code == 400
        body = reply.json()
        assert set(body) == {"error"}
        assert body["error"].startswith("EXECABORT Transaction discarded")
    assert client.get("c") == "4"


# -- authentication ----------------------------------------------------------------------


def test_missing_or_wrong_token_is_401(kv: KVGateway) -> None:
    wrongpass = {"error": "WRONGPASS invalid or missing auth token"}
    with httpx.Client(base_url=kv.url, timeout=5.0) as raw:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": kv.token}):
            reply = raw.post("/", json=["PING"], headers=headers)
            assert (reply.status_code, reply.json()) == (401, wrongpass)
        assert raw.post("/pipeline", json=[["PING"]]).status_code == 401
        assert raw.get("/_gateway/stats").status_code == 401
        assert raw.post(f"/?_token={kv.token}", json=["PING"]).json() == {"result": "PONG"}
        assert raw.post("/?_token=nope", json=["PING"]).status_code == 401
        reply = raw.post("/", json=["PING"], headers={"Authorization": f"bearer {kv.token}"})
        assert reply.status_code == 200
    with pytest.raises(UpstashError, match="WRONGPASS"):
        sdk(kv.url, "wrong-token").get("k")
    assert kv.token not in json.dumps(kv.gateway.stats())


# -- bad input ---------------------------------------------------------------------------

_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "message"),
    [
        ("/", b"[1,", _JSON, "ERR invalid JSON body: Expecting value"),
        ("/", b"", _JSON, "ERR invalid JSON body"),
        ("/", b"\xff\xfe\x00", _JSON, "ERR invalid JSON body"),
        ("/", b'["GET", NaN]', _JSON, "ERR invalid JSON body: NaN is not valid JSON"),
        ("/", b'["PING"]', {"Content-Type": "text/plain"}, "Expected application/json"),
        ("/", b'["PING"]', {}, "Expected application/json"),
        ("/", b'{"cmd": "PING"}', _JSON, "ERR command must be a JSON array"),
        ("/", b'"PING"', _JSON, "ERR command must be a JSON array"),
        ("/", b"[]", _JSON, "ERR command is empty"),
        ("/", b'["SET", "k", true]', _JSON, "argument 2 is JSON true"),
        ("/", b'["SET", "k", null]', _JSON, "argument 2 is JSON null"),
        ("/", b'["SET", "k", ["v"]]', _JSON, "argument 2 is JSON array"),
        ("/", b'["SET", "k", {"v": 1}]', _JSON, "argument 2 is JSON object"),
        ("/", b'["SET", "k", "\\ud800"]', _JSON, "argument 2 is not valid Unicode"),
        ("/", b'["NOSUCH", "a"]', _JSON, "ERR unknown command 'NOSUCH'"),
        ("/", b'["GET"]', _JSON, "ERR wrong number of arguments for 'get' command"),
        ("/pipeline", b'["GET", "k"]', _JSON, "ERR command #1 must be a JSON array"),
        ("/pipeline", b"[]", _JSON, "ERR /pipeline expects a non-empty JSON array"),
        ("/pipeline", b'{"a": 1}', _JSON, "ERR /pipeline expects a non-empty JSON array"),
        ("/multi-exec", b'[["GET", "k"], [false]]', _JSON, "command #2: argument 0 is JSON false"),
        ("/multi-exec", b"[1", _JSON, "ERR invalid JSON body"),
    ],
)
def test_malformed_requests_get_a_400_with_a_message(
    http: httpx.Client, path: str, body: bytes, headers: dict[str, str], message: str
) -> None:
    reply = http.post(path, content=body, headers=headers)
    assert reply.status_code == 400
    payload = reply.json()
    assert set(payload) == {"error"}
    assert message in payload["error"]


def test_content_type_parameters_are_tolerated(http: httpx.Client) -> None:
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    assert http.post("/", content=b'["PING"]', headers=headers).json() == {"result": "PONG"}


def test_methods_other_than_head_get_post_put_are_405(http: httpx.Client) -> None:
    for method in ("DELETE", "PATCH", "OPTIONS"):
        reply = http.request(method, "/", json=["PING"])
        assert reply.status_code == 405
        assert "not allowed" in reply.json()["error"]
    assert http.put("/", json=["PING"]).json() == {"result": "PONG"}


def test_requests_over_10_mb_are_refused(http: httpx.Client) -> None:
    body = b'["SET", "k", "' + b"x" * MAX_REQUEST_BYTES + b'"]'
    reply = http.post("/", content=body, headers=_JSON)
    assert (reply.status_code, reply.json()) == (400, {"error": "ERR max request size exceeded"})
    assert http.post("/", json=["EXISTS", "k"]).json() == {"result": 0}
    near_limit = b'["SET", "k", "' + b"x" * (MAX_REQUEST_BYTES - 100) + b'"]'
    assert http.post("/", content=near_limit, headers=_JSON).json() == {"result": "OK"}


def test_blocking_and_connection_commands_are_refused_like_upstash(http: httpx.Client) -> None:
    for command in (
        ["BLPOP", "l", 0],
        ["SELECT", 1],
        ["MULTI"],
        ["WATCH", "k"],
        ["SUBSCRIBE", "c"],
        ["CLIENT", "LIST"],
        ["XREAD", "BLOCK", 0, "STREAMS", "s", "$"],
        ["SHUTDOWN"],
    ):
        reply = http.post("/", json=command)
        assert reply.status_code == 400, command
        assert reply.json()["error"].startswith("ERR Command is not available"), command
    assert http.post("/", json=["ECHO", "hi"]).json() == {"result": "hi"}
    reply = http.post("/pipeline", json=[["PING"], ["QUIT"], ["ECHO", "x"]])
    assert reply.status_code == 200
    first, refused, last = reply.json()
    assert (first, last) == ({"result": "PONG"}, {"result": "x"})
    assert refused["error"].startswith("ERR Command is not available: 'QUIT'")


def test_flushall_only_flushes_the_gateway_database(
    kv: KVGateway, http: httpx.Client, request: pytest.FixtureRequest
) -> None:
    http.post("/", json=["SET", "k", "v"])
    other = None
    if isinstance(kv.gateway.backend, RedisBackend):
        # Another database locked for this run, never a neighbour's (tests/conftest.py).
        other = redis.Redis.from_url(request.getfixturevalue("second_test_db"), socket_timeout=2)
        other.set("kv-gateway-test:survivor", "1")
    try:
        assert http.post("/", json=["FLUSHALL"]).json() == {"result": "OK"}
        assert http.post("/", json=["DBSIZE"]).json() == {"result": 0}
        if other is not None:
            assert other.get("kv-gateway-test:survivor") == b"1"
    finally:
        if other is not None:
            other.close()


def test_an_unknown_command_raises_in_the_sdk(client: Redis) -> None:
    with pytest.raises(UpstashError, match="unknown command"):
        client.execute(["NOSUCH", "x"])


# -- the rest of the protocol -------------------------------------------------------------


def test_sync_tokens_are_accepted_empty_and_returned_opaque(
    http: httpx.Client, client: Redis
) -> None:
    reply = http.post("/", json=["PING"], headers={"Upstash-Sync-Token": ""})
    assert reply.status_code == 200
    first = reply.headers["upstash-sync-token"]
    second = http.post("/", json=["PING"], headers={"Upstash-Sync-Token": first})
    assert second.headers["upstash-sync-token"] not in ("", first)
    assert client._sync_token == ""
    client.get("k")
    assert client._sync_token != ""


def test_path_style_commands(kv: KVGateway, http: httpx.Client) -> None:
    assert http.get("/set/pk/pv").json() == {"result": "OK"}
    assert http.get("/get/pk").json() == {"result": "pv"}
    assert http.post("/set/body", content=b"a value with spaces").json() == {"result": "OK"}
    assert http.get("/get/body").json() == {"result": "a value with spaces"}
    assert http.post("/set/q?EX=100", content=b"v").json() == {"result": "OK"}
    assert http.get("/ttl/q").json() == {"result": 100}
    assert http.get("/set/flag/v?NX").json() == {"result": "OK"}
    assert http.get("/set/flag/w?NX").json() == {"result": None}
    with httpx.Client(base_url=kv.url, timeout=5.0) as anonymous:
        assert anonymous.get(f"/get/pk?_token={kv.token}").json() == {"result": "pv"}
        assert anonymous.get("/get/pk").status_code == 401
    reply = http.get("/favicon.ico")
    assert reply.status_code == 400
    assert "unknown command" in reply.json()["error"]
    assert http.get("/pipeline").status_code == 400


def test_get_root_answers_a_welcome_without_a_token(kv: KVGateway) -> None:
    with httpx.Client(base_url=kv.url, timeout=5.0) as anonymous:
        reply = anonymous.get("/")
        assert reply.status_code == 200
        assert "Welcome" in reply.text
        assert kv.gateway.backend.description in reply.text
        head = anonymous.head("/")
        assert (head.status_code, head.content) == (200, b"")


# -- faults and counters -------------------------------------------------------------------


def test_a_stall_makes_a_bounded_client_give_up_and_the_write_never_lands(
    kv: KVGateway,
) -> None:
    impatient = sdk(kv.url, kv.token, timeout=0.3)
    kv.gateway.set_faults(stall_seconds=30)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        impatient.set("k", "late")
    assert time.monotonic() - started < 10  # the client's 0.3 s, not the 30 s stall
    kv.gateway.clear_faults()  # the stalled request wakes up and fails without running
    assert sdk(kv.url, kv.token).get("k") is None
    assert kv.gateway.stats()["injected"]["stall"] == 1


def test_a_short_stall_only_delays(kv: KVGateway, client: Redis) -> None:
    kv.gateway.set_faults(stall_seconds=0.2)
    started = time.monotonic()
    assert client.set("k", "v") is True
    assert time.monotonic() - started >= 0.2


def test_error_faults_fail_before_running(kv: KVGateway, client: Redis, http: httpx.Client) -> None:
    kv.gateway.set_faults(error_rate=1.0)  # 503, a plain-text body like a failing proxy
    reply = http.post("/", json=["INCR", "n"])
    assert reply.status_code == 503
    assert reply.headers["content-type"].startswith("text/plain")
    with pytest.raises(json.JSONDecodeError):
        client.incr("n")
    kv.gateway.set_faults(error_rate=1.0, error_status=429)
    with pytest.raises(UpstashError, match="injected fault"):
        client.incr("n")
    kv.gateway.clear_faults()
    assert client.get("n") is None
    assert kv.gateway.stats()["injected"]["error"] == 3


def test_error_rate_is_repeatable_with_a_seed(kv: KVGateway, client: Redis) -> None:
    def pattern() -> list[bool]:
        kv.gateway.set_faults(error_rate=0.5, error_status=500, seed=1234)
        outcomes = []
        for _ in range(24):
            try:
                client.incr("n")
                outcomes.append(True)
            except json.JSONDecodeError:
                outcomes.append(False)
        return outcomes

    first = pattern()
    assert pattern() == first
    assert 0 < sum(first) < len(first)
    kv.gateway.clear_faults()
    assert client.get("n") == str(2 * sum(first))


def test_a_dropped_connection_loses_the_reply_not_the_write(kv: KVGateway, client: Redis) -> None:
    kv.gateway.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        client.incr("n")
    kv.gateway.clear_faults()
    assert client.get("n") == "1"
    assert kv.gateway.stats()["injected"]["drop"] == 1


def test_round_trips_and_commands_are_counted(kv: KVGateway, client: Redis) -> None:
    client.set("a", "1")
    client.get("a")
    pipe = client.pipeline()
    for _ in range(4):
        pipe.incr("n")
    pipe.exec()
    tx = client.multi()
    tx.get("a")
    tx.get("n")
    tx.exec()
    stats = kv.gateway.stats()
    assert stats["requests"] == 4
    assert stats["commands"] == 8
    assert stats["by_path"] == {"/": 2, "/pipeline": 1, "/multi-exec": 1}
    kv.gateway.reset_stats()
    assert kv.gateway.stats()["requests"] == 0


def test_control_endpoints_over_http(kv: KVGateway, http: httpx.Client, client: Redis) -> None:
    client.get("k")
    assert http.get("/_gateway/stats").json()["requests"] == 1
    assert http.post("/_gateway/stats/reset").json() == {"result": "OK"}
    assert http.get("/_gateway/stats").json()["requests"] == 0  # control calls don't count

    reply = http.post("/_gateway/faults", json={"error_rate": 1, "error_status": 502, "seed": 3})
    assert reply.status_code == 200
    assert reply.json() == {
        "stall_seconds": 0.0,
        "error_rate": 1,
        "error_status": 502,
        "drop_rate": 0.0,
        "seed": 3,
    }
    assert kv.gateway.faults() == Faults(error_rate=1, error_status=502, seed=3)
    assert http.post("/", json=["PING"]).status_code == 502
    assert http.delete("/_gateway/faults").json()["error_rate"] == 0.0
    assert http.post("/", json=["PING"]).status_code == 200

    for bad in ({"error_rate": 2}, {"stall": 1}, {"drop_rate": True}, {"error_status": 200}, []):
        reply = http.post("/_gateway/faults", json=bad)
        assert reply.status_code == 400, bad
        assert reply.json()["error"].startswith("ERR invalid faults")
    assert http.post("/_gateway/faults", content=b"{", headers=_JSON).status_code == 400
    assert http.get("/_gateway/nope").status_code == 404
    assert http.post("/_gateway/stats").status_code == 405
    assert kv.gateway.faults() == Faults()


def test_fault_settings_are_validated() -> None:
    for bad in (
        {"error_rate": -0.1},
        {"drop_rate": 1.5},
        {"stall_seconds": float("inf")},
        {"error_status": 302},
        {"seed": 1.5},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Faults(**bad)


# -- embedded in-process, and backend failures ---------------------------------------------


def in_process(gateway: Gateway, token: str) -> Redis:
    client = Redis("http://kv.local", token, rest_retries=0, allow_telemetry=False)
    client._http._client.close()
    client._http._client = httpx.Client(transport=httpx.WSGITransport(app=gateway), timeout=5)
    return client


def test_in_process_over_wsgi_transport_with_the_embedded_engine() -> None:
    gateway = create_app("tok", Engine())
    client = in_process(gateway, "tok")
    assert client.set("k", "ünï") is True
    assert client.get("k") == "ünï"
    pipe = client.pipeline()
    pipe.incr("n")
    pipe.incr("n")
    assert pipe.exec() == [1, 2]
    gateway.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        client.incr("n")
    gateway.clear_faults()
    assert client.get("n") == "3"
    assert gateway.stats()["requests"] == 5


class BrokenBackend:
    description = "broken"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def execute(self, command: Sequence[bytes]) -> Reply:
        raise self.error

    def pipeline(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        raise self.error

    def transaction(self, commands: Sequence[Sequence[bytes]]) -> list[Reply | CommandError]:
        raise self.error

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "status"), [(BackendUnavailable("Redis failed"), 503), (RuntimeError("bug"), 500)]
)
def test_backend_failures_are_5xx_text_never_a_crash(error: Exception, status: int) -> None:
    backend: Backend = BrokenBackend(error)
    transport = httpx.WSGITransport(app=create_app("tok", backend))
    with httpx.Client(transport=transport, base_url="http://kv.local") as raw:
        for path in ("/", "/pipeline", "/multi-exec"):
            body: Any = ["PING"] if path == "/" else [["PING"]]
            reply = raw.post(path, json=body, headers={"Authorization": "Bearer tok"})
            assert reply.status_code == status
            assert reply.headers["content-type"].startswith("text/plain")


# -- choosing a backend, and `python -m dev.kv_gateway` -------------------------------------


def test_open_backend_falls_back_to_the_engine_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = open_backend("redis://:hunter2-secret@127.0.0.1:1/0")
    assert isinstance(backend, Engine)
    assert backend.description.startswith(
        "embedded engine (fallback: Redis at redis://127.0.0.1:1/0 is unreachable"
    )
    assert "hunter2" not in backend.description
    with pytest.raises(BackendUnavailable, match="unreachable"):
        open_backend(UNREACHABLE, require_redis=True)
    with pytest.raises(ValueError, match="REDIS_URL"):
        open_backend("http://127.0.0.1:6379")
    monkeypatch.setenv("REDIS_URL", UNREACHABLE)
    assert open_backend().description.startswith(
        "embedded engine (fallback: Redis at redis://127.0.0.1:1/0"
    )


def test_open_backend_uses_redis_when_it_answers(kv_backend: Backend) -> None:
    if not isinstance(kv_backend, RedisBackend):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Redis; the tests run on {kv_backend.description}")
        pytest.skip(f"no Redis answers; the tests run on {kv_backend.description}")
    url = os.environ.get("REDIS_TEST_URL") or kv_backend.description  # the run's own database
    backend = open_backend(url, require_redis=True)
    try:
        assert isinstance(backend, RedisBackend)
        assert backend.description == kv_backend.description
        assert backend.description.endswith("/" + url.rpartition("/")[2])
    finally:
        backend.close()


def _start_main(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dev.kv_gateway"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_main_serves_says_which_backend_and_stops_on_sigterm() -> None:
    env = {"KV_PORT": "0", "REDIS_URL": UNREACHABLE, "KV_REST_API_TOKEN": "main-test-token"}
    proc = _start_main(env)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "backed by embedded engine (fallback: Redis at redis://127.0.0.1:1/0" in banner
        assert "token from KV_REST_API_TOKEN" in banner
        assert "main-test-token" not in banner
        url = banner.split()[2]
        client = sdk(url, "main-test-token")
        assert client.set("k", "v") is True
        assert client.get("k") == "v"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_main_refuses_a_bad_port() -> None:
    proc = _start_main({"KV_PORT": "eighty", "REDIS_URL": UNREACHABLE})
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "KV_PORT" in err


# -- holds: deterministic interleavings ------------------------------------------------------


class Background:
    """Run `call` on a thread; `result()` is its return value or raises its exception."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._outcome.append(("ok", call()))
        except Exception as exc:  # handed to the test thread by result()
            self._outcome.append(("raised", exc))

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float = 10.0) -> Any:
        self._thread.join(timeout)
        assert self._outcome, "the background call did not finish"
        kind, value = self._outcome[0]
        if kind == "raised":
            raise value
        return value


_CLAIM = "return redis.call('SET', KEYS[1], ARGV[1], 'NX')"


def test_a_hold_parks_a_script_until_another_writer_has_run(kv: KVGateway, client: Redis) -> None:
    with kv.gateway.hold(command="EVAL", key_glob="vi:inst:*") as held:
        a = Background(lambda: sdk(kv.url, kv.token).eval(_CLAIM, ["vi:inst:1"], ["A"]))
        assert held.wait_held()
        assert held.held == 1
        time.sleep(0.05)
        assert not a.done()  # parked before it ran: nothing written yet
        assert client.get("vi:inst:1") is None
        # B gets through: its command is not the held one, nor is its key.
        assert client.eval(_CLAIM, ["vi:other"], ["B"]) == "OK"
        assert client.set("vi:inst:1", "B") is True
    assert a.result() is None  # A ran after B, and its NX lost
    assert client.get("vi:inst:1") == "B"
    assert held.state() | {"match": None} == {
        "id": held.id,
        "match": None,
        "count": 1,
        "timeout_seconds": 10.0,
        "caught": 1,
        "held": 0,
        "timed_out": 0,
        "released": True,
        "cancelled": False,
    }


def test_holds_over_the_control_api(kv: KVGateway, http: httpx.Client, client: Redis) -> None:
    body = {"match": {"command": "set", "key_glob": "k?", "path": "/"}, "timeout_seconds": 5}
    created = http.post("/_gateway/holds", json=body)
    assert created.status_code == 200
    hold_id = created.json()["id"]
    assert created.json()["match"] == {"command": "set", "key_glob": "k?", "path": "/"}
    a = Background(lambda: sdk(kv.url, kv.token).set("k1", "A"))
    state = http.get(f"/_gateway/holds/{hold_id}", params={"wait_seconds": 5}).json()
    assert (state["held"], state["caught"]) == (1, 1)
    assert client.set("key-not-matching", "B") is True
    assert client.get("k1") is None
    assert http.get("/_gateway/holds").json()["holds"] == [state]
    released = http.post(f"/_gateway/holds/{hold_id}/release")
    assert (released.status_code, released.json()["released"]) == (200, True)
    assert a.result() is True
    assert client.get("k1") == "A"
    assert http.get(f"/_gateway/holds/{hold_id}").json()["held"] == 0
    # Released: later matching requests pass.
    assert client.set("k2", "v") is True
    assert http.delete("/_gateway/holds").json() == {"holds": []}


def test_a_held_request_times_out_with_a_5xx_and_never_runs(
    kv: KVGateway, http: httpx.Client
) -> None:
    held = kv.gateway.hold(command="INCR", timeout_seconds=0.2)
    started = time.monotonic()
    reply = http.post("/", json=["INCR", "n"])
    assert 0.2 <= time.monotonic() - started < 5
    assert reply.status_code == 504
    assert reply.headers["content-type"].startswith("text/plain")
    assert f"held request timed out (hold {held.id})" in reply.text
    assert held.state()["timed_out"] == 1
    assert http.post("/", json=["GET", "n"]).json() == {"result": None}
    # Its count is spent: the next one runs.
    assert http.post("/", json=["INCR", "n"]).json() == {"result": 1}


def test_count_parks_several_and_pipelines_are_parked_whole(kv: KVGateway, client: Redis) -> None:
    held = kv.gateway.hold(key_glob="lock:*", count=2)

    def pipeline() -> Any:
        pipe = sdk(kv.url, kv.token).pipeline()
        pipe.set("plain", "1")
        pipe.delete("other", "lock:2")
        return pipe.exec()

    first = Background(lambda: sdk(kv.url, kv.token).set("lock:1", "a"))
    second = Background(pipeline)
    assert held.wait_held(2)
    assert client.get("plain") is None  # the whole pipeline waits, not only its DEL
    assert client.set("lock:3", "c") is True  # count spent: not parked
    held.release()
    assert first.result() is True
    assert second.result() == [True, 0]
    assert held.state()["caught"] == 2


def test_clearing_faults_cancels_holds_and_parked_requests_never_run(
    kv: KVGateway, http: httpx.Client
) -> None:
    held = kv.gateway.hold(path="/multi-exec")
    a = Background(lambda: http.post("/multi-exec", json=[["INCR", "n"], ["INCR", "n"]]))
    assert held.wait_held()
    assert http.post("/", json=["INCR", "m"]).json() == {"result": 1}  # other paths pass
    kv.gateway.clear_faults()
    reply = a.result()
    assert reply.status_code == 503
    assert "was cancelled" in reply.text
    assert http.post("/", json=["GET", "n"]).json() == {"result": None}
    assert kv.gateway.holds() == []


def test_hold_requests_are_validated(http: httpx.Client) -> None:
    bad: object
    for bad in (
        [],
        {"matc": {}},
        {"match": {"cmd": "GET"}},
        {"match": {"command": ""}},
        {"match": {"command": 1}},
        {"match": {"path": "/other"}},
        {"match": []},
        {"count": 0},
        {"count": True},
        {"timeout_seconds": 0},
        {"timeout_seconds": 601},
        {"timeout_seconds": "1"},
    ):
        reply = http.post("/_gateway/holds", json=bad)
        assert reply.status_code == 400, bad
        assert reply.json()["error"].startswith("ERR invalid hold"), bad
    assert http.get("/_gateway/holds/h999").status_code == 404
    assert http.post("/_gateway/holds/h999/release").status_code == 404
    assert http.get("/_gateway/holds/h1/nope").status_code == 404
    assert http.put("/_gateway/holds").status_code == 405
    assert http.post("/_gateway/holds/h1").status_code == 405
    created = http.post("/_gateway/holds", json={}).json()
    assert created["match"] == {"command": None, "key_glob": None, "path": None}
    assert http.get(f"/_gateway/holds/{created['id']}?wait_seconds=31").status_code == 400
    assert http.get(f"/_gateway/holds/{created['id']}?wait_seconds=x").status_code == 400
    assert http.get(f"/_gateway/holds/{created['id']}?wait_seconds=0.05").json()["held"] == 0


@pytest.mark.parametrize(
    ("command", "keys"),
    [
        (["EVAL", "s", "2", "a", "b", "argv"], ["a", "b"]),
        (["evalsha", "sha", "0", "argv"], []),
        (["EVAL", "s", "x"], []),
        (["DEL", "a", "b"], ["a", "b"]),
        (["MSET", "a", "1", "b", "2"], ["a", "b"]),
        (["SET", "k", "v", "NX"], ["k"]),
        (["PING"], []),
    ],
)
def test_the_keys_a_hold_looks_at(command: list[str], keys: list[str]) -> None:
    assert command_keys([part.encode() for part in command]) == [key.encode() for key in keys]
