"""What each webhook event does to an installation.

Every handler is idempotent — it states the end result rather than applying a delta —
because Vercel delivers at least once and may deliver out of order. Ordering across
events for one project is settled with `createdAt`: a `project.removed` leaves a
tombstone with its time, and an older `project.created` delivered late is ignored.
A handler answers "retry" only for transient trouble; a disabled or revoked
installation is recorded as such and the event acknowledged (retrying is futile).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lib.deadline import Deadline
from lib.models import Project
from lib.provisioning import InstallationReport
from lib.store import Installation, ProjectRecord

if TYPE_CHECKING:
    from lib.services import Services

__all__ = ["HANDLERS", "Event", "Handler", "Outcome"]

Outcome = Literal["applied", "ignored", "retry"]

# Leave a margin under Vercel's 30 s webhook timeout for the KV writes around the work.
_WORK_BUDGET_S = 18.0


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    created_at: float | None
    payload: dict[str, Any]
    configuration_id: str | None
    owner_id: str | None

    def get(self, *path: str) -> Any:
        node: Any = self.payload
        for part in path:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node

    def ids(self, *path: str) -> list[str]:
        value = self.get(*path)
        if not isinstance(value, list):
            return []
        return [v for v in value if isinstance(v, str) and 0 < len(v) <= 128]


Handler = Callable[[Event, Installation | None, "Services", Deadline], Outcome]


def _outcome(report: InstallationReport) -> Outcome:
    return "retry" if report.outcome == "partial" else "applied"


def _event_time(event: Event) -> float:
    """createdAt is epoch milliseconds; fall back to now."""
    if event.created_at is None:
        return time.time()
    return event.created_at / 1000 if event.created_at > 1e11 else event.created_at


def on_removed(
    event: Event, inst: Installation | None, svc: Services, deadline: Deadline
) -> Outcome:
    cfg = inst.configuration_id if inst else event.configuration_id
    if cfg is None:
        return "ignored"
    owners = {o for o in (inst.owner_id if inst else None, event.owner_id) if o}
    owners |= {o for o in (event.get("team", "id"), event.get("user", "id")) if isinstance(o, str)}
    svc.store.delete_installation(cfg, sorted(owners))
    return "applied"


def on_permission_upgraded(
    event: Event, inst: Installation | None, svc: Services, deadline: Deadline
) -> Outcome:
    if inst is None:
        return "ignored"
    selection = event.get("configuration", "projectSelection")
    projects = event.ids("configuration", "projects")
    update: dict[str, Any] = {"updated_at": time.time()}
    if selection in ("all", "selected"):
        update["project_selection"] = selection
        update["project_ids"] = projects if selection == "selected" else []
    inst = inst.model_copy(update=update)
    svc.store.save_installation(inst)
    removed = event.ids("projects", "removed")
    svc.provisioner.forget_projects(inst.configuration_id, removed)
    added = event.ids("projects", "added")
    if not added and selection != "all":
        return "applied"
    report = svc.provisioner.reconcile(
        inst.configuration_id,
        deadline.within(_WORK_BUDGET_S),
        only=None if selection == "all" and not added else added,
        installation=inst,
    )
    return _outcome(report)


def on_scope_change_confirmed(
    event: Event, inst: Installation | None, svc: Services, deadline: Deadline
) -> Outcome:
    if inst is None:
        return "ignored"
    scopes = event.ids("configuration", "scopes")
    inst = inst.model_copy(update={"scopes": scopes, "updated_at": time.time()})
    svc.store.save_installation(inst)
    blocked = inst.status == "paused" and (inst.status_reason or "").startswith(
        "missing permission"
    )
    if not blocked:
        return "applied"
    return _outcome(
        svc.provisioner.reconcile(
            inst.configuration_id, deadline.within(_WORK_BUDGET_S), installation=inst
        )
    )


def on_transferred(
    event: Event, inst: Installation | None, svc: Services, deadline: Deadline
) -> Outcome:
    if inst is None:
        return "ignored"
    new_team = event.get("newTeamId")
    new_team = new_team if isinstance(new_team, str) and new_team else None
    previous = event.get("previousTeamId")
    new_owner = new_team or inst.user_id
    moved = inst.model_copy(
        update={"team_id": new_team, "owner_id": new_owner, "updated_at": time.time()}
    )
    commands = svc.store.installation_commands(moved)
    for old in {inst.owner_id, previous if isinstance(previous, str) else None} - {new_owner, None}:
        commands.append(["SREM", svc.store.key("owner", str(old)), inst.configuration_id])
    svc.store.kv.transaction(commands, idempotent=True)
    return "applied"


def _project(event: Event) -> Project | None:
    project_id, name = event.get("project", "id"), event.get("project", "name")
    if not isinstance(project_id, str) or not project_id:
        return None
    return Project(id=project_id, name=name if isinstance(name, str) and name else project_id)


def on_project_upsert(
    event: Event, inst: Installation | None, svc: Services, deadline: Deadline
) -> Outcome:
    """project.created and project.renamed: provision (or re-render) that project."""
    project = _project(event)
    if inst is None or project is None:
        return "ignored"
    if inst.project_selection == "selected" and project.id not in inst.project_ids:
        return "ignored"
    record = svc.store.get_projects(inst.configuration_id).get(project.id)
    if record and record.removed_at is not None and _event_time(event) <= record.removed_at:
        return "ignored"  # a late delivery of something that has since been removed
    report = svc.provisioner.reconcile(
        inst.configuration_id,
        deadline.within(_WORK_BUDGET_S),
        projects=[project],
        installation=inst,
    )
    return _outcome(report)


def on_project_removed(
    event: Event, inst: Installation | None, svc: Services, deadline: Deadline
) -> Outcome:
    project = _project(event)
    if inst is None or project is None:
        return "ignored"
    tombstone = ProjectRecord(
        project_id=project.id, name=project.name, removed_at=_event_time(event)
    )
    svc.store.put_project(inst.configuration_id, tombstone)
    return "applied"


HANDLERS: dict[str, Handler] = {
    "integration-configuration.removed": on_removed,
    "integration-configuration.permission-upgraded": on_permission_upgraded,
    "integration-configuration.scope-change-confirmed": on_scope_change_confirmed,
    "integration-configuration.transferred": on_transferred,
    "project.created": on_project_upsert,
    "project.renamed": on_project_upsert,
    "project.removed": on_project_removed,
}
