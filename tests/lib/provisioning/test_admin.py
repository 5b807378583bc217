"""Operator actions (resync, sweep, drift, status) against the emulator and the KV gateway.

The reconcile itself is proven in test_provisioning.py; here, what the operations add:
budgets across installations, sweep order, drift as a pure dry run, and what status shows.
"""

from __future__ import annotations

import time

import pytest

from lib.deadline import Deadline
from lib.kv.client import KVError
from lib.provisioning.admin import drift, resync, sweep
from lib.provisioning.reports import status
from tests.conftest import E2E
from tests.lib.provisioning.test_reconcile import (
    HIDDEN_RECHECK_S,
    SCOPE_TEAM,
    SCOPE_USER,
    SPEC,
    KVSpy,
    install,
    ours,
    provisioner,
    spec_of,
    vercel_writes,
)


def test_resync_without_budget_marks_everything_pending_and_calls_nothing(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    team, personal = install(e2e, SCOPE_TEAM), install(e2e, SCOPE_USER)
    cfgs = [team.configuration_id, personal.configuration_id]
    e2e.emulator.reset_calls()
    reports = resync(provisioner(e2e, spec), cfgs, Deadline(1.0))
    assert [(r.configuration_id, r.outcome, r.reason, r.pending) for r in reports] == [
        (cfg, "partial", "out of time", True) for cfg in cfgs
    ]
    assert e2e.emulator.call_counts()["total"] == 0
    assert sorted(e2e.services().store.pending()) == sorted(cfgs)
    # The sweep takes them oldest first, and clears each one it finishes.
    first = sweep(provisioner(e2e, spec), Deadline(30), limit=1)
    assert [r.configuration_id for r in first] == [cfgs[0]]
    assert e2e.services().store.pending() == [cfgs[1]]
    rest = sweep(provisioner(e2e, spec), Deadline(30))
    assert [(r.configuration_id, r.outcome) for r in rest] == [(cfgs[1], "done")]
    assert e2e.services().store.pending() == []


def test_drift_is_a_dry_run_and_shows_remembered_conflicts(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e)
    e2e.emulator.add_user_env("my-blog", "PROJECT_REF", "mine", target=["preview"])
    prov = provisioner(e2e, spec)
    prov.reconcile(inst.configuration_id, Deadline(30))
    store = e2e.services().store
    spy = KVSpy(store.kv)
    store.kv = spy  # type: ignore[assignment]
    try:
        e2e.emulator.reset_calls()
        # Even past the recheck time, drift reports what it knows instead of guessing.
        later = provisioner(e2e, spec, clock=lambda: time.time() + 2 * HIDDEN_RECHECK_S)
        report = drift(later, inst, Deadline(30)).as_dict()
    finally:
        store.kv = spy.inner
    assert vercel_writes(e2e) == {}
    assert spy.writes() == []
    assert report["inSync"] is False  # a conflict remains: never reported as in sync
    rows = {r["name"]: r for r in report["projects"]}
    assert rows["my-blog"]["inSync"] is False
    assert all(r["inSync"] for name, r in rows.items() if name != "my-blog")
    assert rows["my-blog"]["conflicts"] == [
        {"key": "PROJECT_REF", "targets": ["preview"], "gitBranch": None, "owner": "hidden"}
    ]
    assert sorted(rows["portfolio"]["ok"]) == [
        "API_KEY", "API_KEY", "DASHBOARD_URL", "DASHBOARD_URL", "PROJECT_REF"
    ]  # fmt: skip
    assert rows["portfolio"]["missing"] == []
    assert rows["portfolio"]["changed"] == []
    assert rows["portfolio"]["extra"] == 0


def test_drift_reports_unreachable_projects_and_listing_failures(e2e: E2E) -> None:
    spec = spec_of(SPEC)
    inst = install(e2e)
    prov = provisioner(e2e, spec)
    prov.reconcile(inst.configuration_id, Deadline(30))
    assert len(ours(e2e, inst)) == 3
    e2e.emulator.set_faults([{"route": "GET /v10/projects/{idOrName}/env", "probability": 1.0,
                              "kinds": ["500"]}])  # fmt: skip
    report = drift(prov, inst, Deadline(30)).as_dict()
    assert report["inSync"] is False
    assert {r["error"] for r in report["projects"]} == {"internal_server_error"}
    e2e.emulator.disable_configuration(inst.configuration_id)
    assert drift(prov, inst, Deadline(30)).as_dict() == {
        "error": "integration_configuration_disabled",
        "projects": [],
        "inSync": False,
    }


def test_status_shows_the_installation_without_its_token(e2e: E2E) -> None:
    inst = install(e2e, SCOPE_TEAM)
    shown = status(inst, pending=True).as_dict()
    assert shown["configurationId"] == inst.configuration_id
    assert shown["teamId"] == inst.team_id
    assert shown["pending"] is True
    assert shown["projectSelection"] == "all"
    assert inst.sealed_token not in str(shown)
    assert "token" not in " ".join(shown).lower()


def test_the_sweep_goes_on_after_one_installation_fails(e2e: E2E) -> None:
    """A damaged record (or any failure of one installation) is that installation's
    report; the next installation is still reconciled. Only a KV down for every one of
    them is raised (the caller answers "retry")."""
    spec = spec_of(SPEC)
    team, personal = install(e2e, SCOPE_TEAM), install(e2e, SCOPE_USER)
    store = e2e.services().store
    store.mark_pending(team.configuration_id)
    store.mark_pending(personal.configuration_id)
    store.kv.call("SET", store.key("inst", team.configuration_id), "{damaged")
    reports = sweep(provisioner(e2e, spec), Deadline(30))
    assert [(r.configuration_id, r.outcome) for r in reports] == [
        (team.configuration_id, "partial"),
        (personal.configuration_id, "done"),
    ]
    assert reports[0].reason == "failed: StoreError"
    assert store.pending() == [team.configuration_id]  # still to do, for the next sweep
    e2e.kv.gateway.set_faults(error_rate=1.0)
    try:
        with pytest.raises(KVError):
            resync(provisioner(e2e, spec), [personal.configuration_id], Deadline(30))
    finally:
        e2e.kv.gateway.clear_faults()
