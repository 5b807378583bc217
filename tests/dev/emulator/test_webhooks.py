"""Signed deliveries of every event the emulator fires, with retries and pausing."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest

from tests.dev.emulator.support import Captured, Stack


def _verify(stack: Stack, request: Captured) -> dict[str, Any]:
    expected = hmac.new(stack.config.client_secret.encode(), request.body, hashlib.sha1).hexdigest()
    assert request.headers["x-vercel-signature"] == expected
    assert request.headers["content-type"] == "application/json"
    envelope = request.json()
    assert set(envelope) == {"id", "type", "createdAt", "region", "payload"}
    assert isinstance(envelope["createdAt"], int)
    return dict(envelope)


def _events(stack: Stack, count: int) -> list[dict[str, Any]]:
    return [_verify(stack, r) for r in stack.receiver.wait_webhooks(count)]


def test_project_created_is_signed_and_shaped(stack: Stack) -> None:
    team = stack.team()["id"]
    installation = stack.install(team)
    result = stack.control("POST", "/projects?sync=1", json={"owner": team, "name": "fresh"})
    assert result["deliveries"][0]["attempts"][0]["status"] == 200
    (event,) = _events(stack, 1)
    assert event["type"] == "project.created"
    assert event["region"] == "iad1"
    assert event["payload"] == {
        "team": {"id": team},
        "user": {"id": stack.user()["id"]},
        "project": {"id": result["project"]["id"], "name": "fresh"},
    }
    assert installation.configuration_id  # the event is for the all-projects install


def test_project_events_only_for_all_projects_configurations(stack: Stack) -> None:
    team = stack.team()["id"]
    stack.install(team, "selected", [stack.projects_of(team)[0]["id"]])
    stack.control("POST", "/projects", json={"owner": team, "name": "unseen"})
    stack.control("DELETE", "/projects/unseen")
    assert stack.emulator.drain(5)
    assert stack.receiver.webhooks() == []


def test_project_removed_and_renamed(stack: Stack) -> None:
    owner = stack.user()["id"]
    stack.install(owner)
    project = stack.projects_of(owner)[0]
    stack.control("POST", f"/projects/{project['id']}/rename?sync=1", json={"name": "renamed"})
    stack.control("DELETE", f"/projects/{project['id']}?sync=1")
    events = {e["type"]: e["payload"] for e in _events(stack, 2)}
    assert events["project.renamed"]["previousName"] == project["name"]
    assert events["project.renamed"]["project"] == {"id": project["id"], "name": "renamed"}
    assert events["project.renamed"]["team"] == {"id": None}
    assert events["project.removed"]["project"]["id"] == project["id"]


def test_permission_upgraded_lists_added_and_removed(stack: Stack) -> None:
    team = stack.team()["id"]
    ids = [p["id"] for p in stack.projects_of(team)]
    installation = stack.install(team, "selected", ids[:2])
    stack.control(
        "PUT",
        f"/configurations/{installation.configuration_id}/projects?sync=1",
        json={"projectSelection": "selected", "projects": [ids[1], ids[2]]},
    )
    (event,) = _events(stack, 1)
    assert event["type"] == "integration-configuration.permission-upgraded"
    payload = event["payload"]
    assert payload["projects"] == {"added": [ids[2]], "removed": [ids[0]]}
    assert payload["configuration"] == {
        "id": installation.configuration_id,
        "projectSelection": "selected",
        "projects": [ids[1], ids[2]],
    }
    assert payload["team"] == {"id": team}


def test_scope_change_transfer_and_removal(stack: Stack) -> None:
    team = stack.team()["id"]
    other = stack.control("POST", "/teams", json={"slug": "globex"})["team"]["id"]
    installation = stack.install(team)
    cfg = f"/configurations/{installation.configuration_id}"
    stack.control("POST", f"{cfg}/scopes/confirm?sync=1", json={"scopes": ["read:project"]})
    stack.control("POST", f"{cfg}/transfer?sync=1", json={"team": other})
    stack.control("DELETE", f"{cfg}?sync=1")
    events = {e["type"]: e["payload"] for e in _events(stack, 3)}
    assert events["integration-configuration.scope-change-confirmed"]["configuration"] == {
        "id": installation.configuration_id,
        "scopes": ["read:project"],
    }
    assert events["integration-configuration.transferred"] == {
        "configuration": {"id": installation.configuration_id},
        "installationId": installation.configuration_id,
        "previousTeamId": team,
        "newTeamId": other,
    }
    removed = events["integration-configuration.removed"]
    assert removed["team"] == {"id": other}
    assert removed["configuration"]["id"] == installation.configuration_id


def test_transferred_token_needs_the_new_team_id(stack: Stack) -> None:
    team = stack.team()["id"]
    other = stack.control("POST", "/teams", json={"slug": "globex"})["team"]["id"]
    installation = stack.install(team)
    stack.control(
        "POST", f"/configurations/{installation.configuration_id}/transfer", json={"team": other}
    )
    token = {"Authorization": f"Bearer {installation.token}"}
    assert (
        stack.client(headers=token).get("/v10/projects", params={"teamId": team}).status_code == 403
    )
    assert (
        stack.client(headers=token).get("/v10/projects", params={"teamId": other}).status_code
        == 200
    )


def test_deployment_events(stack: Stack) -> None:
    team = stack.team()["id"]
    project = stack.projects_of(team)[0]
    stack.install(team)
    stack.control(
        "POST",
        f"/projects/{project['id']}/deployments?sync=1",
        json={"events": ["deployment.created", "deployment.promoted"], "target": "production"},
    )
    events = {e["type"]: e["payload"] for e in _events(stack, 2)}
    created = events["deployment.created"]
    assert created["project"] == {"id": project["id"]}
    assert created["target"] == "production"
    assert created["deployment"]["id"].startswith("dpl_")
    assert created["deployment"]["name"] == project["name"]
    assert set(created) >= {"team", "user", "deployment", "links", "plan", "regions", "alias"}
    assert "target" not in events["deployment.promoted"]
    assert "alias" not in events["deployment.promoted"]


def test_retries_until_the_receiver_succeeds(stack: Stack) -> None:
    owner = stack.user()["id"]
    stack.install(owner)
    stack.receiver.script[:] = [500, 503]
    stack.control("POST", "/projects", json={"owner": owner, "name": "retried"})
    assert stack.emulator.drain(5)
    first, second, third = stack.receiver.wait_webhooks(3)
    assert first.body == second.body == third.body  # same envelope, same id, every time
    (delivery,) = stack.emulator.deliveries()
    assert delivery["state"] == "delivered"
    assert [a["status"] for a in delivery["attempts"]] == [500, 503, 200]


def test_gives_up_after_the_retry_window(stack: Stack) -> None:
    owner = stack.user()["id"]
    stack.install(owner)
    stack.control("PATCH", "/config", json={"webhook_retry_window_s": 200})
    stack.receiver.script[:] = [500] * 10
    stack.control("POST", "/projects", json={"owner": owner, "name": "doomed"})
    assert stack.emulator.drain(5)
    (delivery,) = stack.emulator.deliveries()
    assert delivery["state"] == "failed"
    assert len(delivery["attempts"]) == 3  # 60 s + 120 s fit in 200 s, 240 s more does not


def test_slow_receiver_times_out_and_is_retried(stack: Stack) -> None:
    owner = stack.user()["id"]
    stack.install(owner)
    stack.control("PATCH", "/config", json={"webhook_timeout_s": 0.2})
    stack.receiver.delay_s = 0.5
    stack.control("POST", "/projects", json={"owner": owner, "name": "slow"})
    stack.receiver.wait_webhooks(1)
    stack.receiver.delay_s = 0.0
    assert stack.emulator.drain(5)
    (delivery,) = stack.emulator.deliveries()
    assert delivery["attempts"][0]["error"] == "ReadTimeout"
    assert delivery["attempts"][-1]["status"] == 200


def test_disabled_configuration_holds_all_but_exempt_events(stack: Stack) -> None:
    owner = stack.user()["id"]
    installation = stack.install(owner)
    project = stack.projects_of(owner)[0]["id"]
    cfg = f"/configurations/{installation.configuration_id}"
    stack.control("POST", f"{cfg}/disable")
    stack.control("POST", "/projects", json={"owner": owner, "name": "while-disabled"})
    started = time.monotonic()
    held = stack.control("POST", f"/projects/{project}/rename?sync=1", json={"name": "held"})
    assert time.monotonic() - started < 1  # sync does not wait for a held delivery
    assert held["deliveries"][0]["state"] == "paused"
    assert stack.emulator.drain(5)
    states = {d["type"]: d["state"] for d in stack.emulator.deliveries()}
    assert states == {"project.created": "delivered", "project.renamed": "paused"}
    stack.control("POST", f"{cfg}/enable")
    assert stack.emulator.drain(5)
    assert {d["state"] for d in stack.emulator.deliveries()} == {"delivered"}
    assert sorted(e["type"] for e in _events(stack, 2)) == ["project.created", "project.renamed"]


def test_redeliver_sends_the_same_envelope_again(stack: Stack) -> None:
    owner = stack.user()["id"]
    stack.install(owner)
    created = stack.control("POST", "/projects?sync=1", json={"owner": owner, "name": "dup"})
    delivery = created["deliveries"][0]["id"]
    stack.control("POST", f"/webhooks/deliveries/{delivery}/redeliver?sync=1")
    first, second = stack.receiver.wait_webhooks(2)
    assert first.body == second.body
    assert first.json()["id"] == second.json()["id"]


def test_drain_reports_idle(stack: Stack) -> None:
    assert stack.control("POST", "/webhooks/drain?timeout=1") == {"idle": True, "pending": 0}


@pytest.mark.parametrize("sync", [True, False])
def test_control_calls_do_not_wait_for_delivery_unless_sync(stack: Stack, sync: bool) -> None:
    owner = stack.user()["id"]
    stack.install(owner)
    stack.receiver.delay_s = 0.3
    suffix = "?sync=1" if sync else ""
    result = stack.control("POST", f"/projects{suffix}", json={"owner": owner, "name": "waits"})
    attempts = result["deliveries"][0]["attempts"]
    assert (len(attempts) == 1) is sync
    assert stack.emulator.drain(5)
