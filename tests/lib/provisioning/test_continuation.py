"""lib/provisioning/continuation.py: the message, its mac, the cursor, the early exits,
the rate gate and the publish side's import cost. The queue itself is exercised end to
end in tests/api/test_queue_consumer.py."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from lib.crypto import EncryptionKey, Keyring
from lib.deadline import Deadline
from lib.provisioning import continuation
from lib.provisioning.continuation import (
    Forged,
    Message,
    RateGate,
    advance,
    continue_later,
    handle,
    mac_key,
    verify,
)
from lib.provisioning.reports import InstallationReport, ProjectReport
from lib.vercel.errors import DeadlineExceeded, RateLimited, ServerError

KEYRING = Keyring(EncryptionKey(key_id="t", key=b"K" * 32))
KEY = mac_key(KEYRING)
MSG = Message("icfg_abc", generation=1_700_000_000, hop=3, cursor="prj_b", stall=1)


def _body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


# -- the message --------------------------------------------------------------------------


def test_a_signed_message_verifies_and_round_trips() -> None:
    assert verify(_body(MSG.signed(KEY)), KEY) == MSG


def test_the_mac_key_is_derived_for_this_purpose_only() -> None:
    assert KEYRING.derive("queue-continuation") == KEY
    assert KEY not in (KEYRING.derive("state"), KEYRING.derive("session"))


@pytest.mark.parametrize(
    "change",
    [
        {"cursor": "prj_z"},
        {"hop": 4},
        {"installation": "icfg_other"},
        {"generation": 1},
        {"skipped": True},
        {"stall": 0},
        {"v": 2},
    ],
)
def test_any_altered_field_is_forged(change: dict[str, Any]) -> None:
    with pytest.raises(Forged):
        verify(_body({**MSG.signed(KEY), **change}), KEY)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        _body({k: v for k, v in MSG.signed(KEY).items() if k != "mac"}),
        _body({**MSG.signed(KEY), "token": "x"}),
        _body({**MSG.signed(KEY), "mac": 7}),
        _body({**MSG.signed(KEY), "hop": True}),
        _body({**MSG.signed(KEY), "generation": "1700000000"}),
        b" " * 5000,
    ],
)
def test_malformed_bodies_are_forged(body: bytes) -> None:
    with pytest.raises(Forged):
        verify(body, KEY)


def test_another_deployments_key_is_refused() -> None:
    other = mac_key(Keyring(EncryptionKey(key_id="t", key=b"L" * 32)))
    with pytest.raises(Forged):
        verify(_body(MSG.signed(other)), KEY)


def test_the_message_carries_ids_only() -> None:
    assert set(MSG.signed(KEY)) == {
        "v",
        "installation",
        "generation",
        "hop",
        "cursor",
        "stall",
        "skipped",
        "mac",
    }


def test_the_payload_is_a_pure_function_of_the_idempotency_key() -> None:
    variants = [
        MSG,
        MSG.successor("prj_b", skipped=False, progressed=False),
        MSG.successor("prj_c", skipped=False, progressed=True),
        MSG.successor("prj_c", skipped=True, progressed=True),
        Message("icfg_abc", generation=1_700_000_001, hop=3, cursor="prj_b", stall=1),
    ]
    keys = [m.idempotency_key for m in variants]
    assert len(set(keys)) == len(keys)
    assert Message(**vars(MSG)).signed(KEY) == MSG.signed(KEY)  # same key, same bytes


def test_a_successor_counts_hops_and_stalls() -> None:
    stuck = MSG.successor("prj_b", skipped=False, progressed=False)
    assert (stuck.hop, stuck.stall, stuck.cursor) == (4, 2, "prj_b")
    moved = stuck.successor("prj_d", skipped=True, progressed=True)
    assert (moved.hop, moved.stall, moved.skipped) == (5, 0, True)
    assert moved.successor("prj_e", skipped=False, progressed=True).skipped  # sticky


# -- the cursor ---------------------------------------------------------------------------


def _report(*projects: tuple[str, bool, list[str]]) -> InstallationReport:
    report = InstallationReport("icfg_abc")
    for pid, complete, errors in projects:
        p = ProjectReport(pid, pid)
        p.complete, p.errors = complete, list(errors)
        report.projects.append(p)
    return report


def test_the_cursor_stops_before_the_first_project_to_retry() -> None:
    report = _report(
        ("prj_d", True, []),
        ("prj_a", True, []),
        ("prj_c", False, ["rate_limited: RateLimited"]),
        ("prj_b", False, ["forbidden: Forbidden"]),
    )
    assert advance("", report) == ("prj_b", True)


@pytest.mark.parametrize(
    "error",
    [
        "not started: out of time or installation stopped",
        "deadline_exceeded: DeadlineExceeded",
        "network_error: VercelUnavailable",
        "server_error: ServerError",
        "storage: KVUnavailable",
    ],
)
def test_transient_failures_hold_the_cursor(error: str) -> None:
    assert advance("prj_a", _report(("prj_b", False, [error]), ("prj_c", True, []))) == (
        "prj_a",
        False,
    )


def test_everything_done_means_no_cursor() -> None:
    report = _report(("prj_a", True, []), ("prj_b", False, ["bad_request: BadRequest"]))
    assert advance("", report) == (None, True)
    assert advance("prj_b", report) == (None, False)  # nothing after the cursor counts


# -- handling -----------------------------------------------------------------------------


@dataclass
class _Store:
    installed: bool = True
    pending: bool = True
    calls: list[str] = field(default_factory=list)
    keyring: Keyring = KEYRING

    def get_installation(self, cfg: str) -> object | None:
        self.calls.append("get_installation")
        return object() if self.installed else None

    def is_pending(self, cfg: str) -> bool:
        self.calls.append("is_pending")
        return self.pending


@dataclass
class _Services:
    store: _Store


class _Published:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[Message, float]] = []
        self.fail = fail

    def __call__(self, message: Message, key: bytes, *, delay: float) -> None:
        if self.fail:
            raise ConnectionError("queue down")
        assert key == KEY
        self.sent.append((message, delay))


def test_an_uninstalled_installation_acks_as_a_no_op() -> None:
    services, published = _Services(_Store(installed=False)), _Published()
    assert handle(MSG, services, Deadline(5), publisher=published) == "gone"
    assert services.store.calls == ["get_installation"]
    assert published.sent == []


def test_a_settled_installation_ends_the_chain() -> None:
    services, published = _Services(_Store(pending=False)), _Published()
    assert handle(MSG, services, Deadline(5), publisher=published) == "settled"
    assert published.sent == []


def test_a_runaway_chain_is_left_to_the_sweep() -> None:
    services, published = _Services(_Store()), _Published()
    long = Message("icfg_abc", 1, hop=continuation.MAX_HOPS)
    assert handle(long, services, Deadline(5), publisher=published) == "abandoned"
    assert published.sent == []


def test_a_chain_that_keeps_failing_stops_and_leaves_the_installation_to_the_sweep() -> None:
    # A broken installation (or a project Vercel keeps refusing) moves nothing hop after
    # hop: the queue does not retry it for good, the pending mark stays for the sweep.
    services, published = _Services(_Store()), _Published()
    stuck = Message("icfg_abc", 1, hop=9, cursor="prj_b", stall=continuation.MAX_STALLS)
    assert handle(stuck, services, Deadline(5), publisher=published) == "abandoned"
    assert services.store.calls == ["get_installation", "is_pending"]  # nothing written
    assert published.sent == []


def test_a_rate_limited_hop_waits_without_counting_as_a_stall() -> None:
    waiting = MSG.successor("prj_b", skipped=False, progressed=False, limited=True)
    assert (waiting.hop, waiting.stall) == (4, 1)
    assert MSG.successor("prj_c", skipped=False, progressed=True, limited=True).stall == 0


def test_continue_later_starts_a_chain_only_when_work_is_left() -> None:
    services, published = _Services(_Store()), _Published()
    done = _report(("prj_a", True, []))
    assert not continue_later(services, "icfg_abc", done, publisher=published, clock=lambda: 5.0)
    left = _report(("prj_a", True, []), ("prj_b", False, ["not started: out of time"]))
    left.pending, left.outcome = True, "partial"
    assert continue_later(services, "icfg_abc", left, publisher=published, clock=lambda: 5.0)
    assert published.sent == [(Message("icfg_abc", 5, cursor="prj_a"), 0.0)]
    blocked = _report()
    blocked.pending, blocked.outcome = True, "blocked"
    assert not continue_later(services, "icfg_abc", blocked, publisher=published)
    assert continue_later(services, "icfg_abc", None, publisher=published, clock=lambda: 6.0)
    assert published.sent[-1] == (Message("icfg_abc", 6), 0.0)


def test_continue_later_never_fails_its_caller() -> None:
    services = _Services(_Store())
    assert not continue_later(services, "icfg_abc", None, publisher=_Published(fail=True))


# -- the rate gate ------------------------------------------------------------------------


def test_the_gate_waits_until_the_429_reset_and_then_stops_every_call() -> None:
    now = [100.0]
    gate = RateGate(lambda: now[0])
    assert gate.delay(lambda: 0.5) == 0.0
    gate.trip(RateLimited("429", status=429, retry_after=7.0))
    gate.trip(RateLimited("429", status=429, retry_after=3.0))  # the later reset wins
    now[0] = 101.0
    assert gate.delay(lambda: 0.5) == pytest.approx(6.5)
    with pytest.raises(RateLimited) as stopped:
        gate.check()
    assert stopped.value.retry_after == pytest.approx(6.0)


def test_the_gate_trips_on_a_429_the_client_could_not_wait_out() -> None:
    gate = RateGate(lambda: 0.0)

    class _Inner:
        def create_env(self) -> None:
            last = RateLimited("429", status=429, retry_after=30.0)
            raise DeadlineExceeded("no time", last_error=last)

        def list_env(self) -> None:
            raise ServerError("500", status=500)

    client = continuation._GatedClient(_Inner(), gate)  # type: ignore[arg-type]
    with pytest.raises(ServerError):
        client.list_env()
    assert gate.delay(lambda: 0.0) == 0.0  # a 5xx is not a rate limit
    with pytest.raises(DeadlineExceeded):
        client.create_env()
    assert gate.delay(lambda: 0.0) == 30.0
    with pytest.raises(RateLimited):
        client.list_env()  # stopped before the network


def test_a_429_without_a_reset_waits_a_bucket_minute() -> None:
    gate = RateGate(lambda: 0.0)
    gate.trip(RateLimited("429", status=429))
    assert gate.reset_at == 60.0


# -- cold start ---------------------------------------------------------------------------


def test_publishing_functions_do_not_import_the_queue_sdk() -> None:
    code = (
        "import sys, lib.provisioning.continuation, lib.app\n"
        "assert not [m for m in sys.modules if m.startswith('vercel.queue')], 'imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()[-500:]


def test_without_a_queue_the_sweep_keeps_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VERCEL_REGION", raising=False)
    monkeypatch.delenv("VERCEL_QUEUE_BASE_URL", raising=False)
    services = _Services(_Store())
    assert not continue_later(services, "icfg_abc", None)
    assert services.store.calls == []
