"""Newer facts win (issue 11, invariant 3) whatever an event's clock says.

An event's `createdAt` becomes a watermark only as `min(createdAt, now)`: a sender's
clock ahead of ours must not hold back every genuine later event for the length of the
skew. An event of unknown age (`createdAt` missing, a string, a bool, not positive) is
handled, but its payload never wins a watermark: only what Vercel answers is applied.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import E2E
from tests.invariants.test_facts_and_work import _installed, _scope_id

_FULL = [
    "read:project",
    "read-write:project-env-vars",
    "read-write:integration-configuration",
    "read:team",
]


def _withhold_the_configuration(e2e: E2E, cfg: str) -> None:
    """Vercel won't answer GET configuration for now: the payload's facts are used."""
    e2e.emulator.remove_scopes(
        cfg, ["read-write:integration-configuration", "read:integration-configuration"]
    )


def _upgraded(cfg: str, team: str, created: Any, projects: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"evt_{len(projects)}_{created!s:.20}",
        "type": "integration-configuration.permission-upgraded",
        "payload": {
            "team": {"id": team},
            "user": {"id": "u"},
            "configuration": {"id": cfg, "projectSelection": "selected", "projects": projects},
        },
    }
    if created is not ...:
        body["createdAt"] = created
    return body


def test_an_event_from_a_clock_an_hour_ahead_holds_back_no_later_fact(e2e: E2E) -> None:
    cfg = _installed(e2e)
    acme = _scope_id(e2e, "acme")
    store = e2e.services().store
    projects = [str(p["id"]) for p in e2e.emulator.state()["projects"] if p["accountId"] == acme]
    _withhold_the_configuration(e2e, cfg)
    ahead = _upgraded(cfg, acme, int((time.time() + 3600) * 1000), projects[:1])
    assert e2e.post_webhook(ahead).status_code == 200
    inst = store.get_installation(cfg)
    assert inst is not None
    assert inst.project_selection == "selected"
    assert inst.projects_at <= time.time()
    # The scope comes back and the user grants every project: genuine, current events.
    e2e.emulator.confirm_scope_change(cfg, _FULL)
    assert e2e.emulator.drain(20)
    e2e.emulator.set_project_access(cfg, "all")
    assert e2e.emulator.drain(20)
    inst = store.get_installation(cfg)
    assert inst is not None
    assert (inst.project_selection, inst.project_ids) == ("all", [])
    e2e.emulator.create_project("acme", "brand-new")
    assert e2e.emulator.drain(20)
    new = next(str(p["id"]) for p in e2e.emulator.state()["projects"] if p["name"] == "brand-new")
    assert new in store.get_projects(cfg)


@pytest.mark.parametrize("created", [..., "2026-01-01T00:00:00Z", True, 0, -5])
def test_an_event_of_unknown_age_never_wins_a_watermark(e2e: E2E, created: Any) -> None:
    cfg = _installed(e2e)
    acme = _scope_id(e2e, "acme")
    store = e2e.services().store
    projects = [str(p["id"]) for p in e2e.emulator.state()["projects"] if p["accountId"] == acme]
    before = store.get_installation(cfg)
    assert before is not None
    _withhold_the_configuration(e2e, cfg)
    answer = e2e.post_webhook(_upgraded(cfg, acme, created, projects[:1]))
    assert answer.status_code == 200, answer.text
    after = store.get_installation(cfg)
    assert after is not None
    assert (after.project_selection, after.project_ids) == (
        before.project_selection,
        before.project_ids,
    )
    assert (after.projects_at, after.scopes_at, after.owner_at) == (
        before.projects_at,
        before.scopes_at,
        before.owner_at,
    )
    # A genuine, dated event still applies its facts afterwards.
    dated = _upgraded(cfg, acme, int(time.time() * 1000), projects[:1])
    assert e2e.post_webhook(dated).status_code == 200
    inst = store.get_installation(cfg)
    assert inst is not None
    assert (inst.project_selection, inst.project_ids) == ("selected", projects[:1])
