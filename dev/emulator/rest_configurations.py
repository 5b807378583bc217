"""Integration configurations: get one, list, delete (vercel-api.md §5, §10).

- `GET /v1/integrations/configuration/{id}`: only the owner scope sees it; anything
  else, deleted included, is 404 "The configuration was not found".
- `GET /v1/integrations/configurations?view=account|project`: `view` is required; the
  answer is a bare array; `view=account` adds the `integration` object.
- `DELETE /v1/integrations/configuration/{id}`: 204, and the configuration's tokens and
  env vars go with it. Whether Vercel then also sends `integration-configuration.removed`
  is undocumented; the emulator sends it unless `webhook_on_api_delete` is off.
"""

from __future__ import annotations

from typing import Any

from dev.emulator.actions import Actions
from dev.emulator.auth import Caller, authenticate, require_scope
from dev.emulator.context import Context
from dev.emulator.errors import bad_request, not_found
from dev.emulator.models import Configuration
from dev.emulator.routing import Router
from dev.emulator.wsgi import Request, Response

__all__ = ["register", "render_configuration"]


def render_configuration(
    ctx: Context, cfg: Configuration, *, account_view: bool = False
) -> dict[str, Any]:
    """The configuration shape; `projects` is absent for full access, as the spec says."""
    out: dict[str, Any] = {
        "id": cfg.id,
        "integrationId": ctx.config.client_id,
        "slug": ctx.config.slug,
        "ownerId": cfg.owner_id,
        "teamId": cfg.team_id,
        "userId": cfg.user_id,
        "scopes": list(cfg.scopes),
        "projectSelection": cfg.project_selection,
        "source": cfg.source,
        "type": "integration-configuration",
        "installationType": "external",
        "createdAt": cfg.created_at,
        "updatedAt": cfg.updated_at,
    }
    if cfg.project_selection == "selected":
        out["projects"] = list(cfg.projects)
    if cfg.completed_at is not None:
        out["completedAt"] = cfg.completed_at
    if cfg.disabled_at is not None:
        out["disabledAt"] = cfg.disabled_at
        out["disabledReason"] = cfg.disabled_reason or "disabled-by-owner"
    if account_view:
        out["integration"] = {
            "name": ctx.config.name,
            "icon": f"{ctx.config.public_url}/integrations/{ctx.config.slug}/icon.svg",
            "isLegacy": False,
            "flags": [],
        }
    return out


def _own(ctx: Context, caller: Caller, configuration_id: str) -> Configuration:
    cfg = ctx.store.configurations.get(configuration_id)
    if cfg is None or not cfg.active or cfg.owner_id != caller.account.id:
        raise not_found("The configuration was not found")
    return cfg


def get_configuration(ctx: Context, req: Request, configuration_id: str) -> Response:
    with ctx.store.lock:
        caller = authenticate(ctx, req)
        require_scope(caller, "integration-configuration", write=False)
        body = render_configuration(ctx, _own(ctx, caller, configuration_id))
    return Response.json(body)


def list_configurations(ctx: Context, req: Request) -> Response:
    view = req.query.get("view")
    with ctx.store.lock:
        caller = authenticate(ctx, req)
        require_scope(caller, "integration-configuration", write=False)
        if view not in ("account", "project"):
            raise bad_request("Invalid request: `view` should be one of account, project.")
        wanted = req.query.get("integrationIdOrSlug")
        kind = req.query.get("installationType")
        found = [
            c
            for c in ctx.store.configurations.values()
            if c.active and c.owner_id == caller.account.id
        ]
        if wanted and wanted not in (ctx.config.client_id, ctx.config.slug):
            found = []
        if kind and kind != "external":
            found = []
        body = [render_configuration(ctx, c, account_view=view == "account") for c in found]
    return Response.json(body)


def delete_configuration(
    ctx: Context, actions: Actions, req: Request, configuration_id: str
) -> Response:
    with ctx.store.lock:
        caller = authenticate(ctx, req)
        require_scope(caller, "integration-configuration", write=True)
        cfg = _own(ctx, caller, configuration_id)
        actions.delete_configuration(cfg.id, notify=ctx.config.webhook_on_api_delete)
    return Response.empty(204)


def register(router: Router, ctx: Context, actions: Actions) -> None:
    one = "/v1/integrations/configuration/{id}"
    router.add("GET", one, lambda req, p: get_configuration(ctx, req, p["id"]))
    router.add("DELETE", one, lambda req, p: delete_configuration(ctx, actions, req, p["id"]))
    router.add(
        "GET", "/v1/integrations/configurations", lambda req, _: list_configurations(ctx, req)
    )
