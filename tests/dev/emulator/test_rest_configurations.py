"""Integration configurations: get, list (view required), delete (204, cleans up)."""

from __future__ import annotations

from tests.dev.emulator.support import Stack


def test_get_own_configuration(stack: Stack) -> None:
    team = stack.team()["id"]
    project = stack.projects_of(team)[0]["id"]
    installation = stack.install(team, "selected", [project])
    body = (
        stack.api(installation)
        .get(f"/v1/integrations/configuration/{installation.configuration_id}")
        .json()
    )
    assert body["id"] == installation.configuration_id
    assert body["integrationId"] == stack.config.client_id
    assert body["slug"] == stack.config.slug
    assert body["ownerId"] == body["teamId"] == team
    assert body["projectSelection"] == "selected"
    assert body["projects"] == [project]
    assert body["type"] == "integration-configuration"
    assert body["scopes"] == list(stack.config.scopes)


def test_full_access_configuration_has_no_projects_field(stack: Stack) -> None:
    installation = stack.install(stack.user()["id"])
    body = (
        stack.api(installation)
        .get(f"/v1/integrations/configuration/{installation.configuration_id}")
        .json()
    )
    assert body["projectSelection"] == "all"
    assert "projects" not in body
    assert body["teamId"] is None


def test_another_scopes_configuration_is_not_found(stack: Stack) -> None:
    mine = stack.install(stack.user()["id"])
    theirs = stack.install(stack.team()["id"])
    response = stack.api(mine).get(f"/v1/integrations/configuration/{theirs.configuration_id}")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found",
        "message": "The configuration was not found",
    }


def test_list_requires_view_and_returns_a_bare_array(stack: Stack) -> None:
    installation = stack.install(stack.team()["id"])
    api = stack.api(installation)
    assert api.get("/v1/integrations/configurations").status_code == 400
    account = api.get("/v1/integrations/configurations", params={"view": "account"}).json()
    assert isinstance(account, list)
    assert [c["id"] for c in account] == [installation.configuration_id]
    assert account[0]["integration"]["name"] == stack.config.name
    project = api.get("/v1/integrations/configurations", params={"view": "project"}).json()
    assert "integration" not in project[0]
    other = api.get(
        "/v1/integrations/configurations",
        params={"view": "account", "integrationIdOrSlug": "someone-else"},
    )
    assert other.json() == []


def test_delete_removes_configuration_tokens_env_vars_and_notifies(stack: Stack) -> None:
    team = stack.team()["id"]
    project = stack.projects_of(team)[0]["id"]
    installation = stack.install(team)
    api = stack.api(installation)
    api.post(
        f"/v10/projects/{project}/env",
        json={"key": "OURS", "value": "v", "type": "encrypted", "target": ["production"]},
    )
    stack.control("POST", f"/projects/{project}/env", json={"key": "THEIRS", "value": "u"})
    stack.grant_configuration_write(installation)
    response = api.delete(f"/v1/integrations/configuration/{installation.configuration_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert api.get("/v10/projects").status_code == 401
    keys = [e["key"] for p in stack.state()["projects"] for e in p["env"]]
    assert keys == ["THEIRS"]
    assert stack.emulator.drain(5)
    granted = "integration-configuration.scope-change-confirmed"  # the grant's own event
    removed = [w.json() for w in stack.receiver.webhooks() if w.json()["type"] != granted]
    assert [w["type"] for w in removed] == ["integration-configuration.removed"]
    assert removed[0]["payload"]["configuration"]["id"] == installation.configuration_id


def test_delete_without_webhook_variant(stack: Stack) -> None:
    stack.control("PATCH", "/config", json={"webhook_on_api_delete": False})
    installation = stack.install(stack.user()["id"])
    url = f"/v1/integrations/configuration/{installation.configuration_id}"
    stack.grant_configuration_write(installation)
    before = len(stack.emulator.deliveries())  # the grant's scope-change-confirmed
    assert stack.api(installation).delete(url).status_code == 204
    assert len(stack.emulator.deliveries()) == before


def test_the_default_grant_reads_configurations_and_cannot_delete_them(stack: Stack) -> None:
    installation = stack.install(stack.team()["id"])
    api = stack.api(installation)
    url = f"/v1/integrations/configuration/{installation.configuration_id}"
    assert api.get(url).status_code == 200
    assert api.delete(url).status_code == 403
    assert api.get(url).status_code == 200
