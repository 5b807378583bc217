"""Tokens, team scope, disabled and deleted configurations, integration scopes."""

from __future__ import annotations

import pytest

from tests.dev.emulator.support import Stack


def test_team_token_without_team_id_is_forbidden_as_vercel_answers(stack: Stack) -> None:
    installation = stack.install(stack.team()["id"])
    response = stack.api(installation, team_id=False).get("/v10/projects")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert error["scope"] == stack.user()["slug"]
    assert error["message"].startswith('Not authorized: Trying to access resource under scope "')
    assert stack.api(installation).get("/v10/projects").status_code == 200


def test_team_slug_works_like_team_id(stack: Stack) -> None:
    installation = stack.install(stack.team()["id"])
    api = stack.client(headers={"Authorization": f"Bearer {installation.token}"})
    assert api.get("/v10/projects", params={"slug": stack.team()["slug"]}).status_code == 200


def test_personal_token_cannot_reach_a_team(stack: Stack) -> None:
    installation = stack.install(stack.user()["id"])
    api = stack.api(installation)
    assert api.get("/v10/projects").status_code == 200
    response = api.get("/v10/projects", params={"teamId": stack.team()["id"]})
    assert response.status_code == 403
    assert response.json()["error"]["scope"] == stack.team()["slug"]


@pytest.mark.parametrize(
    ("status", "code", "marker"),
    [(401, "unauthorized", "missingToken"), (403, "forbidden", "missingToken")],
)
def test_missing_token_variants(stack: Stack, status: int, code: str, marker: str) -> None:
    stack.control("PATCH", "/config", json={"invalid_token_status": status})
    response = stack.client().get("/v10/projects")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"][marker] is True


@pytest.mark.parametrize(("status", "code"), [(401, "unauthorized"), (403, "forbidden")])
def test_invalid_token_variants(stack: Stack, status: int, code: str) -> None:
    stack.control("PATCH", "/config", json={"invalid_token_status": status})
    api = stack.client(headers={"Authorization": "Bearer not-a-token"})
    response = api.get("/v10/projects")
    assert response.status_code == status
    assert response.json()["error"] == {
        "code": code,
        "message": "The request is not authorized." if status == 401 else "Not authorized",
        "invalidToken": True,
    }


def test_disabled_configuration_fails_every_call_until_enabled(stack: Stack) -> None:
    team = stack.team()["id"]
    installation = stack.install(team)
    api = stack.api(installation)
    project = stack.projects_of(team)[0]["id"]
    stack.control("POST", f"/configurations/{installation.configuration_id}/disable")
    calls = [
        ("GET", "/v10/projects"),
        ("GET", f"/v9/projects/{project}"),
        ("GET", f"/v10/projects/{project}/env"),
        ("GET", f"/v1/integrations/configuration/{installation.configuration_id}"),
        ("GET", "/v1/integrations/configurations?view=account"),
        ("DELETE", f"/v1/integrations/configuration/{installation.configuration_id}"),
    ]
    for method, path in calls:
        response = api.request(method, path)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "integration_configuration_disabled"
    stack.control("POST", f"/configurations/{installation.configuration_id}/enable")
    assert api.get("/v10/projects").status_code == 200


def test_deleted_configurations_token_is_rejected(stack: Stack) -> None:
    installation = stack.install(stack.user()["id"])
    api = stack.api(installation)
    assert api.get("/v10/projects").status_code == 200
    stack.control("DELETE", f"/configurations/{installation.configuration_id}")
    response = api.get("/v10/projects")
    assert response.status_code == 401
    assert response.json()["error"]["invalidToken"] is True


def test_removed_scope_is_forbidden_and_confirmed_scope_restores(stack: Stack) -> None:
    team = stack.team()["id"]
    installation = stack.install(team)
    api = stack.api(installation)
    project = stack.projects_of(team)[0]["id"]
    path = f"/configurations/{installation.configuration_id}/scopes"
    stack.control("POST", f"{path}/remove", json={"scopes": ["read-write:project-env-vars"]})
    response = api.get(f"/v10/projects/{project}/env")
    assert response.status_code == 403
    # Vercel's observed wording (saleor/cli PR #530): it names no scope.
    assert response.json()["error"] == {
        "code": "forbidden",
        "message": "You don't have permission to access this resource.",
    }
    assert api.get("/v10/projects").status_code == 200
    stack.control(
        "POST",
        f"{path}/confirm",
        json={"scopes": ["read:project", "read:project-env-vars"]},
    )
    assert api.get(f"/v10/projects/{project}/env").status_code == 200
    created = api.post(
        f"/v10/projects/{project}/env",
        json={"key": "K", "value": "v", "type": "plain", "target": ["preview"]},
    )
    assert created.status_code == 403  # read is not read-write


def test_tokens_are_never_stored_or_shown_in_state(stack: Stack) -> None:
    installation = stack.install(stack.user()["id"])
    state = stack.client().get("/_emulator/state").text
    assert installation.token not in state
    assert stack.state()["tokens"] == 1
