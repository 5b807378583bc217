"""The env-var endpoints with the version aliases real clients use (vercel-api.md §4).

| op | routes |
|---|---|
| list | GET /v8, /v9, /v10 `/projects/{idOrName}/env` |
| create | POST /v8, /v9, /v10 `/projects/{idOrName}/env` (`upsert=true` honoured on v10 only) |
| get decrypted | GET /v1, /v10 `/projects/{idOrName}/env/{id}` |
| edit | PATCH /v9, /v10 `/projects/{idOrName}/env/{id}` |
| delete | DELETE /v8, /v9, /v10 `/projects/{idOrName}/env/{id}` |
| batch delete | DELETE /v1 `/projects/{idOrName}/env` body `{"ids": [...]}` |

Create answers 201 `{created, failed}`: `created` is an object for an object body and an
array for an array body. A failing item of an array body lands in `failed[]` (201); a
failing object body is an error status. When every item of an array body fails, the
`env_all_failed="error"` variant answers the first failure's status with
`{"error": <first failure>, "failed": [...]}` instead of 201 (vercel-reality.md D2).
Under a team's "on" sensitive policy the stored type may differ from the sent one
(envs.py); the "split" variant stores two vars for one item and lists both in
`created` (an object body then gets the production/preview one as `created`). The list is `{envs}` in one page (plus
`hiddenProductionEnvCount` when hidden vars exist), or `{envs, pagination}` when the
caller passes `limit` (Terraform pages `/v8` with `limit` + `until`) or
`env_list_page_size` is set.
"""

from __future__ import annotations

from typing import Any

from dev.emulator.auth import Caller, authenticate, require_scope, resolve_project
from dev.emulator.context import Context
from dev.emulator.envs import (
    EnvInput,
    create_env,
    parse_input,
    parse_patch,
    promote,
    render_env,
    update_env,
)
from dev.emulator.errors import ApiError, bad_request, forbidden, not_found
from dev.emulator.models import Account, EnvVar, Project
from dev.emulator.routing import Handler, Router
from dev.emulator.wsgi import Request, Response

__all__ = ["register"]

_SCOPES = ("project-env-vars", "global-project-env-vars")


def _caller(ctx: Context, req: Request, id_or_name: str, write: bool) -> tuple[Caller, Project]:
    caller = authenticate(ctx, req)
    require_scope(caller, *_SCOPES, write=write)
    return caller, resolve_project(ctx, caller, id_or_name)


def _json(req: Request) -> Any:
    try:
        return req.json()
    except ValueError:
        raise bad_request("Invalid request: the body is not valid JSON.") from None


def _env_of(ctx: Context, caller: Caller, project: Project, env_id: str, write: bool) -> EnvVar:
    env = ctx.store.envs.get(env_id)
    if env is None or env.project_id != project.id or env.hidden:
        raise not_found("Environment Variable not found", envId=env_id)
    allowed = caller.may_modify_env(env) if write else caller.sees_env(env)
    if not allowed:
        raise forbidden(
            "You don't have permission to access this environment variable.",
            envId=env_id,
        )
    return env


def _int(raw: str, name: str) -> int:
    try:
        value = int(float(raw))
    except ValueError:
        raise bad_request(f"Invalid request: `{name}` should be a number.") from None
    if value < 0:
        raise bad_request(f"Invalid request: `{name}` should be >= 0.")
    return value


def list_envs(ctx: Context, req: Request, id_or_name: str) -> Response:
    q = req.query
    with ctx.store.lock:
        caller, project = _caller(ctx, req, id_or_name, write=False)
        everything = ctx.store.project_envs(project.id)
        envs = [e for e in everything if caller.sees_env(e)]
        if q.get("target"):
            envs = [e for e in envs if q["target"] in e.target]
        if q.get("gitBranch"):
            envs = [e for e in envs if e.git_branch == q["gitBranch"]]
        if q.get("customEnvironmentId"):
            envs = [e for e in envs if q["customEnvironmentId"] in e.custom_environment_ids]
        envs.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        decrypt = ctx.config.honour_list_decrypt and q.get("decrypt") == "true"
        size = _int(q["limit"], "limit") if q.get("limit") else ctx.config.env_list_page_size
        body: dict[str, Any]
        if size is None:
            body = {"envs": [render_env(e, decrypted=decrypt) for e in envs]}
        else:
            size = max(size, 1)
            if q.get("until"):
                cursor = _int(q["until"], "until")
                envs = [e for e in envs if e.created_at < cursor]
            page = envs[:size]
            body = {
                "envs": [render_env(e, decrypted=decrypt) for e in page],
                "pagination": {
                    "count": len(page),
                    "next": page[-1].created_at if len(envs) > size else None,
                    "prev": page[0].created_at if page else None,
                },
            }
        hidden = sum(1 for e in everything if e.hidden and "production" in e.target)
        if hidden:
            body["hiddenProductionEnvCount"] = hidden
    return Response.json(body)


def create_envs(ctx: Context, req: Request, id_or_name: str, version: str) -> Response:
    upsert = version == "v10" and req.query.get("upsert") == "true"
    with ctx.store.lock:
        caller, project = _caller(ctx, req, id_or_name, write=True)
        body = _json(req)
        if not isinstance(body, (dict, list)):
            raise bad_request("Invalid request: the body should be an object or an array.")
        single = isinstance(body, dict)
        inputs = [parse_input(item) for item in ([body] if single else body)]
        created: list[dict[str, Any]] = []
        failures: list[ApiError] = []
        owner = ctx.store.accounts.get(project.account_id)
        for inp in inputs:
            made: list[EnvVar] = []
            mark = len(created)
            try:
                for part in _stored(ctx, owner, inp):
                    # create_env adds exactly one var or (upsert) returns an existing one:
                    # the count tells which without copying every project's var ids.
                    before = len(ctx.store.envs)
                    env = create_env(
                        ctx.store,
                        ctx.config,
                        project,
                        part,
                        configuration_id=caller.configuration.id,
                        actor=caller.configuration.user_id,
                        upsert=upsert,
                        may_modify=caller.may_modify_env,
                    )
                    if len(ctx.store.envs) > before:
                        made.append(env)
                    created.append(render_env(env))
            except ApiError as error:
                # A split item is all or nothing: undo the half it created.
                for env in made:
                    ctx.store.envs.pop(env.id, None)
                del created[mark:]
                if single:
                    raise
                failures.append(error)
    failed = [{"error": error.body()} for error in failures]
    if not single and inputs and not created and ctx.config.env_all_failed == "error":
        first = failures[0]
        body = {"error": first.body(), "failed": failed}
        return Response.json(body, first.status)
    return Response.json({"created": created[0] if single else created, "failed": failed}, 201)


def _stored(ctx: Context, owner: Account | None, inp: EnvInput) -> list[EnvInput]:
    """The var(s) the server stores for one item, after the team's sensitive policy."""
    main, split = promote(ctx.config, owner, inp)
    return [main] if split is None else [main, split]


def get_env(ctx: Context, req: Request, id_or_name: str, env_id: str) -> Response:
    with ctx.store.lock:
        caller, project = _caller(ctx, req, id_or_name, write=False)
        env = _env_of(ctx, caller, project, env_id, write=False)
        body = render_env(env, decrypted=True)
    return Response.json(body)


def edit_env(ctx: Context, req: Request, id_or_name: str, env_id: str) -> Response:
    with ctx.store.lock:
        caller, project = _caller(ctx, req, id_or_name, write=True)
        env = _env_of(ctx, caller, project, env_id, write=True)
        changes = parse_patch(_json(req))
        owner = ctx.store.accounts.get(project.account_id)
        env = update_env(ctx.store, ctx.config, env, changes, caller.configuration.user_id, owner)
        body = render_env(env)
    return Response.json(body)


def delete_env(ctx: Context, req: Request, id_or_name: str, env_id: str) -> Response:
    with ctx.store.lock:
        caller, project = _caller(ctx, req, id_or_name, write=True)
        env = _env_of(ctx, caller, project, env_id, write=True)
        del ctx.store.envs[env.id]
        body = render_env(env)
    return Response.json(body)


def batch_delete_envs(ctx: Context, req: Request, id_or_name: str) -> Response:
    with ctx.store.lock:
        caller, project = _caller(ctx, req, id_or_name, write=True)
        body = _json(req)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= 1000:
            raise bad_request("Invalid request: `ids` should be an array of 1 to 1000 ids.")
        if not all(isinstance(i, str) for i in ids):
            raise bad_request("Invalid request: `ids` should be array of strings.")
        found = [
            e
            for i in dict.fromkeys(ids)
            if (e := ctx.store.envs.get(i)) is not None
            and e.project_id == project.id
            and not e.hidden
        ]
        for env in found:
            if not caller.may_modify_env(env):
                raise forbidden(
                    "You don't have permission to access this environment variable.", envId=env.id
                )
        for env in found:
            del ctx.store.envs[env.id]
    return Response.json({"deleted": len(found), "ids": [e.id for e in found]})


def _create_route(ctx: Context, version: str) -> Handler:
    return lambda req, p: create_envs(ctx, req, p["idOrName"], version)


def register(router: Router, ctx: Context) -> None:
    env = "/projects/{idOrName}/env"
    one = env + "/{id}"
    for v in ("v8", "v9", "v10"):
        router.add("GET", f"/{v}{env}", lambda req, p: list_envs(ctx, req, p["idOrName"]))
        router.add("POST", f"/{v}{env}", _create_route(ctx, v))
        router.add(
            "DELETE", f"/{v}{one}", lambda req, p: delete_env(ctx, req, p["idOrName"], p["id"])
        )
    for v in ("v9", "v10"):
        router.add("PATCH", f"/{v}{one}", lambda req, p: edit_env(ctx, req, p["idOrName"], p["id"]))
    for v in ("v1", "v10"):
        router.add("GET", f"/{v}{one}", lambda req, p: get_env(ctx, req, p["idOrName"], p["id"]))
    router.add("DELETE", f"/v1{env}", lambda req, p: batch_delete_envs(ctx, req, p["idOrName"]))
