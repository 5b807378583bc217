"""Contract: every emulator response of the covered operations matches Vercel's OpenAPI.

The reference is the vendored excerpts in dev/vercel-openapi/ (verbatim copies of the
single-operation documents Vercel's docs publish). Each scenario below records every
REST response the emulator gives (httpx response hook) and validates it afterwards:

- Validator: `openapi-schema-validator`'s `OAS30Validator` (the OpenAPI 3.0 schema dialect
  on `jsonschema`: `nullable`, 3.0 `type` rules), documents loaded with PyYAML. `$ref`s
  (`#/components/schemas/...`) are resolved within each file by inlining them.
- `oneOf` is checked as "at least one branch matches". The excerpts are Speakeasy
  unions whose branches overlap, so strict `oneOf` rejects every real answer: a
  `{envs, pagination}` list matches both the `{envs, pagination}` and the `{envs}`
  branch, removeProjectEnv's two object branches differ only by `nullable`, and
  getConfiguration's third branch has no required field at all. Speakeasy's generated
  SDK also takes the first branch that fits. Everything else is checked strictly.
- getProjectEnv and deleteConfiguration are not OpenAPI documents but the older Mintlify
  page YAML (see the excerpts' README). They are translated: `schemaArray` becomes a
  `oneOf` of its items, `requiredProperties` becomes `required`, and a `type: any`
  response means no schema — deleteConfiguration's 204 is checked to have an empty body.
- Error statuses must be among those the operation documents, except the few listed in
  `UNDOCUMENTED_ERRORS` with the reason; error bodies must have Vercel's documented
  shape `{"error": {"code", "message"}}` (the excerpts give no error schemas).
- The code exchange has no OpenAPI (README: "Not found"); tests/dev/emulator/test_oauth.py
  pins it to vercel-api.md §2 instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import pytest
from jsonschema import ValidationError, validators
from openapi_schema_validator import OAS30Validator

from dev.openapi import document, inline_refs
from tests.dev.emulator.support import Installation, Stack


@dataclass(frozen=True)
class Operation:
    file: str
    path: str
    method: str
    route: re.Pattern[str]
    verb: str


OPERATIONS = [
    Operation(
        "getProjects.yaml", "/v10/projects", "get", re.compile(r"^/v(9|10)/projects$"), "GET"
    ),
    Operation(
        "getProject.yaml",
        "/v9/projects/{idOrName}",
        "get",
        re.compile(r"^/v(9|10)/projects/[^/]+$"),
        "GET",
    ),
    Operation(
        "filterProjectEnvs.yaml",
        "/v10/projects/{idOrName}/env",
        "get",
        re.compile(r"^/v(8|9|10)/projects/[^/]+/env$"),
        "GET",
    ),
    Operation(
        "createProjectEnv.yaml",
        "/v10/projects/{idOrName}/env",
        "post",
        re.compile(r"^/v(8|9|10)/projects/[^/]+/env$"),
        "POST",
    ),
    Operation(
        "getProjectEnv.yaml",
        "/v1/projects/{idOrName}/env/{id}",
        "get",
        re.compile(r"^/v(1|10)/projects/[^/]+/env/[^/]+$"),
        "GET",
    ),
    Operation(
        "editProjectEnv.yaml",
        "/v9/projects/{idOrName}/env/{id}",
        "patch",
        re.compile(r"^/v(9|10)/projects/[^/]+/env/[^/]+$"),
        "PATCH",
    ),
    Operation(
        "removeProjectEnv.yaml",
        "/v9/projects/{idOrName}/env/{id}",
        "delete",
        re.compile(r"^/v(8|9|10)/projects/[^/]+/env/[^/]+$"),
        "DELETE",
    ),
    Operation(
        "batchRemoveProjectEnv.yaml",
        "/v1/projects/{idOrName}/env",
        "delete",
        re.compile(r"^/v1/projects/[^/]+/env$"),
        "DELETE",
    ),
    Operation(
        "getConfiguration.yaml",
        "/v1/integrations/configuration/{id}",
        "get",
        re.compile(r"^/v1/integrations/configuration/[^/]+$"),
        "GET",
    ),
    Operation(
        "deleteConfiguration.yaml",
        "/v1/integrations/configuration/{id}",
        "delete",
        re.compile(r"^/v1/integrations/configuration/[^/]+$"),
        "DELETE",
    ),
    Operation(
        "getConfigurations.yaml",
        "/v1/integrations/configurations",
        "get",
        re.compile(r"^/v1/integrations/configurations$"),
        "GET",
    ),
    Operation("getTeam.yaml", "/v2/teams/{teamId}", "get", re.compile(r"^/v2/teams/[^/]+$"), "GET"),
    Operation(
        "getTeamMembers.yaml",
        "/v3/teams/{teamId}/members",
        "get",
        re.compile(r"^/v[23]/teams/[^/]+/members$"),
        "GET",
    ),
    Operation(
        "getProjectsByIdOrNameCustomEnvironments.yaml",
        "/v9/projects/{idOrName}/custom-environments",
        "get",
        re.compile(r"^/v9/projects/[^/]+/custom-environments$"),
        "GET",
    ),
]

# Error statuses the emulator gives that an excerpt does not list, and why.
UNDOCUMENTED_ERRORS: dict[str, set[int]] = {
    # Unknown project / env id: the CLI treats 404 `not_found` as "project not found"
    # (vercel-api.md §6); these excerpts list no 404 although the API answers one.
    "getProject.yaml": {404},
    "filterProjectEnvs.yaml": {404},
    "getProjectEnv.yaml": {404},
    "getProjectsByIdOrNameCustomEnvironments.yaml": {404},
}

ERROR_SHAPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _any_branch(
    validator: Any, branches: list[Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    """`oneOf` as "at least one branch": see the module docstring for why."""
    errors: list[ValidationError] = []
    for index, branch in enumerate(branches):
        found = list(validator.descend(instance, branch, schema_path=index))
        if not found:
            return
        errors.extend(found)
    yield ValidationError(
        f"{instance!r:.200} is not valid under any of the given schemas", context=errors
    )


ContractValidator = validators.extend(OAS30Validator, {"oneOf": _any_branch})


def _from_mintlify(node: Any) -> Any:
    """Mintlify's page YAML to a JSON schema: `schemaArray` → `oneOf`, and so on."""
    if isinstance(node, list):
        return [_from_mintlify(v) for v in node]
    if not isinstance(node, dict):
        return node
    if "schemaArray" in node:
        branches = [_from_mintlify(s) for s in node["schemaArray"]]
        return branches[0] if len(branches) == 1 else {"oneOf": branches}
    out = {}
    for key, value in node.items():
        if key == "requiredProperties":
            out["required"] = value
        elif key == "type" and value == "any":
            continue
        elif key not in ("examples", "_mintlify/placeholder"):
            out[key] = _from_mintlify(value)
    return out


@cache
def response_spec(op: Operation) -> dict[str, Any]:
    """Status (as a string) → schema, or None where the operation defines no body."""
    root = document(op.file)
    if "openapi" in root:
        responses = root["paths"][op.path][op.method]["responses"]
        out: dict[str, Any] = {}
        for status, response in responses.items():
            content = (response.get("content") or {}).get("application/json")
            out[status] = inline_refs(content["schema"], root) if content else None
        return out
    page = root["paths"]  # Mintlify: paths is the page itself
    assert (page["path"], page["method"]) == (op.path, op.method)
    out = {}
    for status, response in page["response"].items():
        content = response.get("application/json")
        out[status] = _from_mintlify(content) if content else None
    return out


def operation_of(method: str, path: str) -> Operation | None:
    return next((op for op in OPERATIONS if op.verb == method and op.route.match(path)), None)


@dataclass
class Recorded:
    method: str
    path: str
    status: int
    body: bytes


def check(recorded: Recorded) -> Operation | None:
    """Validate one response; the operation it belongs to (None: not covered)."""
    op = operation_of(recorded.method, recorded.path)
    if op is None:
        return None
    spec = response_spec(op)
    where = f"{recorded.method} {recorded.path} → {recorded.status}"
    if recorded.status >= 400:
        allowed = {int(s) for s in spec} | UNDOCUMENTED_ERRORS.get(op.file, set())
        assert recorded.status in allowed, f"{where}: status not documented for {op.file}"
        OAS30Validator(ERROR_SHAPE).validate(httpx.Response(200, content=recorded.body).json())
        return op
    assert str(recorded.status) in spec, f"{where}: success status not in {sorted(spec)}"
    schema = spec[str(recorded.status)]
    if schema is None or schema == {}:
        assert recorded.body == b"", f"{where}: expected no body"
        return op
    instance = httpx.Response(200, content=recorded.body).json()
    _validator(op, str(recorded.status)).validate(instance)
    return op


@cache
def _validator(op: Operation, status: str) -> Any:
    return ContractValidator(response_spec(op)[status])


class Recorder:
    def __init__(self) -> None:
        self.responses: list[Recorded] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        self.responses.append(
            Recorded(request.method, request.url.path, response.status_code, response.content)
        )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _api(stack: Stack, installation: Installation, recorder: Recorder) -> httpx.Client:
    client = stack.api(installation)
    client.event_hooks["response"].append(recorder)
    return client


def _validate_all(recorder: Recorder) -> set[str]:
    covered = set()
    for recorded in recorder.responses:
        op = check(recorded)
        if op is not None:
            covered.add(f"{op.file}:{recorded.status}")
    return covered


def _env(key: str, target: list[str], type_: str = "encrypted", **extra: Any) -> dict[str, Any]:
    return {"key": key, "value": f"v-{key}", "type": type_, "target": target, **extra}


def test_every_response_of_a_full_session_matches_the_spec(
    stack: Stack, recorder: Recorder
) -> None:
    team = stack.team()["id"]
    projects = stack.projects_of(team)
    project = projects[0]["id"]
    stack.control(
        "POST", f"/projects/{project}/env", json={"key": "HIDDEN", "value": "h", "hidden": True}
    )
    installation = stack.install(team)
    api = _api(stack, installation, recorder)

    # projects: every page, by id and by name, unknown
    query: dict[str, Any] = {"limit": 2}
    while True:
        page = api.get("/v10/projects", params=query).json()
        if page["pagination"]["next"] is None:
            break
        query["until"] = page["pagination"]["next"]
    api.get("/v9/projects", params={"search": "no-such-project"})
    api.get(f"/v9/projects/{project}")
    api.get(f"/v9/projects/{projects[1]['name']}")
    api.get("/v9/projects/missing")

    # env: create one, many with failures, upsert, conflicts, rule violations
    url = f"/v10/projects/{project}/env"
    one = api.post(url, json=_env("ONE", ["production"])).json()["created"]
    many = api.post(
        url,
        json=[
            _env("PLAIN", ["preview"], "plain", comment="a comment"),
            _env("SENS", ["production", "preview"], "sensitive"),
            _env("BRANCHED", ["preview"], gitBranch="feature-x"),
            _env("SYS", ["production"], "system"),
            _env("ONE", ["production"]),
            _env("HIDDEN", ["production"]),
        ],
    ).json()["created"]
    api.post(url, params={"upsert": "true"}, json=_env("ONE", ["production"]))
    api.post(url, params={"upsert": "true"}, json=_env("ONE", ["production", "preview"]))
    api.post(url, json=_env("ONE", ["production"]))
    api.post(url, json=_env("BAD", ["development"], "sensitive"))
    api.post(url, json={"key": "NO_TYPE", "value": "x", "target": ["preview"]})

    # env: list in each shape, read each type decrypted, edit, delete, batch delete
    api.get(url)
    api.get(f"/v8/projects/{project}/env", params={"limit": 2})
    api.get(url, params={"target": "preview", "gitBranch": "feature-x"})
    for env in [one, *many]:
        api.get(f"/v1/projects/{project}/env/{env['id']}")
    api.get(f"/v1/projects/{project}/env/missing")
    api.patch(f"/v9/projects/{project}/env/{one['id']}", json={"value": "new", "comment": "c"})
    api.patch(f"/v9/projects/{project}/env/{one['id']}", json={"type": "sensitive"})
    api.patch(f"/v9/projects/{project}/env/missing", json={"value": "x"})
    api.delete(f"/v9/projects/{project}/env/{many[0]['id']}")
    api.delete(f"/v9/projects/{project}/env/{many[0]['id']}")
    api.request("DELETE", f"/v1/projects/{project}/env", json={"ids": [many[1]["id"]]})
    api.request("DELETE", f"/v1/projects/{project}/env", json={"ids": []})
    api.get(f"/v10/projects/{projects[1]['id']}/env")

    # configurations: get, list both views, an unknown id, delete
    stack.client().get(stack.control("POST", "/oauth/code", json={"scope": team})["next"])
    api.get(f"/v1/integrations/configuration/{installation.configuration_id}")
    api.get("/v1/integrations/configuration/icfg_unknown")
    api.get("/v1/integrations/configurations", params={"view": "account"})
    api.get("/v1/integrations/configurations", params={"view": "project"})
    api.get("/v1/integrations/configurations")
    stack.grant_configuration_write(installation)  # the default grant only reads
    api.delete(f"/v1/integrations/configuration/{installation.configuration_id}")
    api.get("/v10/projects")  # the deleted configuration's token

    covered = _validate_all(recorder)
    assert {
        "getProjects.yaml:200",
        "getProject.yaml:200",
        "getProject.yaml:404",
        "filterProjectEnvs.yaml:200",
        "createProjectEnv.yaml:201",
        "createProjectEnv.yaml:400",
        "getProjectEnv.yaml:200",
        "editProjectEnv.yaml:200",
        "editProjectEnv.yaml:400",
        "editProjectEnv.yaml:404",
        "removeProjectEnv.yaml:200",
        "removeProjectEnv.yaml:404",
        "batchRemoveProjectEnv.yaml:200",
        "batchRemoveProjectEnv.yaml:400",
        "getConfiguration.yaml:200",
        "getConfiguration.yaml:404",
        "getConfigurations.yaml:200",
        "getConfigurations.yaml:400",
        "deleteConfiguration.yaml:204",
        "getProjects.yaml:401",
    } <= covered


def test_selected_personal_install_and_error_variants_match(
    stack: Stack, recorder: Recorder
) -> None:
    owner = stack.user()["id"]
    projects = stack.projects_of(owner)
    installation = stack.install(owner, "selected", [projects[0]["id"]])
    api = _api(stack, installation, recorder)
    api.get("/v10/projects")
    api.get(f"/v9/projects/{projects[1]['id']}")  # not granted: 403
    api.get(f"/v1/integrations/configuration/{installation.configuration_id}")
    api.get("/v10/projects", params={"teamId": stack.team()["id"]})  # wrong scope: 403
    stack.control("PATCH", "/config", json={"env_conflict_status": 403})
    url = f"/v10/projects/{projects[0]['id']}/env"
    api.post(url, json=_env("K", ["preview"]))
    api.post(url, json=_env("K", ["preview"]))
    stack.control("POST", f"/configurations/{installation.configuration_id}/disable")
    api.get("/v10/projects")
    covered = _validate_all(recorder)
    assert {"getProject.yaml:403", "createProjectEnv.yaml:403", "getProjects.yaml:403"} <= covered


def test_the_issue_12_variants_match(stack: Stack, recorder: Recorder) -> None:
    """Token paging, teams, custom environments, the sensitive policy, all-fail batches."""
    stack.control("PATCH", "/config", json={"scopes": [*stack.config.scopes, "read:team"]})
    team = stack.team()["id"]
    installation = stack.install(team)
    api = _api(stack, installation, recorder)
    stack.control(
        "PATCH",
        "/config",
        json={"projects_pagination": "token", "env_all_failed": "error"},
    )
    query: dict[str, Any] = {"limit": 2}
    while True:
        page = api.get("/v10/projects", params=query).json()
        if page["pagination"]["next"] is None:
            break
        query["from"] = page["pagination"]["next"]
    assert isinstance(query["from"], str)
    api.get("/v10/projects", params={"from": "garbled!"})
    api.get(f"/v2/teams/{team}")
    stack.control("PATCH", "/teams/acme", json={"sensitiveEnvironmentVariablePolicy": "on"})
    api.get(f"/v2/teams/{team}")
    custom = stack.control(
        "POST", "/projects/web/custom-environments", json={"slug": "staging", "owner": team}
    )["customEnvironment"]
    api.get("/v9/projects/web/custom-environments")
    api.get("/v9/projects/missing/custom-environments")
    url = "/v10/projects/web/env"
    promoted = api.post(url, json=_env("PROMOTED", ["production", "preview"], "plain")).json()
    assert promoted["created"]["type"] == "sensitive"
    api.post(url, json=_env("MIXED", ["production", "development"], "plain"))
    stack.control("PATCH", "/config", json={"sensitive_mixed_targets": "split"})
    api.post(url, json=[_env("SPLIT", ["production", "development"])])
    api.post(url, json={**_env("STAGE", []), "customEnvironmentIds": [custom["id"]]})
    api.post(
        url, json=[_env("PROMOTED", ["production"]), _env("BAD", ["development"], "sensitive")]
    )
    api.patch(f"/v9/projects/web/env/{promoted['created']['id']}", json={"key": "PROMOTED"})
    api.get(url, params={"customEnvironmentId": custom["id"]})
    stack.control(
        "POST",
        f"/configurations/{installation.configuration_id}/scopes/remove",
        json={"scopes": ["read:team"]},
    )
    api.get(f"/v2/teams/{team}")
    covered = _validate_all(recorder)
    assert {
        "getProjects.yaml:200",
        "getProjects.yaml:400",
        "getTeam.yaml:200",
        "getTeam.yaml:403",
        "getProjectsByIdOrNameCustomEnvironments.yaml:200",
        "getProjectsByIdOrNameCustomEnvironments.yaml:404",
        "createProjectEnv.yaml:201",
        "createProjectEnv.yaml:400",
        "editProjectEnv.yaml:400",
        "filterProjectEnvs.yaml:200",
    } <= covered


def test_team_members_match(stack: Stack, recorder: Recorder) -> None:
    """getTeamMembers: the list, a page, a search, and the missing-permission refusal."""
    team = stack.team()["id"]
    installation = stack.install(team)
    api = _api(stack, installation, recorder)
    stack.control("PUT", "/teams/acme/members/outsider", json={"role": "VIEWER"})
    api.get(f"/v3/teams/{team}/members")
    api.get(f"/v3/teams/{team}/members", params={"limit": 1})
    api.get(f"/v2/teams/{team}/members", params={"search": "out"})
    api.get(f"/v3/teams/{team}/members", params={"limit": "many"})
    stack.control(
        "POST",
        f"/configurations/{installation.configuration_id}/scopes/remove",
        json={"scopes": ["read:team"]},
    )
    api.get(f"/v3/teams/{team}/members")
    covered = _validate_all(recorder)
    assert {
        "getTeamMembers.yaml:200",
        "getTeamMembers.yaml:400",
        "getTeamMembers.yaml:403",
    } <= covered


def test_the_validator_is_not_vacuous() -> None:
    op = OPERATIONS[0]
    bad_project = {
        "projects": [{"id": "prj_x", "name": "x", "nodeVersion": "7.x"}],
        "pagination": {"count": 1, "next": None, "prev": None},
    }
    with pytest.raises(ValidationError):
        ContractValidator(response_spec(op)["200"]).validate(bad_project)
    decrypted = response_spec(next(o for o in OPERATIONS if o.file == "getProjectEnv.yaml"))
    with pytest.raises(ValidationError):
        ContractValidator(decrypted["200"]).validate({"key": "K", "value": 1, "type": "plain"})
    with pytest.raises(AssertionError):
        check(Recorded("DELETE", "/v1/integrations/configuration/icfg_x", 204, b"{}"))
    with pytest.raises(AssertionError):
        check(Recorded("GET", "/v1/integrations/configurations", 418, b"{}"))
