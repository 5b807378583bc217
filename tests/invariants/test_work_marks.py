"""Every stored installation gets its work (issue 11, invariant 6): a pending mark is
cleared only by a run that covered what it stands for.

A run scoped to some projects (`project.created`: `projects=`; `permission-upgraded`:
`only=`) never clears the mark; a full run clears it only if the mark is not later than
the run's start (the store compares and removes in one script). Forced over real HTTP:
the `project.created` handler is parked at its first guarded write while an admin
resync fails on another project and marks the installation pending.
"""

from __future__ import annotations

from lib.kv.store import _GUARDED_WRITE
from tests.conftest import E2E, E2E_ADMIN_TOKEN, E2E_CRON_SECRET
from tests.invariants.test_facts_and_work import TEAM, _installed, _skipped


def _vars_of(e2e: E2E, project_id: str) -> list[str]:
    return sorted(
        e.key for e in e2e.emulator._ctx.store.envs.values() if e.project_id == project_id
    )


def test_a_scoped_run_keeps_the_mark_a_concurrent_full_run_left(e2e: E2E) -> None:
    cfg = _installed(e2e)
    store = e2e.services().store
    _skipped(e2e, lambda: e2e.emulator.create_project(TEAM, "q-unprovisioned"))
    projects = e2e.emulator.state()["projects"]
    q = next(str(p["id"]) for p in projects if p["name"] == "q-unprovisioned")
    assert not store.is_pending(cfg)
    assert _vars_of(e2e, q) == []
    e2e.kv.gateway.backend.execute([b"SCRIPT", b"LOAD", _GUARDED_WRITE.encode()])
    with e2e.kv.gateway.hold(key_glob="vi:gone:*", path="/", timeout_seconds=30) as held:
        e2e.emulator.create_project(TEAM, "p-new")  # project.created, delivered to us
        assert held.wait_held(timeout=20), "the project.created handler never wrote"
        # Meanwhile a full resync fails on Q and leaves the installation pending.
        e2e.emulator.set_faults(
            [{"route": f"*/projects/{q}/env*", "probability": 1.0, "kinds": ["500"]}]
        )
        try:
            with e2e.http(headers={"authorization": f"Bearer {E2E_ADMIN_TOKEN}"}) as client:
                answer = client.post("/provision", json={"configurationId": cfg})
        finally:
            e2e.emulator.clear_faults()
        [report] = answer.json()["installations"]
        assert (report["outcome"], report["pending"]) == ("partial", True)
    assert e2e.emulator.drain(30)
    p_new = next(str(p["id"]) for p in e2e.emulator.state()["projects"] if p["name"] == "p-new")
    assert _vars_of(e2e, p_new), "the scoped run did its own project"
    assert store.is_pending(cfg), "the scoped run cleared a mark it did not cover"
    with e2e.http(headers={"authorization": f"Bearer {E2E_CRON_SECRET}"}) as client:
        swept = client.get("/provision", params={"sweep": "1"}).json()["swept"]
    assert [(r["configurationId"], r["outcome"]) for r in swept] == [(cfg, "done")]
    assert _vars_of(e2e, q), "Q's work was done by the sweep"
    assert not store.is_pending(cfg)
