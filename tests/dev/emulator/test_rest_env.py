"""Env vars: create (partial failure), conflicts, upsert, rules, hiding values, edit, delete."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.dev.emulator.support import Installation, Stack


@pytest.fixture
def team_install(stack: Stack) -> Installation:
    return stack.install(stack.team()["id"])


@pytest.fixture
def api(stack: Stack, team_install: Installation) -> httpx.Client:
    return stack.api(team_install)


@pytest.fixture
def project(stack: Stack) -> str:
    return str(stack.projects_of(stack.team()["id"])[0]["id"])


def _var(key: str, target: list[str], type_: str = "encrypted", **extra: Any) -> dict[str, Any]:
    return {"key": key, "value": f"value-of-{key}", "type": type_, "target": target, **extra}


def _state_env(stack: Stack, project: str) -> list[dict[str, Any]]:
    return next(p for p in stack.state()["projects"] if p["id"] == project)["env"]


def test_create_one_answers_201_with_an_object(
    stack: Stack, api: httpx.Client, project: str, team_install: Installation
) -> None:
    response = api.post(f"/v10/projects/{project}/env", json=_var("API_KEY", ["production"]))
    assert response.status_code == 201
    body = response.json()
    assert body["failed"] == []
    created = body["created"]
    assert isinstance(created, dict)
    assert created["key"] == "API_KEY"
    assert created["configurationId"] == team_install.configuration_id
    assert created["value"] != "value-of-API_KEY"  # encrypted: never the value
    assert created["decrypted"] is False


def test_create_many_with_partial_failure(api: httpx.Client, project: str) -> None:
    body = [
        _var("A", ["production", "preview"]),
        _var("B", ["development"], "plain"),
        _var("A", ["preview"]),  # overlaps the first item
        _var("S", ["development"], "sensitive"),  # sensitive is refused for development
    ]
    response = api.post(f"/v10/projects/{project}/env", json=body)
    assert response.status_code == 201
    result = response.json()
    assert [c["key"] for c in result["created"]] == ["A", "B"]
    errors = [f["error"] for f in result["failed"]]
    assert [e["code"] for e in errors] == ["ENV_CONFLICT", "bad_request"]
    assert errors[0]["key"] == errors[0]["envVarKey"] == "A"
    assert errors[0]["target"] == ["preview"]
    assert "gitBranch" not in errors[0]  # absent, not null: the spec types it string


@pytest.mark.parametrize(
    ("status", "code"), [(400, "ENV_CONFLICT"), (403, "ENV_CONFLICT"), (403, "ENV_ALREADY_EXISTS")]
)
def test_duplicate_single_create_is_a_conflict_with_the_configured_status(
    stack: Stack, api: httpx.Client, project: str, status: int, code: str
) -> None:
    stack.control(
        "PATCH", "/config", json={"env_conflict_status": status, "env_conflict_code": code}
    )
    url = f"/v10/projects/{project}/env"
    assert api.post(url, json=_var("DUP", ["production", "preview"])).status_code == 201
    response = api.post(url, json=_var("DUP", ["production"]))
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["key"] == "DUP"
    assert error["target"] == ["production"]
    if code == "ENV_CONFLICT":
        assert error["message"] == (
            "A variable with the name `DUP` already exists for the target production "
            "on branch undefined"
        )


def test_same_key_on_other_target_or_branch_is_not_a_conflict(
    api: httpx.Client, project: str
) -> None:
    url = f"/v10/projects/{project}/env"
    assert api.post(url, json=_var("K", ["production"])).status_code == 201
    assert api.post(url, json=_var("K", ["preview"])).status_code == 201
    assert api.post(url, json=_var("K", ["preview"], gitBranch="feature-1")).status_code == 201
    assert api.post(url, json=_var("K", ["preview"], gitBranch="feature-1")).status_code == 400


def test_upsert_with_the_exact_target_set_updates_in_place(
    stack: Stack, api: httpx.Client, project: str
) -> None:
    url = f"/v10/projects/{project}/env"
    first = api.post(url, json=_var("U", ["preview", "production"])).json()["created"]
    again = api.post(
        url,
        params={"upsert": "true"},
        json={"key": "U", "value": "new", "type": "encrypted", "target": ["production", "preview"]},
    )
    assert again.status_code == 201
    updated = again.json()["created"]
    assert updated["id"] == first["id"]
    assert updated["updatedAt"] > first["updatedAt"]
    assert [e["value"] for e in _state_env(stack, project) if e["key"] == "U"] == ["new"]


def test_upsert_with_a_different_target_set_is_400_env_conflict(
    stack: Stack, api: httpx.Client, project: str
) -> None:
    stack.control("PATCH", "/config", json={"env_conflict_status": 403})
    url = f"/v10/projects/{project}/env"
    api.post(url, json=_var("U", ["preview", "production"]))
    response = api.post(
        url, params={"upsert": "true"}, json=_var("U", ["production", "preview", "development"])
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ENV_CONFLICT"
    one_by_one = api.post(url, params={"upsert": "true"}, json=_var("U", ["development"]))
    assert (
        one_by_one.status_code == 201
    )  # no overlap: created, as Sentry's per-target fix relies on


def test_v9_ignores_upsert(api: httpx.Client, project: str) -> None:
    api.post(f"/v10/projects/{project}/env", json=_var("V", ["production"]))
    response = api.post(
        f"/v9/projects/{project}/env", params={"upsert": "true"}, json=_var("V", ["production"])
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ENV_CONFLICT"


def test_sensitive_is_refused_for_development(api: httpx.Client, project: str) -> None:
    response = api.post(
        f"/v10/projects/{project}/env", json=_var("S", ["production", "development"], "sensitive")
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    ok = api.post(f"/v10/projects/{project}/env", json=_var("S", ["production"], "sensitive"))
    assert ok.status_code == 201


def test_git_branch_needs_preview_only(api: httpx.Client, project: str) -> None:
    url = f"/v10/projects/{project}/env"
    bad = api.post(url, json=_var("G", ["production", "preview"], gitBranch="main"))
    assert bad.status_code == 400
    assert api.post(url, json=_var("G", ["preview"], gitBranch="main")).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"key": "K", "value": "v", "type": "plain"},  # neither target nor customEnvironmentIds
        {"key": "K", "value": "v", "target": ["preview"]},  # no type
        {"key": "K", "value": "v", "type": "bogus", "target": ["preview"]},
        {"key": "K", "value": "v", "type": "plain", "target": ["staging"]},
        {"key": "1BAD", "value": "v", "type": "plain", "target": ["preview"]},
        {"key": "K", "value": 5, "type": "plain", "target": ["preview"]},
        {"key": "K", "value": "v", "type": "secret", "target": ["preview"]},
    ],
)
def test_invalid_bodies_are_bad_request(api: httpx.Client, project: str, body: Any) -> None:
    response = api.post(f"/v10/projects/{project}/env", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_list_hides_encrypted_and_sensitive_values(
    stack: Stack, api: httpx.Client, project: str
) -> None:
    url = f"/v10/projects/{project}/env"
    api.post(
        url,
        json=[
            _var("PLAIN", ["preview"], "plain"),
            _var("ENC", ["preview"], "encrypted"),
            _var("SENS", ["preview"], "sensitive"),
        ],
    )
    envs = {e["key"]: e for e in api.get(url).json()["envs"]}
    assert envs["PLAIN"]["value"] == "value-of-PLAIN"
    for key in ("ENC", "SENS"):
        assert envs[key]["value"] != f"value-of-{key}"
        assert envs[key]["decrypted"] is False
    ignored = {e["key"]: e for e in api.get(url, params={"decrypt": "true"}).json()["envs"]}
    assert ignored["ENC"]["value"] != "value-of-ENC"  # deprecated decrypt does nothing
    stack.control("PATCH", "/config", json={"honour_list_decrypt": True})
    honoured = {e["key"]: e for e in api.get(url, params={"decrypt": "true"}).json()["envs"]}
    assert honoured["ENC"]["value"] == "value-of-ENC"
    assert "value" not in honoured["SENS"]


def test_get_by_id_decrypts_except_sensitive(api: httpx.Client, project: str) -> None:
    url = f"/v10/projects/{project}/env"
    created = api.post(url, json=[_var("E", ["preview"]), _var("S", ["preview"], "sensitive")])
    enc, sens = created.json()["created"]
    got = api.get(f"/v1/projects/{project}/env/{enc['id']}").json()
    assert got["value"] == "value-of-E"
    assert got["decrypted"] is True
    hidden = api.get(f"/v1/projects/{project}/env/{sens['id']}").json()
    assert "value" not in hidden
    assert hidden["decrypted"] is False
    assert api.get(f"/v1/projects/{project}/env/nope").status_code == 404


def test_user_vars_are_invisible_with_project_env_vars_but_still_conflict(
    stack: Stack, api: httpx.Client, project: str
) -> None:
    stack.control(
        "POST", f"/projects/{project}/env", json={"key": "DATABASE_URL", "value": "pg://"}
    )
    url = f"/v10/projects/{project}/env"
    assert api.get(url).json()["envs"] == []
    conflict = api.post(url, json=_var("DATABASE_URL", ["production"]))
    assert conflict.status_code == 400
    upsert = api.post(url, params={"upsert": "true"}, json=_var("DATABASE_URL", ["production"]))
    assert upsert.status_code == 400  # never overwrites a var the integration does not own
    user_var = _state_env(stack, project)[0]
    assert user_var["configurationId"] is None
    assert user_var["value"] == "pg://"
    assert api.delete(f"/v9/projects/{project}/env/{user_var['id']}").status_code == 403


def test_global_scope_sees_and_may_edit_user_vars(
    stack: Stack, team_install: Installation, project: str
) -> None:
    stack.control(
        "POST",
        f"/configurations/{team_install.configuration_id}/scopes/confirm",
        json={"scopes": ["read:project", "read-write:global-project-env-vars"]},
    )
    stack.control("POST", f"/projects/{project}/env", json={"key": "USER_VAR", "value": "u"})
    api = stack.api(team_install)
    envs = api.get(f"/v10/projects/{project}/env").json()["envs"]
    assert [(e["key"], e["configurationId"]) for e in envs] == [("USER_VAR", None)]
    patched = api.patch(f"/v9/projects/{project}/env/{envs[0]['id']}", json={"value": "x"})
    assert patched.status_code == 200


def test_hidden_var_is_not_listed_but_conflicts(
    stack: Stack, api: httpx.Client, project: str
) -> None:
    stack.control(
        "POST",
        f"/projects/{project}/env",
        json={"key": "HIDDEN", "value": "h", "target": ["production"], "hidden": True},
    )
    url = f"/v10/projects/{project}/env"
    listed = api.get(url).json()
    assert listed["envs"] == []
    assert listed["hiddenProductionEnvCount"] == 1
    assert api.post(url, json=_var("HIDDEN", ["production"])).status_code == 400
    upsert = api.post(url, params={"upsert": "true"}, json=_var("HIDDEN", ["production"]))
    assert upsert.status_code == 400


def test_patch_edits_value_target_and_refuses_what_vercel_refuses(
    stack: Stack, api: httpx.Client, project: str
) -> None:
    url = f"/v10/projects/{project}/env"
    env = api.post(url, json=_var("P", ["production"])).json()["created"]
    one = f"/v9/projects/{project}/env/{env['id']}"
    edited = api.patch(one, json={"value": "changed", "target": ["production", "preview"]})
    assert edited.status_code == 200
    assert edited.json()["target"] == ["production", "preview"]
    assert edited.json()["value"] != env["value"]  # new ciphertext for a new value
    assert [e["value"] for e in _state_env(stack, project)] == ["changed"]
    assert api.patch(one, json={"type": "sensitive"}).status_code == 400
    assert api.patch(one, json={"unknown": 1}).status_code == 400
    assert api.patch(one, json={"gitBranch": "main"}).status_code == 400
    other = api.post(url, json=_var("Q", ["development"])).json()["created"]
    clash = api.patch(
        f"/v10/projects/{project}/env/{other['id']}", json={"key": "P", "target": ["preview"]}
    )
    assert clash.status_code == 400
    assert clash.json()["error"]["code"] == "ENV_CONFLICT"


def test_delete_one_and_batch(stack: Stack, api: httpx.Client, project: str) -> None:
    url = f"/v10/projects/{project}/env"
    created = api.post(url, json=[_var(k, ["preview"]) for k in ("A", "B", "C")]).json()["created"]
    removed = api.delete(f"/v9/projects/{project}/env/{created[0]['id']}")
    assert removed.status_code == 200
    assert removed.json()["id"] == created[0]["id"]
    assert api.delete(f"/v9/projects/{project}/env/{created[0]['id']}").status_code == 404
    batch = api.request(
        "DELETE", f"/v1/projects/{project}/env", json={"ids": [c["id"] for c in created[1:]]}
    )
    assert batch.json() == {"deleted": 2, "ids": [c["id"] for c in created[1:]]}
    assert _state_env(stack, project) == []
    assert api.request("DELETE", f"/v1/projects/{project}/env", json={"ids": []}).status_code == 400


def test_env_list_paginates_when_asked(api: httpx.Client, project: str) -> None:
    url = f"/v10/projects/{project}/env"
    api.post(url, json=[_var(f"K{i}", ["preview"]) for i in range(5)])
    seen: list[str] = []
    query: dict[str, Any] = {"limit": 2}
    while True:
        body = api.get(f"/v8/projects/{project}/env", params=query).json()
        seen += [e["key"] for e in body["envs"]]
        if body["pagination"]["next"] is None:
            break
        query["until"] = body["pagination"]["next"]
    assert sorted(seen) == [f"K{i}" for i in range(5)]
    assert "pagination" not in api.get(url).json()


def test_list_filters_by_target_and_branch(api: httpx.Client, project: str) -> None:
    url = f"/v10/projects/{project}/env"
    api.post(
        url,
        json=[
            _var("A", ["production"]),
            _var("B", ["preview"], gitBranch="dev"),
            _var("C", ["development"]),
        ],
    )
    assert [e["key"] for e in api.get(url, params={"target": "production"}).json()["envs"]] == ["A"]
    assert [e["key"] for e in api.get(url, params={"gitBranch": "dev"}).json()["envs"]] == ["B"]


def test_invalid_json_body_is_bad_request(api: httpx.Client, project: str) -> None:
    response = api.post(
        f"/v10/projects/{project}/env",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
