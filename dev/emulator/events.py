"""Webhook payloads, field for field as vercel-api.md §3.3 lists them.

`payload.team.id` is null for personal accounts; `payload.user.id` is the acting user.
Which configurations receive which event is decided by the actions module.
"""

from __future__ import annotations

from typing import Any

from dev.emulator.models import Account, Configuration, Project

__all__ = [
    "CONFIG_REMOVED",
    "DEPLOYMENT_EVENTS",
    "PAUSE_EXEMPT",
    "PERMISSION_UPGRADED",
    "PROJECT_CREATED",
    "PROJECT_REMOVED",
    "PROJECT_RENAMED",
    "SCOPE_CHANGE_CONFIRMED",
    "TRANSFERRED",
    "configuration_payload",
    "deployment_payload",
    "project_payload",
    "scope_change_payload",
    "transferred_payload",
]

CONFIG_REMOVED = "integration-configuration.removed"
PERMISSION_UPGRADED = "integration-configuration.permission-upgraded"
SCOPE_CHANGE_CONFIRMED = "integration-configuration.scope-change-confirmed"
TRANSFERRED = "integration-configuration.transferred"
PROJECT_CREATED = "project.created"
PROJECT_REMOVED = "project.removed"
PROJECT_RENAMED = "project.renamed"
DEPLOYMENT_EVENTS = (
    "deployment.created",
    "deployment.ready",
    "deployment.succeeded",
    "deployment.error",
    "deployment.canceled",
    "deployment.promoted",
)
# Still sent while a configuration is disabled (§3.1); everything else is held.
PAUSE_EXEMPT = frozenset({PROJECT_CREATED, PROJECT_REMOVED, CONFIG_REMOVED})


def configuration_payload(
    cfg: Configuration,
    user_id: str,
    project_ids: list[str],
    *,
    added: list[str] | None = None,
    removed: list[str] | None = None,
) -> dict[str, Any]:
    """`integration-configuration.removed` / `.permission-upgraded` (with added/removed)."""
    payload: dict[str, Any] = {
        "team": {"id": cfg.team_id},
        "user": {"id": user_id},
        "configuration": {
            "id": cfg.id,
            "projectSelection": cfg.project_selection,
            "projects": project_ids,
        },
    }
    if added is not None or removed is not None:
        payload["projects"] = {"added": added or [], "removed": removed or []}
    return payload


def scope_change_payload(cfg: Configuration, user_id: str) -> dict[str, Any]:
    return {
        "team": {"id": cfg.team_id},
        "user": {"id": user_id},
        "configuration": {"id": cfg.id, "scopes": list(cfg.scopes)},
    }


def transferred_payload(cfg: Configuration, previous_team_id: str | None) -> dict[str, Any]:
    return {
        "configuration": {"id": cfg.id},
        "installationId": cfg.id,
        "previousTeamId": previous_team_id,
        "newTeamId": cfg.team_id,
    }


def project_payload(
    project: Project, account: Account, user_id: str | None, previous_name: str | None = None
) -> dict[str, Any]:
    """`project.created` / `.removed` / `.renamed` (`previousName` only on renamed)."""
    payload: dict[str, Any] = {
        "team": {"id": account.team_id},
        "user": {"id": user_id},
        "project": {"id": project.id, "name": project.name},
    }
    if previous_name is not None:
        payload["previousName"] = previous_name
    return payload


def deployment_payload(
    event_type: str,
    deployment_id: str,
    project: Project,
    account: Account,
    user_id: str,
    target: str | None,
    dashboard_url: str,
) -> dict[str, Any]:
    """`deployment.*`: `alias` only on created, no `target` on promoted (§3.3)."""
    host = f"{project.name}-{deployment_id[4:13].lower()}-{account.slug}.vercel.app"
    payload: dict[str, Any] = {
        "team": {"id": account.team_id},
        "user": {"id": user_id},
        "deployment": {
            "id": deployment_id,
            "meta": {},
            "url": host,
            "name": project.name,
        },
        "links": {
            "deployment": f"{dashboard_url}/{account.slug}/{project.name}/{deployment_id}",
            "project": f"{dashboard_url}/{account.slug}/{project.name}",
        },
        "project": {"id": project.id},
        "plan": account.plan,
        "regions": ["iad1"],
    }
    if event_type != "deployment.promoted":
        payload["target"] = target
    if event_type == "deployment.created":
        payload["alias"] = [f"{project.name}.vercel.app"] if target == "production" else []
    return payload
