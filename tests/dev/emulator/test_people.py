"""People and teams: who is signed in on the pages, who belongs to a team, and the
members list an integration token with Team read can see (getTeamMembers)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.dev.emulator.support import Stack

PERMISSION = {"code": "forbidden", "message": "You don't have permission to access this resource."}


def _users(stack: Stack) -> dict[str, dict[str, Any]]:
    return {u["slug"]: u for u in stack.state()["users"]}


def test_seed_has_the_installer_in_acme_and_an_outsider_in_no_team(stack: Stack) -> None:
    state = stack.state()
    users = _users(stack)
    assert set(users) == {"dev-user", "outsider"}
    assert state["signedInUser"] == "dev-user"
    assert state["user"]["id"] == users["dev-user"]["id"]
    (team,) = state["teams"]
    assert team["members"] == [
        {"id": users["dev-user"]["id"], "username": "dev-user", "role": "OWNER"}
    ]
    assert len(users["outsider"]["id"]) == 24


def test_outsider_id_is_stable_across_resets(stack: Stack) -> None:
    before = _users(stack)["outsider"]["id"]
    stack.control("POST", "/reset")
    assert _users(stack)["outsider"]["id"] == before


def test_install_pages_offer_only_the_signed_in_persons_scopes(stack: Stack) -> None:
    client = stack.client()
    slug = stack.config.slug
    assert "Acme Inc" in client.get(f"/integrations/{slug}/new").text
    stack.control("PUT", "/signed-in-user", json={"username": "outsider"})
    page = client.get(f"/integrations/{slug}/new").text
    assert "Acme Inc" not in page
    assert "Signed in as Out Sider" in page
    refused = client.post(
        f"/integrations/{slug}/new", data={"scope": stack.team()["id"], "access": "all"}
    )
    assert refused.status_code == 404
    assert stack.state()["configurations"] == []
    own = client.post(f"/integrations/{slug}/new", data={"scope": "outsider", "access": "all"})
    assert own.status_code == 302
    (cfg,) = stack.state()["configurations"]
    assert cfg["userId"] == _users(stack)["outsider"]["id"]


def _team_api(stack: Stack) -> tuple[str, httpx.Client, str]:
    installation = stack.install(stack.team()["slug"])
    assert installation.team_id is not None
    return installation.team_id, stack.api(installation), installation.configuration_id


def test_members_are_listed_with_the_default_grant(stack: Stack) -> None:
    assert "read:team" in stack.config.scopes
    team_id, api, _ = _team_api(stack)
    for version in ("v2", "v3"):
        answer = api.get(f"/{version}/teams/{team_id}/members")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        (member,) = body["members"]
        assert member["uid"] == stack.user()["id"]
        assert member["username"] == "dev-user"
        assert member["role"] == "OWNER"
        assert member["confirmed"] is True
        assert body["pagination"] == {
            "count": 1,
            "hasNext": False,
            "next": None,
            "prev": member["createdAt"],
        }


def test_members_follow_the_control_api(stack: Stack) -> None:
    team_id, api, _ = _team_api(stack)
    stack.control("POST", "/users", json={"username": "colleague", "name": "Col League"})
    stack.control("PUT", "/teams/acme/members/colleague", json={"role": "DEVELOPER"})
    stack.control("PUT", "/teams/acme/members/outsider", json={})
    members = api.get(f"/v3/teams/{team_id}/members").json()["members"]
    assert {m["username"]: m["role"] for m in members} == {
        "dev-user": "OWNER",
        "colleague": "DEVELOPER",
        "outsider": "MEMBER",
    }
    found = api.get(f"/v3/teams/{team_id}/members", params={"search": "col"}).json()
    assert [m["username"] for m in found["members"]] == ["colleague"]
    first = api.get(f"/v3/teams/{team_id}/members", params={"limit": 2}).json()
    assert first["pagination"]["hasNext"] is True
    rest = api.get(
        f"/v3/teams/{team_id}/members", params={"limit": 2, "until": first["pagination"]["next"]}
    ).json()
    seen = [m["username"] for m in first["members"] + rest["members"]]
    assert sorted(seen) == ["colleague", "dev-user", "outsider"]
    stack.control("DELETE", "/teams/acme/members/outsider")
    left = api.get(f"/v3/teams/{team_id}/members").json()["members"]
    assert "outsider" not in {m["username"] for m in left}
    bad_role = stack.client().put("/_emulator/teams/acme/members/colleague", json={"role": "BOSS"})
    assert bad_role.status_code == 400


def test_members_need_read_team(stack: Stack) -> None:
    team_id, api, cfg = _team_api(stack)
    stack.control("POST", f"/configurations/{cfg}/scopes/remove", json={"scopes": ["read:team"]})
    refused = api.get(f"/v3/teams/{team_id}/members")
    assert refused.status_code == 403
    assert refused.json()["error"] == PERMISSION


def test_members_of_another_scope_are_the_scope_error(stack: Stack) -> None:
    personal = stack.install(stack.user()["id"])
    api = stack.client(headers={"Authorization": f"Bearer {personal.token}"})
    answer = api.get(f"/v3/teams/{stack.team()['id']}/members")
    assert answer.status_code == 403
    assert answer.json()["error"]["message"].startswith("Not authorized: Trying to access")
    anonymous = stack.client().get(f"/v3/teams/{stack.team()['id']}/members")
    assert anonymous.status_code == 401


def test_a_team_created_by_the_signed_in_person_has_them_as_owner(stack: Stack) -> None:
    stack.control("PUT", "/signed-in-user", json={"username": "outsider"})
    stack.control("POST", "/teams", json={"slug": "outsiders", "name": "Outsiders"})
    mine = stack.control("GET", "/signed-in-user")
    assert mine["teams"] == ["outsiders"]
