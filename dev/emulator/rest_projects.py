"""`GET /v9|v10/projects` and `GET /v9|v10/projects/{idOrName}` (vercel-api.md §6).

Paging is the classic timestamp style: newest `updatedAt` first, `pagination.next` is
the `updatedAt` of the page's last project, and both `until` (the CLI's and Sentry's
spelling) and `from` (the spec's) continue from it; `next` is null on the last page.
The continuation-token variant of the spec is not produced.
"""

from __future__ import annotations

from typing import Any

from dev.emulator.auth import authenticate, require_scope, resolve_project
from dev.emulator.context import Context
from dev.emulator.errors import bad_request
from dev.emulator.models import Project
from dev.emulator.routing import Router
from dev.emulator.wsgi import Request, Response

__all__ = ["register", "render_project_wire"]

_REGIONS = ["iad1"]


def render_project_wire(project: Project, *, detail: bool) -> dict[str, Any]:
    """The spec's required project fields plus the commonly read ones; `detail` adds
    `defaultResourceConfig`, which getProject requires and the list shape does not."""
    out: dict[str, Any] = {
        "accountId": project.account_id,
        "alias": [],
        "createdAt": project.created_at,
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
        for name in ("until", "from"):
            if req.query.get(name):
                cursor = _number(req.query[name], name)
                items = [p for p in items if p.updated_at < cursor]
                break
        limit = ctx.config.projects_page_size
        if req.query.get("limit"):
            limit = _number(req.query["limit"], "limit")
            if limit < 1:
                raise bad_request("Invalid request: `limit` should be >= 1.")
            limit = min(limit, ctx.config.projects_max_limit)
        page = items[:limit]
        body = {
            "projects": [render_project_wire(p, detail=False) for p in page],
            "pagination": {
                "count": len(page),
                "next": page[-1].updated_at if len(items) > limit else None,
                "prev": page[0].updated_at if page else None,
            },
        }
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
