"""The control API and its Python twin: seed, reset, world changes, counters, settings."""

from __future__ import annotations

import time

import httpx
import pytest

from dev.emulator import EmulatorConfig, create_app
from dev.emulator.actions import ActionError
from dev.serve import running
from tests.dev.emulator.support import Stack


def test_seed_is_a_person_and_a_team_with_vercel_like_ids(stack: Stack) -> None:
    state = stack.state()
    user, (team,) = state["user"], state["teams"]
    assert len(user["id"]) == 24
    assert team["id"].startswith("team_")
    assert len(stack.projects_of(user["id"])) == 3
    assert len(stack.projects_of(team["id"])) == 5
    assert all(p["id"].startswith("prj_") for p in state["projects"])
    assert state["configurations"] == []
    assert state["tokens"] == 0


def test_reset_restores_the_seed_with_stable_ids_and_the_clock(stack: Stack) -> None:
    before = stack.state()
    stack.control("POST", "/clock/advance", json={"seconds": 86400})
    stack.control("POST", "/projects", json={"owner": before["user"]["id"], "name": "temp"})
    stack.install(before["teams"][0]["id"])
    after = stack.control("POST", "/reset")
    assert after["configurations"] == []
    fresh = stack.control("POST", "/projects", json={"owner": "acme", "name": "fresh"})
    assert abs(fresh["project"]["createdAt"] / 1000 - time.time()) < 60
    assert sorted(p["id"] for p in after["projects"]) == sorted(p["id"] for p in before["projects"])
    empty = stack.control("POST", "/reset", json={"seed": False})
    assert empty["teams"] == []
    assert empty["projects"] == []


def test_projects_can_be_created_renamed_and_removed(stack: Stack) -> None:
    team = stack.team()
    created = stack.control("POST", "/projects", json={"owner": team["slug"], "name": "new-app"})
    project = created["project"]
    assert project["accountId"] == team["id"]
    renamed = stack.control("POST", f"/projects/{project['id']}/rename", json={"name": "renamed"})
    assert renamed["previousName"] == "new-app"
    stack.control("DELETE", "/projects/renamed")
    assert all(p["id"] != project["id"] for p in stack.state()["projects"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/projects", {"owner": "nobody", "name": "x"}, 404),
        ("POST", "/projects", {"owner": "acme", "name": "Bad Name"}, 400),
        ("POST", "/projects", {"owner": "acme", "name": "web"}, 400),
        ("DELETE", "/configurations/icfg_missing", None, 404),
        ("POST", "/oauth/code", {}, 400),
        ("PATCH", "/config", {"no_such_setting": 1}, 400),
        ("PATCH", "/config", {"env_conflict_status": 409}, 400),
        ("POST", "/clock/advance", {"seconds": -1}, 400),
        ("GET", "/nowhere", None, 404),
    ],
)
def test_control_errors(stack: Stack, method: str, path: str, body: object, status: int) -> None:
    response = stack.client().request(method, f"/_emulator{path}", json=body)
    assert response.status_code == status
    assert "message" in response.json()["error"]


def test_user_env_and_state_show_values(stack: Stack) -> None:
    project = stack.projects_of(stack.team()["id"])[0]["id"]
    created = stack.control(
        "POST",
        f"/projects/{project}/env",
        json={"key": "SECRET", "value": "s3cr3t", "type": "sensitive", "target": ["production"]},
    )
    assert created["env"]["configurationId"] is None
    (env,) = next(p for p in stack.state()["projects"] if p["id"] == project)["env"]
    assert (env["key"], env["value"], env["hidden"]) == ("SECRET", "s3cr3t", False)
    clash = stack.client().post(
        f"/_emulator/projects/{project}/env", json={"key": "SECRET", "value": "again"}
    )
    assert clash.status_code == 400


def test_call_counts_are_per_route_template(stack: Stack) -> None:
    owner = stack.user()["id"]
    api = stack.api(stack.install(owner))
    for project in stack.projects_of(owner):
        api.get(f"/v10/projects/{project['id']}/env")
    api.get("/v9/projects/nope")
    calls = stack.control("GET", "/calls")
    routes = calls["routes"]
    assert routes["GET /v10/projects/{idOrName}/env"] == {"count": 3, "statuses": {"200": 3}}
    assert routes["GET /v9/projects/{idOrName}"] == {"count": 1, "statuses": {"404": 1}}
    assert routes["POST /v2/oauth/access_token"]["count"] == 1
    assert calls["total"] == 5
    assert stack.control("DELETE", "/calls") == {"total": 0, "routes": {}}


def test_config_is_readable_without_the_secret(stack: Stack) -> None:
    config = stack.control("GET", "/config")
    assert config["client_id"] == stack.config.client_id
    assert "client_secret" not in config
    assert stack.config.client_secret not in stack.client().get("/_emulator/config").text


def test_python_methods_mirror_the_control_api() -> None:
    emulator = create_app(EmulatorConfig(webhook_url=None))
    try:
        team = emulator.state()["teams"][0]["id"]
        minted = emulator.mint_code(scope=team, project_selection="all")
        assert minted["teamId"] == team
        created = emulator.create_project(team, "from-python", sync=True)
        assert created["deliveries"][0]["state"] == "skipped"  # no webhook URL configured
        emulator.disable_configuration(minted["configurationId"])
        assert emulator.state()["configurations"][0]["disabledAt"] is not None
        with pytest.raises(ActionError):
            emulator.remove_project("no-such-project")
        with pytest.raises(TypeError):
            emulator.configure(colour="blue")
    finally:
        emulator.close()


def test_injected_clock_drives_code_expiry() -> None:
    now = [1_000_000.0]
    emulator = create_app(EmulatorConfig(clock=lambda: now[0]))
    try:
        minted = emulator.mint_code(scope=emulator.state()["user"]["id"])
        now[0] += 31 * 60
        with running(emulator) as server:
            response = httpx.post(
                f"{server.url}/v2/oauth/access_token",
                data={
                    "client_id": emulator.config.client_id,
                    "client_secret": emulator.config.client_secret,
                    "code": minted["code"],
                    "redirect_uri": emulator.config.redirect_uri,
                },
            )
        assert response.json()["error_description"].endswith("has expired")
    finally:
        emulator.close()


def test_integration_slug_alias() -> None:
    assert EmulatorConfig(integration_slug="dev-integration").slug == "dev-integration"
    with pytest.raises(ValueError, match="env_conflict_status"):
        EmulatorConfig(env_conflict_status=409)  # type: ignore[arg-type]
