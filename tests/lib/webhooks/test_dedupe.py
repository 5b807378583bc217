"""Webhook dedupe, judged by what Vercel's retries do (issue 11, "Tests that would
notice"): Vercel retries a failed delivery for 24 h (https://vercel.com/docs/webhooks),
so a delivery already handled must stay a duplicate for all that time, whatever else
arrives meanwhile; and of two concurrent deliveries of one event only one runs.

In process (dev/inprocess.py): the real functions, SDK and KV gateway over the embedded
engine, whose clock is moved forward to stand for the hours between retries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dev import inprocess
from dev.emulator import sign
from tests.conftest import E2E_ADMIN_TOKEN, E2E_CLIENT_SECRET, E2E_CRON_SECRET

HOUR_S = 3600


class _EngineClock:
    """fakeredis reads `time.time()` before every command to expire keys: a clock
    `ahead_s` in the future makes the engine live that much later."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.ahead_s = 0.0

    def time(self) -> float:
        return float(self._real.time()) + self.ahead_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture(scope="module")
def stack() -> Iterator[inprocess.InProcess]:
    with inprocess.running(
        client_secret=E2E_CLIENT_SECRET, admin_token=E2E_ADMIN_TOKEN, cron_secret=E2E_CRON_SECRET
    ) as running:
        yield running


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _EngineClock:
    from fakeredis._socket import _base

    shifted = _EngineClock(vars(_base)["time"])
    monkeypatch.setattr(_base, "time", shifted)
    return shifted


def test_the_engine_clock_moves_expiry(stack: inprocess.InProcess, clock: _EngineClock) -> None:
    from lib.app import get_services

    kv = get_services().store.kv
    kv.call("SET", "clock-probe", "1", "EX", 60)
    clock.ahead_s = 59
    assert kv.call("GET", "clock-probe") == "1"
    clock.ahead_s = 61
    assert kv.call("GET", "clock-probe") is None


@pytest.fixture
def cfg(stack: inprocess.InProcess) -> tuple[str, str]:
    stack.emulator.reset()
    stack.gateway.clear_faults()
    stack.gateway.backend.execute([b"FLUSHDB"])
    got = stack.install("acme")
    team = next(str(t["id"]) for t in stack.emulator.state()["teams"] if t["slug"] == "acme")
    return str(got["configurationId"]), team


def _event(cfg: str, team: str) -> bytes:
    return json.dumps(
        {
            "id": f"evt_dedupe_{time.monotonic_ns()}",
            "type": "integration-configuration.permission-upgraded",
            "createdAt": int(time.time() * 1000),
            "payload": {"configuration": {"id": cfg}, "team": {"id": team}},
        }
    ).encode()


def _deliver(stack: inprocess.InProcess, body: bytes) -> tuple[int, dict[str, Any]]:
    with stack.http() as client:
        got = client.post(
            "/webhook", content=body, headers={"x-vercel-signature": sign(body, E2E_CLIENT_SECRET)}
        )
    return got.status_code, got.json()


def _vercel_calls(stack: inprocess.InProcess) -> int:
    return int(stack.emulator.call_counts()["total"])


def test_a_handled_delivery_is_still_a_duplicate_a_day_later(
    stack: inprocess.InProcess, cfg: tuple[str, str], clock: _EngineClock
) -> None:
    body = _event(*cfg)
    assert _deliver(stack, body) == (200, {"status": "applied"})
    calls = _vercel_calls(stack)
    assert _deliver(stack, body) == (200, {"status": "duplicate"})  # a retry straight away
    clock.ahead_s = 23 * HOUR_S  # Vercel's last retries, a day after the first attempt
    assert _deliver(stack, body) == (200, {"status": "duplicate"})
    assert _vercel_calls(stack) == calls  # the handler never ran again


def test_of_concurrent_deliveries_of_one_event_exactly_one_runs(
    stack: inprocess.InProcess, cfg: tuple[str, str], clock: _EngineClock
) -> None:
    body = _event(*cfg)
    start = threading.Barrier(6)
    answers: list[tuple[int, dict[str, Any]]] = []

    def deliver() -> None:
        start.wait(5)
        answers.append(_deliver(stack, body))

    workers = [threading.Thread(target=deliver) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    applied = [a for a in answers if a == (200, {"status": "applied"})]
    others = [a for a in answers if a != (200, {"status": "applied"})]
    assert len(answers) == 6
    assert len(applied) == 1, answers
    for status, reply in others:  # backed off (Vercel retries) or already done
        assert (status, reply) in ((503, {"status": "in progress"}), (200, {"status": "duplicate"}))
    clock.ahead_s = 23 * HOUR_S
    assert _deliver(stack, body) == (200, {"status": "duplicate"})
