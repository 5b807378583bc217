"""lib/kv.py against the KV gateway over real HTTP, with the real upstash-redis SDK."""

import time

import httpx
import pytest

from lib.kv.client import (
    KV,
    KVCommandError,
    KVUnavailable,
    set_succeeded,
    start_counting,
    stop_counting,
)


def make(kv, **kwargs) -> KV:
    return KV(kv.url, kv.token, **kwargs)


def test_commands_pipeline_and_transaction_round_trip(kv) -> None:
    client = make(kv)
    assert set_succeeded(client.call("SET", "a", "héllo ✓"))
    assert client.call("GET", "a") == "héllo ✓"
    assert client.pipeline([["SET", "b", "1"], ["INCR", "b"], ["GET", "b"]]) == [True, 2, "2"]
    assert client.transaction([["SADD", "s", "x"], ["SMEMBERS", "s"]]) == [1, ["x"]]
    assert client.pipeline([]) == []


def test_each_pipeline_is_one_round_trip(kv) -> None:
    client = make(kv)
    kv.gateway.reset_stats()
    client.pipeline([["SET", f"k{i}", "v"] for i in range(50)])
    assert kv.gateway.stats()["requests"] == 1


def test_stalled_gateway_fails_within_the_timeout(kv) -> None:
    """The SDK alone would wait forever (timeout=None); ours gives up on time."""
    client = make(kv, timeout_s=0.3)
    kv.gateway.set_faults(stall_seconds=60.0)
    started = time.perf_counter()
    with pytest.raises(KVUnavailable):
        client.call("GET", "a", idempotent=True)
    elapsed = time.perf_counter() - started
    # Three idempotent attempts at 0.3 s each, plus jitter (~1 s): far below the 60 s
    # stall, with room for a loaded runner.
    assert elapsed < 15


def test_non_idempotent_calls_are_never_retried(kv) -> None:
    client = make(kv, timeout_s=0.3)
    kv.gateway.set_faults(error_rate=1.0, error_status=503)
    kv.gateway.reset_stats()
    with pytest.raises(KVUnavailable):
        client.call("INCR", "counter")
    stats = kv.gateway.stats()
    assert stats["injected"]["error"] == 1


def test_idempotent_calls_retry_through_transient_faults(kv) -> None:
    client = make(kv, retries=5)
    client.call("SET", "a", "1")
    kv.gateway.set_faults(error_rate=0.5, error_status=502, seed=7)
    for _ in range(10):
        assert client.call("GET", "a", idempotent=True) == "1"


def test_dropped_connection_after_write_is_not_repeated(kv) -> None:
    """A drop happens after the command ran: retrying an INCR would count twice."""
    client = make(kv)
    kv.gateway.set_faults(drop_rate=1.0)
    with pytest.raises(KVUnavailable):
        client.call("INCR", "n")
    kv.gateway.clear_faults()
    assert client.call("GET", "n") == "1"


def test_server_refusal_is_a_command_error_not_retryable(kv) -> None:
    client = make(kv)
    client.call("SET", "str", "x")
    with pytest.raises(KVCommandError) as info:
        client.call("HGET", "str", "f", idempotent=True)
    assert "WRONGTYPE" in str(info.value)
    assert info.value.retryable is False


def test_wrong_token_is_a_command_error_without_the_token(kv) -> None:
    client = KV(kv.url, "wrong-token-value-123")
    with pytest.raises(KVCommandError) as info:
        client.call("GET", "a")
    assert "wrong-token-value-123" not in str(info.value)


def test_unreachable_store_is_unavailable_quickly() -> None:
    client = KV("http://127.0.0.1:9", "t", timeout_s=0.5)
    started = time.perf_counter()
    with pytest.raises(KVUnavailable):
        client.call("PING", idempotent=True)
    assert time.perf_counter() - started < 10  # refused at once; 3 x 0.5 s at worst


def test_calls_are_counted_per_context(kv) -> None:
    client = make(kv)
    token = start_counting()
    client.call("SET", "a", "1")
    client.pipeline([["GET", "a"], ["GET", "a"]])
    assert stop_counting(token) == 2


def test_transport_injection_runs_in_process() -> None:
    from dev.kv_engine import Engine
    from dev.kv_gateway import create_app

    gateway = create_app("t", Engine())
    client = KV("http://kv.local", "t", transport=httpx.WSGITransport(app=gateway))
    assert set_succeeded(client.call("SET", "x", "y"))
    assert client.call("GET", "x") == "y"
