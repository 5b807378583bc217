"""A transfer Vercel cannot describe (invariant 3, "newer facts win"): while an
installation is disabled Vercel answers 403 to every question, and the transferred
payload names no projects. The former team's project ids mean nothing in the new team
(Vercel keeps the access mode and grants no project), so none may stay stored; a newer
selection still wins, and once Vercel can be asked its answer does. Over real HTTP, the
real SDK, the KV gateway and the Vercel emulator, deliveries held and replayed in the
order forced here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import E2E

TEAM, NEW_TEAM = "acme", "globex"


def _scope_id(e2e: E2E, slug: str) -> str:
    return next(str(t["id"]) for t in e2e.emulator.state()["teams"] if t["slug"] == slug)


def _project(e2e: E2E, slug: str, name: str) -> str:
    got = e2e.emulator.create_project(slug, name)
    return str(got["project"]["id"])


def _installed(e2e: E2E, selection: str) -> str:
    e2e.emulator.create_team(NEW_TEAM)
    got = e2e.install(TEAM)
    cfg = str(got["configurationId"])
    if selection == "selected":
        e2e.emulator.set_project_access(cfg, "selected", [_project(e2e, TEAM, "former")])
    assert e2e.emulator.drain(20)
    return cfg


def _held(e2e: E2E, action: Callable[[], Any]) -> dict[str, Any]:
    """Run an emulator action whose delivery does not reach us (yet); its envelope."""
    url = e2e.emulator.config.webhook_url
    e2e.emulator.configure(webhook_url=None)
    try:
        action()
        assert e2e.emulator.drain(20)
    finally:
        e2e.emulator.configure(webhook_url=url)
    envelope: dict[str, Any] = e2e.emulator.deliveries()[-1]["envelope"]
    return envelope


def _vercel(e2e: E2E, cfg: str) -> dict[str, Any]:
    return next(dict(c) for c in e2e.emulator.state()["configurations"] if c["id"] == cfg)


def _agrees(e2e: E2E, cfg: str) -> tuple[str, list[str]]:
    """The stored owner and selection are Vercel's; the stored selection."""
    store = e2e.services().store
    inst, truth = store.get_installation(cfg), _vercel(e2e, cfg)
    assert inst is not None
    assert (inst.owner_id, inst.project_selection) == (truth["ownerId"], truth["projectSelection"])
    assert store.installations_for_owner(truth["ownerId"]) == [cfg]
    assert store.installations_for_owner(_scope_id(e2e, TEAM)) == []
    if truth["projectSelection"] == "selected":
        assert sorted(inst.project_ids) == sorted(truth["projects"])
    return inst.project_selection or "", list(inst.project_ids)


@pytest.mark.parametrize("selection", ["selected", "all"])
def test_disabled_then_transferred_then_enabled(e2e: E2E, selection: str) -> None:
    cfg = _installed(e2e, selection)
    e2e.emulator.disable_configuration(cfg)
    e2e.emulator.transfer_configuration(cfg, NEW_TEAM)  # held by Vercel while disabled
    moved = e2e.emulator.deliveries()[-1]
    assert moved["state"] == "paused"
    # A delivery that lands while disabled (our retry queue, a replay): Vercel says 403.
    assert e2e.post_webhook(moved["envelope"]).status_code == 200
    assert _agrees(e2e, cfg) == (selection, [])
    e2e.emulator.enable_configuration(cfg)  # Vercel delivers what it held: a duplicate now
    assert e2e.emulator.drain(20)
    assert _agrees(e2e, cfg) == (selection, [])
    # The new team's choice, once Vercel can be asked, wins as usual.
    chosen = _project(e2e, NEW_TEAM, "latter")
    e2e.emulator.set_project_access(cfg, "selected", [chosen])
    assert e2e.emulator.drain(20)
    assert _agrees(e2e, cfg) == ("selected", [chosen])


def test_disabled_then_transferred_delivered_at_the_enable(e2e: E2E) -> None:
    cfg = _installed(e2e, "selected")
    e2e.emulator.disable_configuration(cfg)
    e2e.emulator.transfer_configuration(cfg, NEW_TEAM)
    e2e.emulator.enable_configuration(cfg)  # the held delivery: Vercel can be asked now
    assert e2e.emulator.drain(20)
    assert _agrees(e2e, cfg) == ("selected", [])


def test_transferred_then_disabled_before_the_delivery(e2e: E2E) -> None:
    cfg = _installed(e2e, "selected")
    moved = _held(e2e, lambda: e2e.emulator.transfer_configuration(cfg, NEW_TEAM))
    e2e.emulator.disable_configuration(cfg)
    assert e2e.post_webhook(moved).status_code == 200
    assert _agrees(e2e, cfg) == ("selected", [])
    e2e.emulator.enable_configuration(cfg)
    assert e2e.emulator.drain(20)
    assert _agrees(e2e, cfg) == ("selected", [])


def test_a_newer_selection_wins_over_the_late_transfer(e2e: E2E) -> None:
    """Disabled: the transfer, then the new team's project chosen; delivered swapped. The
    transfer's "no project" is older than the choice and must not erase it."""
    cfg = _installed(e2e, "selected")
    e2e.emulator.disable_configuration(cfg)
    e2e.emulator.transfer_configuration(cfg, NEW_TEAM)
    chosen = _project(e2e, NEW_TEAM, "latter")
    # A person's next action is a moment later: on a quiet machine both events could
    # otherwise carry the same millisecond, and a tie says nothing about the order.
    e2e.emulator.advance_clock(1)
    e2e.emulator.set_project_access(cfg, "selected", [chosen])
    moved, picked = (d["envelope"] for d in e2e.emulator.deliveries()[-2:])
    assert (moved["type"], picked["type"]) == (
        "integration-configuration.transferred",
        "integration-configuration.permission-upgraded",
    )
    assert e2e.post_webhook(picked).status_code == 200
    assert e2e.post_webhook(moved).status_code == 200
    assert _agrees(e2e, cfg) == ("selected", [chosen])


def test_a_late_choice_made_in_the_former_team_names_none_of_its_projects(e2e: E2E) -> None:
    """Disabled: a project of the former team chosen, then the transfer; delivered swapped.
    The choice's access mode holds (Vercel keeps it through the transfer), its ids don't."""
    cfg = _installed(e2e, "all")
    e2e.emulator.disable_configuration(cfg)
    e2e.emulator.set_project_access(cfg, "selected", [_project(e2e, TEAM, "former")])
    e2e.emulator.advance_clock(1)  # a moment later (see above)
    e2e.emulator.transfer_configuration(cfg, NEW_TEAM)
    picked, moved = (d["envelope"] for d in e2e.emulator.deliveries()[-2:])
    assert (moved["type"], picked["type"]) == (
        "integration-configuration.transferred",
        "integration-configuration.permission-upgraded",
    )
    assert e2e.post_webhook(moved).status_code == 200
    assert e2e.post_webhook(picked).status_code == 200
    assert _agrees(e2e, cfg) == ("selected", [])
