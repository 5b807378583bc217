"""Projects: `until`/`from` pagination to the end, lookup by id or name, access scoping."""

from __future__ import annotations

import httpx
import pytest

from tests.dev.emulator.support import Stack


def _all_pages(api: httpx.Client, param: str, limit: int) -> tuple[list[str], int]:
    names: list[str] = []
    query: dict[str, object] = {"limit": limit}
    pages = 0
    while True:
        body = api.get("/v10/projects", params=query).json()
        pages += 1
        names += [p["name"] for p in body["projects"]]
        assert body["pagination"]["count"] == len(body["projects"])
        if body["pagination"]["next"] is None:
            return names, pages
        query[param] = body["pagination"]["next"]


@pytest.mark.parametrize("param", ["until", "from"])
def test_pagination_walks_every_project_once(stack: Stack, param: str) -> None:
    team = stack.team()["id"]
    for i in range(4):
        stack.control("POST", "/projects", json={"owner": team, "name": f"extra-{i}"})
    api = stack.api(stack.install(team))
    names, pages = _all_pages(api, param, limit=2)
    assert sorted(names) == sorted(p["name"] for p in stack.projects_of(team))
    assert len(names) == 9
    assert pages == 5


def test_default_page_size_is_twenty_and_newest_first(stack: Stack) -> None:
    owner = stack.user()["id"]
    for i in range(25):
        stack.control("POST", "/projects", json={"owner": owner, "name": f"p-{i:02d}"})
    api = stack.api(stack.install(owner))
    first = api.get("/v9/projects").json()
    assert len(first["projects"]) == 20
    assert first["projects"][0]["name"] == "p-24"
    updated = [p["updatedAt"] for p in first["projects"]]
    assert updated == sorted(updated, reverse=True)
    assert first["pagination"]["next"] == updated[-1]
    rest = api.get("/v9/projects", params={"until": first["pagination"]["next"]}).json()
    assert len(rest["projects"]) == 28 - 20
    assert rest["pagination"]["next"] is None


def test_invalid_cursor_is_bad_request(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    response = api.get("/v10/projects", params={"from": "not-a-number"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_project_by_id_or_name(stack: Stack) -> None:
    team = stack.team()["id"]
    api = stack.api(stack.install(team))
    project = stack.projects_of(team)[0]
    by_id = api.get(f"/v9/projects/{project['id']}").json()
    by_name = api.get(f"/v9/projects/{project['name']}").json()
    assert by_id == by_name
    assert by_id["id"] == project["id"]
    assert by_id["accountId"] == team
    missing = api.get("/v9/projects/does-not-exist")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_selected_configuration_sees_only_its_projects(stack: Stack) -> None:
    team = stack.team()["id"]
    projects = stack.projects_of(team)
    granted = [projects[0]["id"], projects[2]["id"]]
    api = stack.api(stack.install(team, "selected", granted))
    listed = [p["id"] for p in api.get("/v10/projects").json()["projects"]]
    assert sorted(listed) == sorted(granted)
    other = api.get(f"/v9/projects/{projects[1]['id']}")
    assert other.status_code == 403
    assert api.get(f"/v10/projects/{projects[1]['id']}/env").status_code == 403
    assert api.get(f"/v9/projects/{granted[0]}").status_code == 200


def test_projects_of_another_scope_are_invisible(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    team_project = stack.projects_of(stack.team()["id"])[0]
    assert api.get(f"/v9/projects/{team_project['id']}").status_code == 404


def test_search_filters_by_name(stack: Stack) -> None:
    api = stack.api(stack.install(stack.team()["id"]))
    body = api.get("/v10/projects", params={"search": "DASH"}).json()
    assert [p["name"] for p in body["projects"]] == ["dashboard"]


def test_unknown_method_is_method_unknown(stack: Stack) -> None:
    api = stack.api(stack.install(stack.user()["id"]))
    response = api.delete("/v10/projects")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_unknown"
    assert api.get("/v99/nothing").status_code == 404
