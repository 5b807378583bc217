"""The install pages: choose scope and projects, land on the Redirect URL, follow `next`."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from tests.dev.emulator.support import Stack


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _submit(stack: Stack, form: dict[str, object]) -> httpx.Response:
    return stack.client().post(f"/integrations/{stack.config.slug}/new", data=form)


def test_scope_page_lists_the_person_and_their_teams(stack: Stack) -> None:
    page = stack.client().get(f"/integrations/{stack.config.slug}/new", params={"state": "s1"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="en">' in html
    assert stack.user()["id"] in html
    assert stack.team()["id"] in html
    assert 'name="state" value="s1"' in html
    assert "<script" not in html


def test_project_page_offers_all_or_selected_projects(stack: Stack) -> None:
    team = stack.team()
    page = stack.client().get(
        f"/integrations/{stack.config.slug}/new", params={"scope": team["id"]}
    )
    assert page.status_code == 200
    for project in stack.projects_of(team["id"]):
        assert f'value="{project["id"]}"' in page.text
        assert project["name"] in page.text
    assert 'value="all"' in page.text
    assert 'value="selected"' in page.text
    assert 'method="post"' in page.text


def test_state_is_escaped_in_pages(stack: Stack) -> None:
    evil = '"><script>alert(1)</script>'
    page = stack.client().get(f"/integrations/{stack.config.slug}/new", params={"state": evil})
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;" in page.text


def test_team_install_redirects_with_vercels_parameters(stack: Stack) -> None:
    team = stack.team()
    picked = [p["id"] for p in stack.projects_of(team["id"])[:2]]
    response = _submit(
        stack,
        {"scope": team["id"], "access": "selected", "projects": picked, "state": "xyz"},
    )
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(stack.config.redirect_uri + "?")
    query = _query(location)
    assert set(query) == {"code", "configurationId", "teamId", "next", "source", "state"}
    assert query["teamId"] == team["id"]
    assert query["state"] == "xyz"
    assert query["source"] == "external"
    assert query["configurationId"].startswith("icfg_")
    assert query["next"].startswith(stack.url + "/")
    cfg = next(c for c in stack.state()["configurations"] if c["id"] == query["configurationId"])
    assert cfg["projectSelection"] == "selected"
    assert cfg["projects"] == picked
    assert stack.exchange(query["code"]).json()["installation_id"] == query["configurationId"]


def test_personal_install_has_no_team_id_and_no_state_unless_given(stack: Stack) -> None:
    response = _submit(stack, {"scope": stack.user()["id"], "access": "all"})
    query = _query(response.headers["location"])
    assert "teamId" not in query
    assert "state" not in query
    assert set(query) == {"code", "configurationId", "next", "source"}


def test_browser_follows_the_redirect_to_the_callback(stack: Stack) -> None:
    client = stack.client(follow_redirects=True)
    page = client.post(
        f"/integrations/{stack.config.slug}/new",
        data={"scope": stack.team()["id"], "access": "all", "state": "st"},
    )
    assert page.status_code == 200
    callbacks = [r for r in stack.receiver.requests if r.path == "/callback"]
    assert len(callbacks) == 1
    assert callbacks[0].query["state"] == "st"
    assert callbacks[0].query["teamId"] == stack.team()["id"]


def test_reinstall_on_same_scope_issues_a_new_code_for_the_same_configuration(
    stack: Stack,
) -> None:
    team = stack.team()["id"]
    first = _query(_submit(stack, {"scope": team, "access": "all"}).headers["location"])
    page = stack.client().get(f"/integrations/{stack.config.slug}/new", params={"scope": team})
    assert "already installed" in page.text
    second = _query(_submit(stack, {"scope": team}).headers["location"])
    assert second["configurationId"] == first["configurationId"]
    assert second["code"] != first["code"]
    live = [c for c in stack.state()["configurations"] if c["deletedAt"] is None]
    assert len(live) == 1
    assert stack.exchange(second["code"]).status_code == 200


def test_marketplace_flow_on_an_installed_scope_goes_to_the_configuration(stack: Stack) -> None:
    team = stack.team()["id"]
    first = _query(_submit(stack, {"scope": team, "access": "all"}).headers["location"])
    listing = stack.client().get(f"/integrations/{stack.config.slug}")
    assert "source=marketplace" in listing.text
    again = stack.client().get(
        f"/integrations/{stack.config.slug}/new", params={"scope": team, "source": "marketplace"}
    )
    assert again.status_code == 302
    assert again.headers["location"].endswith(first["configurationId"])


def test_selecting_no_project_is_refused_on_the_page(stack: Stack) -> None:
    response = _submit(stack, {"scope": stack.team()["id"], "access": "selected"})
    assert response.status_code == 400
    assert 'role="alert"' in response.text
    assert stack.state()["configurations"] == []


def test_next_completes_the_install_and_shows_the_configuration(stack: Stack) -> None:
    team = stack.team()
    query = _query(_submit(stack, {"scope": team["id"], "access": "all"}).headers["location"])
    token = stack.exchange(query["code"]).json()["access_token"]
    api = stack.client(headers={"Authorization": f"Bearer {token}"}, params={"teamId": team["id"]})
    url = f"/v1/integrations/configuration/{query['configurationId']}"
    assert "completedAt" not in api.get(url).json()
    page = stack.client().get(query["next"])
    assert page.status_code == 200
    assert query["configurationId"] in page.text
    assert team["name"] in page.text
    assert isinstance(api.get(url).json()["completedAt"], int)


def test_dashboard_page_changes_access_and_removes(stack: Stack) -> None:
    team = stack.team()
    query = _query(_submit(stack, {"scope": team["id"], "access": "all"}).headers["location"])
    base = urlsplit(query["next"]).path.removesuffix("/installed")
    one = stack.projects_of(team["id"])[0]["id"]
    saved = stack.client().post(f"{base}/access", data={"access": "selected", "projects": [one]})
    assert saved.status_code == 303
    cfg = stack.state()["configurations"][0]
    assert (cfg["projectSelection"], cfg["projects"]) == ("selected", [one])
    assert stack.client().post(f"{base}/disable").status_code == 303
    assert stack.state()["configurations"][0]["disabledAt"] is not None
    assert stack.client().post(f"{base}/remove").status_code == 303
    assert stack.state()["configurations"][0]["deletedAt"] is not None
    assert stack.client().get(base).status_code == 404
    stack.emulator.drain(5)
    types = [d["type"] for d in stack.emulator.deliveries()]
    assert "integration-configuration.permission-upgraded" in types
    assert "integration-configuration.removed" in types


def test_unknown_slug_is_not_found(stack: Stack) -> None:
    assert stack.client().get("/integrations/nope/new").status_code == 404


def test_home_page_links_the_install_page(stack: Stack) -> None:
    home = stack.client().get("/")
    assert home.status_code == 200
    assert f"/integrations/{stack.config.slug}/new" in home.text
