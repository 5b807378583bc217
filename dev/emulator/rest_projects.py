"""Projects and their custom environments (vercel-api.md §6).

- `GET /v9|v10/projects`, `GET /v9|v10/projects/{idOrName}`;
- `GET /v9/projects/{idOrName}/custom-environments` (Vercel's "Retrieve custom
  environments", https://vercel.com/docs/rest-api/environment/retrieve-custom-environments):
  `{accountLimit: {total}, environments: [...]}`; custom environments are created through
  the control API (`POST /_emulator/projects/{project}/custom-environments`).

Paging, newest `updatedAt` first, comes in the two shapes getProjects documents:
- "timestamp" (default): `pagination.next` is the `updatedAt` of the page's last
  project, `prev` the first's; both `until` (the CLI's and Sentry's spelling) and
  `from` (the spec's) continue from it; `next` is null on the last page;
- "token" (`projects_pagination="token"`): `pagination` is `{count, next}` with `next`
  an opaque string ("Base32 encoded for safe URL transmission", Vercel's SDK), passed
  back as `from`; a garbled token is 400.
Every project carries `deploymentExpiration`, which Vercel's SDK requires.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dev.emulator.auth import authenticate, require_scope, resolve_project
from dev.emulator.context import Context
from dev.emulator.errors import bad_request, not_found
from dev.emulator.models import CustomEnvironment, Project
from dev.emulator.routing import Router
from dev.emulator.wsgi import Request, Response

__all__ = ["register", "render_project_wire"]

_REGIONS = ["iad1"]
# Vercel's documented default retention (https://vercel.com/docs/deployment-retention).
_RETENTION = {
    "expirationDays": 180,
    "expirationDaysProduction": 365,
    "expirationDaysCanceled": 30,
    "expirationDaysErrored": 90,
    "deploymentsToKeep": 10,
}
# The limit reported with the list; the plans' real numbers are not the emulator's concern.
_CUSTOM_ENVIRONMENT_LIMIT = 12


def render_project_wire(project: Project, *, detail: bool) -> dict[str, Any]:
    """The spec's required project fields plus the commonly read ones; `detail` adds
    `defaultResourceConfig`, which getProject requires and the list shape does not."""
    out: dict[str, Any] = {
        "accountId": project.account_id,
        "alias": [],
        "createdAt": project.created_at,
        "deploymentExpiration": dict(_RETENTION),
        "directoryListing": False,
        "id": project.id,
        "latestDeployments": [],
        "name": project.name,
        "nodeVersion": "22.x",
        "resourceConfig": {"functionDefaultRegions": list(_REGIONS)},
        "serverlessFunctionRegion": _REGIONS[0],
        "targets": {},
        "updatedAt": project.updated_at,
    }
    if project.framework is not None:
        # Omitted rather than null: the spec's `nullable` enum lists no null, and a
        # strict OpenAPI 3.0.3 validator rejects null there.
        out["framework"] = project.framework
    if detail:
        out["defaultResourceConfig"] = {"functionDefaultRegions": list(_REGIONS)}
    return out


def _number(raw: str, name: str) -> int:
    try:
        return int(float(raw))
    except ValueError:
        raise bad_request(f"Invalid request: `{name}` should be a number.") from None


def list_projects(ctx: Context, req: Request) -> Response:
    with ctx.store.lock:
        caller = authenticate(ctx, req)
        require_scope(caller, "project", write=False)
        items = [p for p in ctx.store.projects_of(caller.account.id) if caller.can_access(p)]
        search = req.query.get("search", "").lower()
        if search:
            items = [p for p in items if search in p.name.lower()]
        items.sort(key=lambda p: (p.updated_at, p.id), reverse=True)
        tokens = ctx.config.projects_pagination == "token"
        for name in ("until", "from"):
            if req.query.get(name):
                items = _after(items, req.query[name], name)
                break
        limit = ctx.config.projects_page_size
        if req.query.get("limit"):
            limit = _number(req.query["limit"], "limit")
            if limit < 1:
                raise bad_request("Invalid request: `limit` should be >= 1.")
            limit = min(limit, ctx.config.projects_max_limit)
        page = items[:limit]
        more = len(items) > limit
        pagination: dict[str, Any]
        if tokens:
            pagination = {"count": len(page), "next": _token(page[-1]) if more else None}
        else:
            pagination = {
                "count": len(page),
                "next": page[-1].updated_at if more else None,
                "prev": page[0].updated_at if page else None,
            }
        body = {
            "projects": [render_project_wire(p, detail=False) for p in page],
            "pagination": pagination,
        }
    return Response.json(body)


def _token(last: Project) -> str:
    """An opaque continuation token: Base32 of where the page ended."""
    raw = json.dumps([last.updated_at, last.id]).encode()
    return base64.b32encode(raw).decode().rstrip("=")


def _after(items: list[Project], raw: str, name: str) -> list[Project]:
    """The projects after a cursor: a timestamp (either style accepts one) or a token."""
    try:
        cursor = int(float(raw))
    except ValueError:
        pass
    else:
        return [p for p in items if p.updated_at < cursor]
    try:
        padded = raw + "=" * (-len(raw) % 8)
        updated_at, last_id = json.loads(base64.b32decode(padded.encode()))
        position = (int(updated_at), str(last_id))
    except (binascii.Error, ValueError, TypeError):
        raise bad_request(
            f"Invalid request: `{name}` should be a timestamp or a continuation token."
        ) from None
    return [p for p in items if (p.updated_at, p.id) < position]


def render_custom_environment(custom: CustomEnvironment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": custom.id,
        "slug": custom.slug,
        "type": "preview",
        "createdAt": custom.created_at,
        "updatedAt": custom.updated_at,
        "domains": [],
    }
    if custom.description is not None:
        out["description"] = custom.description
    return out


def list_custom_environments(ctx: Context, req: Request, id_or_name: str) -> Response:
    with ctx.store.lock:
        caller = authenticate(ctx, req)
        require_scope(caller, "project", write=False)
        project = resolve_project(ctx, caller, id_or_name)
        found = ctx.store.project_custom_environments(project.id)
        branch = req.query.get("gitBranch")
        if branch:
            found = []  # no branch matchers are modelled
        body = {
            "accountLimit": {"total": _CUSTOM_ENVIRONMENT_LIMIT},
            "environments": [render_custom_environment(c) for c in found],
        }
    return Response.json(body)


def get_custom_environment(
    ctx: Context, req: Request, id_or_name: str, slug_or_id: str
) -> Response:
    with ctx.store.lock:
        caller = authenticate(ctx, req)
        require_scope(caller, "project", write=False)
        project = resolve_project(ctx, caller, id_or_name)
        custom = ctx.store.find_custom_environment(project.id, slug_or_id)
        if custom is None:
            raise not_found("Custom environment not found", environmentSlugOrId=slug_or_id)
        body = render_custom_environment(custom)
    return Response.json(body)


def get_project(ctx: Context, req: Request, id_or_name: str) -> Response:
    with ctx.store.lock:
        caller = authenticate(ctx, req)
        require_scope(caller, "project", write=False)
        project = resolve_project(ctx, caller, id_or_name)
        body = render_project_wire(project, detail=True)
    return Response.json(body)


def register(router: Router, ctx: Context) -> None:
    for version in ("v9", "v10"):
        router.add("GET", f"/{version}/projects", lambda req, _: list_projects(ctx, req))
        router.add(
            "GET",
            f"/{version}/projects/{{idOrName}}",
            lambda req, p: get_project(ctx, req, p["idOrName"]),
        )
    customs = "/v9/projects/{idOrName}/custom-environments"
    router.add("GET", customs, lambda req, p: list_custom_environments(ctx, req, p["idOrName"]))
    router.add(
        "GET",
        customs + "/{slugOrId}",
        lambda req, p: get_custom_environment(ctx, req, p["idOrName"], p["slugOrId"]),
    )
