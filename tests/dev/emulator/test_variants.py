"""The variants that encode how Vercel really behaves (issue 12, vercel-reality.md).

One test per behaviour and switch: each proves the emulator produces the variant when
asked for and keeps the default otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.dev.emulator.support import Installation, Stack

PERMISSION = {"code": "forbidden", "message": "You don't have permission to access this resource."}
TEAM_READ = "read:team"


def _configure(stack: Stack, **changes: Any) -> dict[str, Any]:
    return dict(stack.control("PATCH", "/config", json=changes))


def _team_install(stack: Stack, *, team_scope: bool = False) -> tuple[Installation, httpx.Client]:
    if team_scope:
        _configure(stack, scopes=[*stack.config.scopes, TEAM_READ])
    installation = stack.install(stack.team()["slug"])
    return installation, stack.api(installation)


def _policy(stack: Stack, value: str) -> dict[str, Any]:
    return dict(
        stack.control("PATCH", "/teams/acme", json={"sensitiveEnvironmentVariablePolicy": value})
    )


def _create(api: httpx.Client, body: Any, project: str = "web") -> httpx.Response:
    return api.post(f"/v10/projects/{project}/env", json=body)


# -- 1. teams that enforce sensitive environment variables


def test_team_policy_is_set_through_the_control_api_and_shown(stack: Stack) -> None:
    assert stack.team()["sensitiveEnvironmentVariablePolicy"] == "default"
    changed = _policy(stack, "on")
    assert changed["team"]["sensitiveEnvironmentVariablePolicy"] == "on"
    assert stack.team()["sensitiveEnvironmentVariablePolicy"] == "on"
    by_id = stack.control(
        "PATCH", f"/teams/{stack.team()['id']}", json={"sensitiveEnvironmentVariablePolicy": "off"}
    )
    assert by_id["team"]["sensitiveEnvironmentVariablePolicy"] == "off"
    bad = stack.client().patch(
        "/_emulator/teams/acme", json={"sensitiveEnvironmentVariablePolicy": "always"}
    )
    assert bad.status_code == 400
    personal = stack.client().patch(
        "/_emulator/teams/dev-user", json={"sensitiveEnvironmentVariablePolicy": "on"}
    )
    assert personal.status_code == 400


def test_get_team_needs_the_team_read_scope(stack: Stack) -> None:
    _policy(stack, "on")
    installation, api = _team_install(stack, team_scope=True)
    answer = api.get(f"/v2/teams/{installation.team_id}")
    assert answer.status_code == 200
    team = answer.json()
    assert team["id"] == installation.team_id
    assert team["slug"] == "acme"
    assert team["sensitiveEnvironmentVariablePolicy"] == "on"
    # The SDK sends the team in the path only: that alone sets the scope.
    bare = stack.client(headers={"Authorization": f"Bearer {installation.token}"})
    assert bare.get(f"/v2/teams/{installation.team_id}").status_code == 200
    assert bare.get("/v2/teams/acme").json()["id"] == installation.team_id
    stack.control(
        "POST",
        f"/configurations/{installation.configuration_id}/scopes/remove",
        json={"scopes": [TEAM_READ]},
    )
    refused = api.get(f"/v2/teams/{installation.team_id}")
    assert refused.status_code == 403
    assert refused.json()["error"] == PERMISSION


def test_get_team_of_another_scope_is_the_scope_error(stack: Stack) -> None:
    _configure(stack, scopes=[*stack.config.scopes, TEAM_READ])
    personal = stack.install(stack.user()["id"])
    api = stack.client(headers={"Authorization": f"Bearer {personal.token}"})
    answer = api.get(f"/v2/teams/{stack.team()['id']}")
    assert answer.status_code == 403
    assert answer.json()["error"]["message"].startswith("Not authorized: Trying to access")
    assert api.get("/v2/teams/team_nope").status_code in (403, 404)


def test_policy_on_promotes_production_and_preview_on_create(stack: Stack) -> None:
    _, api = _team_install(stack)
    _policy(stack, "on")
    body = [
        {"key": "PLAIN", "value": "p", "type": "plain", "target": ["production", "preview"]},
        {"key": "ENC", "value": "e", "type": "encrypted", "target": ["preview"]},
        {"key": "SENS", "value": "s", "type": "sensitive", "target": ["production"]},
    ]
    answer = _create(api, body)
    assert answer.status_code == 201, answer.text
    assert [e["type"] for e in answer.json()["created"]] == ["sensitive"] * 3
    listed = {e["key"]: e for e in api.get("/v10/projects/web/env").json()["envs"]}
    assert {k: e["type"] for k, e in listed.items()} == dict.fromkeys(listed, "sensitive")
    assert "value" not in api.get(f"/v1/projects/web/env/{listed['PLAIN']['id']}").json()


@pytest.mark.parametrize("policy", ["default", "off"])
def test_policy_other_than_on_keeps_the_type(stack: Stack, policy: str) -> None:
    _, api = _team_install(stack)
    _policy(stack, policy)
    body = {"key": "PLAIN", "value": "p", "type": "plain", "target": ["production"]}
    assert _create(api, body).json()["created"]["type"] == "plain"


def test_policy_on_promotes_on_edit(stack: Stack) -> None:
    _, api = _team_install(stack)
    body = {"key": "ENC", "value": "e", "type": "encrypted", "target": ["production"]}
    env = _create(api, body).json()["created"]
    assert env["type"] == "encrypted"
    _policy(stack, "on")
    edited = api.patch(f"/v9/projects/web/env/{env['id']}", json={"value": "e2"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["type"] == "sensitive"
    # Promotion is no licence to go back.
    back = api.patch(f"/v9/projects/web/env/{env['id']}", json={"type": "encrypted"})
    assert back.status_code == 400


def test_mixed_targets_are_rejected_by_default(stack: Stack) -> None:
    _, api = _team_install(stack)
    _policy(stack, "on")
    mixed = {"key": "ALL", "value": "a", "type": "plain", "target": ["production", "development"]}
    answer = _create(api, mixed)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad_request"
    dev_only = {"key": "DEV", "value": "d", "type": "plain", "target": ["development"]}
    assert _create(api, dev_only).json()["created"]["type"] == "plain"


def test_mixed_targets_split_variant(stack: Stack) -> None:
    _, api = _team_install(stack)
    _policy(stack, "on")
    _configure(stack, sensitive_mixed_targets="split")
    mixed = {
        "key": "ALL",
        "value": "a",
        "type": "plain",
        "target": list(("production", "preview", "development")),
    }
    single = _create(api, mixed).json()["created"]
    assert (single["type"], single["target"]) == ("sensitive", ["production", "preview"])
    listed = api.get("/v10/projects/web/env").json()["envs"]
    assert sorted((e["type"], tuple(e["target"])) for e in listed) == [
        ("encrypted", ("development",)),
        ("sensitive", ("production", "preview")),
    ]
    again = {**mixed, "key": "TWICE"}
    created = _create(api, [again]).json()["created"]
    assert [(e["type"], e["target"]) for e in created] == [
        ("sensitive", ["production", "preview"]),
        ("encrypted", ["development"]),
    ]


def test_split_item_is_all_or_nothing(stack: Stack) -> None:
    _, api = _team_install(stack)
    stack.control(
        "POST",
        "/projects/web/env",
        json={"key": "ALL", "value": "u", "target": ["development"], "owner": "acme"},
    )
    _policy(stack, "on")
    _configure(stack, sensitive_mixed_targets="split")
    mixed = {"key": "ALL", "value": "a", "type": "plain", "target": ["production", "development"]}
    answer = _create(api, mixed)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ENV_CONFLICT"
    batch = _create(api, [mixed]).json()
    assert (batch["created"], len(batch["failed"])) == ([], 1)
    web = next(p for p in stack.state()["projects"] if p["name"] == "web" and p["env"])
    assert [(e["type"], e["target"]) for e in web["env"]] == [("encrypted", ["development"])]


def test_mixed_targets_promote_all_variant(stack: Stack) -> None:
    _, api = _team_install(stack)
    _policy(stack, "on")
    _configure(stack, sensitive_mixed_targets="promote_all")
    mixed = {"key": "ALL", "value": "a", "type": "plain", "target": ["production", "development"]}
    created = _create(api, mixed).json()["created"]
    assert (created["type"], created["target"]) == ("sensitive", ["production", "development"])
    # A client still may not ask for that itself.
    own = {**mixed, "key": "MINE", "type": "sensitive"}
    assert _create(api, own).status_code == 400


def test_mixed_targets_keep_variant(stack: Stack) -> None:
    _, api = _team_install(stack)
    _policy(stack, "on")
    _configure(stack, sensitive_mixed_targets="keep")
    mixed = {"key": "ALL", "value": "a", "type": "plain", "target": ["production", "development"]}
    assert _create(api, mixed).json()["created"]["type"] == "plain"


# -- 2, 4. the install redirect


def _redirect(stack: Stack) -> dict[str, list[str]]:
    minted = stack.control("POST", "/oauth/code", json={"scope": "acme"})
    return parse_qs(urlsplit(minted["redirectUrl"]).query)


def test_redirect_carries_team_and_configuration_by_default(stack: Stack) -> None:
    query = _redirect(stack)
    assert query["teamId"] == [stack.team()["id"]]
    assert query["configurationId"][0].startswith("icfg_")
    assert query["next"][0].startswith(stack.url + "/acme/~/integrations/")


def test_redirect_without_team_id_variant(stack: Stack) -> None:
    _configure(stack, callback_omit_team_id=True)
    query = _redirect(stack)
    assert "teamId" not in query
    assert "configurationId" in query
    code = query["code"][0]
    token = stack.exchange(code).json()
    assert token["team_id"] == stack.team()["id"]  # the token still knows its team


def test_redirect_without_configuration_id_variant(stack: Stack) -> None:
    _configure(stack, callback_omit_configuration_id=True)
    query = _redirect(stack)
    assert "configurationId" not in query
    token = stack.exchange(query["code"][0]).json()
    assert token["installation_id"].startswith("icfg_")


def test_next_on_www_vercel_com_variant(stack: Stack) -> None:
    _configure(stack, next_origin="https://www.vercel.com/")
    (next_url,) = _redirect(stack)["next"]
    parts = urlsplit(next_url)
    assert (parts.scheme, parts.netloc) == ("https", "www.vercel.com")
    assert parts.path.startswith("/acme/~/integrations/my-integration/icfg_")
    assert (
        stack.client().patch("/_emulator/config", json={"next_origin": "ftp://x"}).status_code
        == 400
    )


# -- 5. all-fail batch creates and conflict codes


def _all_fail(api: httpx.Client) -> httpx.Response:
    first = {"key": "DUP", "value": "1", "type": "encrypted", "target": ["production"]}
    assert _create(api, first).status_code == 201
    return _create(
        api,
        [
            {**first, "value": "2"},
            {"key": "BAD", "value": "x", "type": "sensitive", "target": ["development"]},
        ],
    )


def test_all_fail_batch_is_201_by_default(stack: Stack) -> None:
    _, api = _team_install(stack)
    answer = _all_fail(api)
    assert answer.status_code == 201
    assert answer.json()["created"] == []
    assert [f["error"]["code"] for f in answer.json()["failed"]] == ["ENV_CONFLICT", "bad_request"]


def test_all_fail_batch_error_variant(stack: Stack) -> None:
    _, api = _team_install(stack)
    _configure(stack, env_all_failed="error")
    answer = _all_fail(api)
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"error", "failed"}
    assert body["error"]["code"] == "ENV_CONFLICT"
    assert body["error"]["key"] == "DUP"
    assert [f["error"]["code"] for f in body["failed"]] == ["ENV_CONFLICT", "bad_request"]
    # A batch with one success is still 201 with failed[].
    mixed = _create(
        api,
        [
            {"key": "DUP", "value": "3", "type": "encrypted", "target": ["production"]},
            {"key": "NEW", "value": "n", "type": "encrypted", "target": ["production"]},
        ],
    )
    assert mixed.status_code == 201
    assert len(mixed.json()["failed"]) == 1


def test_existing_key_and_target_conflict_code(stack: Stack) -> None:
    _, api = _team_install(stack)
    _configure(stack, env_conflict_code="EXISTING_KEY_AND_TARGET")
    body = {"key": "DUP", "value": "1", "type": "encrypted", "target": ["production"]}
    assert _create(api, body).status_code == 201
    answer = _create(api, body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "EXISTING_KEY_AND_TARGET"
    assert (
        stack.client().patch("/_emulator/config", json={"env_conflict_code": "X"}).status_code
        == 400
    )


# -- 6. missing permission, as Vercel words it


@pytest.mark.parametrize(
    ("scope", "path"),
    [
        ("read-write:project-env-vars", "/v10/projects/web/env"),
        ("read:project", "/v10/projects"),
        ("read:integration-configuration", "/v1/integrations/configurations?view=account"),
    ],
)
def test_missing_permission_names_no_scope(stack: Stack, scope: str, path: str) -> None:
    installation, api = _team_install(stack)
    stack.control(
        "POST",
        f"/configurations/{installation.configuration_id}/scopes/remove",
        json={"scopes": [scope]},
    )
    answer = api.get(path)
    assert answer.status_code == 403
    assert answer.json()["error"] == PERMISSION
    _configure(stack, permission_error_style="descriptive")
    assert "missing the scope" in api.get(path).json()["error"]["message"]


# -- 8. continuation tokens, sensitive PATCH without key


def _walk(api: httpx.Client) -> tuple[list[str], list[Any]]:
    names: list[str] = []
    cursors: list[Any] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        body = api.get("/v10/projects", params=params).json()
        names += [p["name"] for p in body["projects"]]
        cursor = body["pagination"]["next"]
        if cursor is None:
            return names, cursors
        cursors.append(cursor)
        params = {"limit": 2, "from": cursor}


def test_token_paging_variant_walks_the_same_projects(stack: Stack) -> None:
    _, api = _team_install(stack)
    classic, numbers = _walk(api)
    _configure(stack, projects_pagination="token")
    tokens, strings = _walk(api)
    assert len(classic) == 5
    assert tokens == classic
    assert all(isinstance(n, int) for n in numbers)
    assert strings
    assert all(isinstance(s, str) and not s.isdigit() for s in strings)
    page = api.get("/v10/projects", params={"limit": 2}).json()["pagination"]
    assert set(page) == {"count", "next"}  # the token shape has no `prev`
    garbled = api.get("/v10/projects", params={"from": "not-a-token!"})
    assert garbled.status_code == 400


def _sensitive(api: httpx.Client) -> str:
    body = {"key": "SECRET", "value": "s", "type": "sensitive", "target": ["production"]}
    return str(_create(api, body).json()["created"]["id"])


def test_sensitive_patch_with_key_is_refused(stack: Stack) -> None:
    _, api = _team_install(stack)
    env_id = _sensitive(api)
    with_key = api.patch(f"/v9/projects/web/env/{env_id}", json={"key": "SECRET", "value": "2"})
    assert with_key.status_code == 400
    assert with_key.json()["error"]["code"] == "bad_request"
    without = api.patch(f"/v9/projects/web/env/{env_id}", json={"value": "2", "type": "sensitive"})
    assert without.status_code == 200
    # Non-sensitive vars still take `key`.
    plain = {"key": "P", "value": "p", "type": "plain", "target": ["production"]}
    plain_id = _create(api, plain).json()["created"]["id"]
    assert api.patch(f"/v9/projects/web/env/{plain_id}", json={"key": "P"}).status_code == 200
    _configure(stack, sensitive_patch_key="allow")
    assert api.patch(f"/v9/projects/web/env/{env_id}", json={"key": "SECRET"}).status_code == 200


# -- 9. custom environments


def test_custom_environments_per_project(stack: Stack) -> None:
    _, api = _team_install(stack)
    made = stack.control(
        "POST", "/projects/web/custom-environments", json={"slug": "staging", "owner": "acme"}
    )["customEnvironment"]
    assert made["id"].startswith("env_")
    listed = api.get("/v9/projects/web/custom-environments").json()
    assert listed["accountLimit"]["total"] >= 1
    assert [(e["id"], e["slug"]) for e in listed["environments"]] == [(made["id"], "staging")]
    assert api.get("/v9/projects/api/custom-environments").json()["environments"] == []
    by_slug = api.get("/v9/projects/web/custom-environments/staging").json()
    assert by_slug["id"] == made["id"]
    assert api.get("/v9/projects/web/custom-environments/nope").status_code == 404
    duplicate = stack.client().post(
        "/_emulator/projects/web/custom-environments", json={"slug": "staging", "owner": "acme"}
    )
    assert duplicate.status_code == 400
    reserved = stack.client().post(
        "/_emulator/projects/web/custom-environments", json={"slug": "preview", "owner": "acme"}
    )
    assert reserved.status_code == 400

    body = {"key": "STAGE", "value": "s", "type": "encrypted", "customEnvironmentIds": [made["id"]]}
    created = _create(api, body).json()["created"]
    assert created["customEnvironmentIds"] == [made["id"]]
    assert created["target"] == []
    only = api.get("/v10/projects/web/env", params={"customEnvironmentId": made["id"]}).json()
    assert [e["key"] for e in only["envs"]] == ["STAGE"]
    elsewhere = _create(api, body, project="api")
    assert elsewhere.status_code == 400  # that id is web's, not api's


def test_custom_environments_need_the_project_read_scope(stack: Stack) -> None:
    installation, api = _team_install(stack)
    stack.control(
        "POST",
        f"/configurations/{installation.configuration_id}/scopes/remove",
        json={"scopes": ["read:project"]},
    )
    answer = api.get("/v9/projects/web/custom-environments")
    assert answer.status_code == 403
    assert answer.json()["error"] == PERMISSION


# -- 10. client-secret rotation


def _signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def test_webhooks_signed_with_the_previous_secret_during_a_rotation(stack: Stack) -> None:
    stack.install("acme")
    old = stack.config.client_secret
    new = "rotated-secret-for-tests"
    _configure(stack, client_secret=new, previous_client_secret=old, webhook_signer="previous")
    stack.control("POST", "/projects?sync=1", json={"owner": "acme", "name": "one"})
    _configure(stack, webhook_signer="current")
    stack.control("POST", "/projects?sync=1", json={"owner": "acme", "name": "two"})
    first, second = stack.receiver.wait_webhooks(2)
    assert first.headers["x-vercel-signature"] == _signature(old, first.body)
    assert second.headers["x-vercel-signature"] == _signature(new, second.body)
    assert "rotated-secret" not in stack.client().get("/_emulator/config").text


def test_previous_signer_needs_a_previous_secret(stack: Stack) -> None:
    answer = stack.client().patch("/_emulator/config", json={"webhook_signer": "previous"})
    assert answer.status_code == 400


def test_code_exchange_accepts_both_secrets_during_a_rotation(stack: Stack) -> None:
    old = stack.config.client_secret
    _configure(stack, client_secret="rotated-secret-for-tests", previous_client_secret=old)
    for secret in (old, "rotated-secret-for-tests"):
        code = stack.control("POST", "/oauth/code", json={"scope": "acme"})["code"]
        answer = stack.exchange(code, client_secret=secret, redirect_uri=stack.config.redirect_uri)
        assert answer.status_code == 200, answer.text
    code = stack.control("POST", "/oauth/code", json={"scope": "acme"})["code"]
    assert stack.exchange(code, client_secret="neither").status_code == 400


# -- fields Vercel's SDK requires


def test_sdk_required_fields(stack: Stack) -> None:
    _, api = _team_install(stack)
    project = api.get("/v9/projects/web").json()
    assert project["deploymentExpiration"]["expirationDays"] > 0
    listed = api.get("/v10/projects").json()["projects"]
    assert all("deploymentExpiration" in p for p in listed)
    body = {"key": "K", "value": "v", "type": "encrypted", "target": ["production"]}
    created = _create(api, body).json()["created"]
    assert created["securityIssues"] == []
    assert created["customEnvironmentIds"] == []
    (env,) = api.get("/v10/projects/web/env").json()["envs"]
    assert env["securityIssues"] == []
