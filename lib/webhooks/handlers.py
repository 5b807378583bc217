"""What each webhook event does to an installation.

Every handler is idempotent — it states the end result rather than applying a delta —
because Vercel delivers at least once and in no particular order. Where a payload can
be stale by the time it arrives, the handler asks Vercel for the truth instead of
trusting it: a project's current name (two quick renames may arrive swapped) and the
configuration's current project access and scopes (two quick permission changes may
too). Only if Vercel won't say (disabled, revoked, scope withdrawn) is the payload used,
and the reconcile that follows meets the same refusal and records why. A `project.removed`
leaves a tombstone with its `createdAt`, and an older `project.created` delivered late
is ignored.

A handler answers "retry" only for transient trouble; a disabled or revoked installation
is recorded as such and the event acknowledged (retrying is futile). An installation with
unfinished work (pending, or paused) is reconciled in full by its next event, which is
how work left over by a disabled period or an exhausted budget resumes without waiting
for the cron sweep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lib.deadline import Deadline
from lib.kv.records import Installation, ProjectRecord
from lib.provisioning.reports import InstallationReport
from lib.vercel.errors import NotFound, VercelError
from lib.vercel.models import IntegrationConfiguration, Project

if TYPE_CHECKING:
    from lib.app import Services

__all__ = ["HANDLERS", "Event", "Handler", "Outcome", "Target"]

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

    def text(self, *path: str) -> str | None:
        value = self.get(*path)
        return value if isinstance(value, str) and 0 < len(value) <= 128 else None

    def ids(self, *path: str) -> list[str]:
        value = self.get(*path)
        if not isinstance(value, list):
            return []
        return [v for v in value if isinstance(v, str) and 0 < len(v) <= 128]


@dataclass(frozen=True)
class Target:
    """An installation an event applies to, as stored when the event arrived."""

    installation: Installation
    pending: bool = False  # unfinished work is recorded for it

    @property
    def resume(self) -> bool:
        """Work was left over (budget, fault, disabled, missing scope): finish it now."""
        return self.pending or self.installation.status == "paused"


Handler = Callable[[Event, Target | None, "Services", Deadline], Outcome]


class _Transient(Exception):
    """Vercel could not answer a question right now: the event must be redelivered."""


def _outcome(report: InstallationReport) -> Outcome:
    return "retry" if report.outcome == "partial" else "applied"


def _event_time(event: Event) -> float:
    """createdAt is epoch milliseconds; fall back to now."""
    at = event.created_at
    if at is None or not math.isfinite(at) or at <= 0:
        return time.time()
    return at / 1000 if at > 1e11 else at


def _reconcile(svc: Services, inst: Installation, deadline: Deadline, **scope: Any) -> Outcome:
    return _outcome(
        svc.provisioner.reconcile(
            inst.configuration_id,
            deadline.within(_WORK_BUDGET_S),
            installation=inst,
            **scope,
        )
    )


def _live_configuration(
    svc: Services, inst: Installation, deadline: Deadline
) -> IntegrationConfiguration | None:
    """The configuration as Vercel has it now, or None when Vercel won't tell us."""
    try:
        client = svc.provisioner.client(inst, deadline.within(_WORK_BUDGET_S))
        return client.get_configuration(inst.configuration_id)
    except VercelError as exc:
        if exc.retryable and not isinstance(exc, NotFound):
            raise _Transient(exc.code) from None
        return None


def _access_update(event: Event, live: IntegrationConfiguration | None) -> dict[str, Any]:
    """Project access and scopes: Vercel's current view, else what the payload says."""
    if live is not None:
        selection = "all" if live.all_projects else "selected"
        return {
            "project_selection": selection,
            "project_ids": [] if selection == "all" else list(live.projects or []),
            "scopes": list(live.scopes),
        }
    update: dict[str, Any] = {}
    selection = event.get("configuration", "projectSelection")
    if selection in ("all", "selected"):
        update["project_selection"] = selection
        update["project_ids"] = (
            event.ids("configuration", "projects") if selection == "selected" else []
        )
    if isinstance(event.get("configuration", "scopes"), list):
        update["scopes"] = event.ids("configuration", "scopes")
    return update


def _refresh(event: Event, target: Target, svc: Services, deadline: Deadline) -> Installation:
    """Store the installation's current access and scopes; return the updated record."""
    live = _live_configuration(svc, target.installation, deadline)
    update = _access_update(event, live)
    update["updated_at"] = time.time()
    inst = target.installation.model_copy(update=update)
    svc.store.save_installation(inst)
    return inst


def _reachable(inst: Installation, project_id: str) -> bool:
    return inst.project_selection != "selected" or project_id in inst.project_ids


# -- integration-configuration.* ----------------------------------------------------------


def on_removed(event: Event, target: Target | None, svc: Services, deadline: Deadline) -> Outcome:
    inst = target.installation if target else None
    cfg = inst.configuration_id if inst else event.configuration_id
    if cfg is None:
        return "ignored"
    owners = {o for o in (inst.owner_id if inst else None, event.owner_id) if o}
    owners |= {o for o in (event.text("team", "id"), event.text("user", "id")) if o}
    svc.store.delete_installation(cfg, sorted(owners))
    return "applied"


def on_permission_upgraded(
    event: Event, target: Target | None, svc: Services, deadline: Deadline
) -> Outcome:
    if target is None:
        return "ignored"
    try:
        inst = _refresh(event, target, svc, deadline)
    except _Transient:
        return "retry"
    lost = [p for p in event.ids("projects", "removed") if not _reachable(inst, p)]
    svc.provisioner.forget_projects(inst.configuration_id, lost)
    added = [p for p in event.ids("projects", "added") if _reachable(inst, p)]
    if target.resume or (inst.project_selection == "all" and not added):
        return _reconcile(svc, inst, deadline)
    if not added:
        return "applied"
    return _reconcile(svc, inst, deadline, only=added)


def on_scope_change_confirmed(
    event: Event, target: Target | None, svc: Services, deadline: Deadline
) -> Outcome:
    if target is None:
        return "ignored"
    try:
        inst = _refresh(event, target, svc, deadline)
    except _Transient:
        return "retry"
    # Blocked by a missing scope means paused and pending: `resume` covers it.
    return _reconcile(svc, inst, deadline) if target.resume else "applied"


def on_transferred(
    event: Event, target: Target | None, svc: Services, deadline: Deadline
) -> Outcome:
    """Move the owner index, then provision what the installation reaches in its new team."""
    if target is None:
        return "ignored"
    inst = target.installation
    new_team = event.text("newTeamId")
    new_owner = new_team or inst.user_id
    moved = inst.model_copy(
        update={"team_id": new_team, "owner_id": new_owner, "updated_at": time.time()}
    )
    former = {inst.owner_id, event.text("previousTeamId")} - {new_owner, None}
    svc.store.save_installation(moved, former_owners=[str(old) for old in former])
    try:
        moved = _refresh(event, Target(moved, target.pending), svc, deadline)
    except _Transient:
        return "retry"
    return _reconcile(svc, moved, deadline)


# -- project.* ----------------------------------------------------------------------------


def _project(event: Event) -> Project | None:
    project_id, name = event.text("project", "id"), event.text("project", "name")
    if project_id is None:
        return None
    return Project(id=project_id, name=name or project_id)


def _current(
    project: Project, inst: Installation, svc: Services, deadline: Deadline
) -> Project | None:
    """The project as Vercel has it now (its name may have changed since the event);
    None once it is gone. On any other refusal the payload's view is returned and the
    reconcile that follows meets the same refusal and classifies it."""
    try:
        client = svc.provisioner.client(inst, deadline.within(_WORK_BUDGET_S))
        return client.get_project(project.id)
    except NotFound:
        return None
    except VercelError:
        return project


def on_project_upsert(
    event: Event, target: Target | None, svc: Services, deadline: Deadline
) -> Outcome:
    """project.created and project.renamed: provision (or re-render) that project."""
    project = _project(event)
    if target is None or project is None:
        return "ignored"
    inst = target.installation
    if not _reachable(inst, project.id):
        return "ignored"
    record = svc.store.get_projects(inst.configuration_id).get(project.id)
    if record and record.removed_at is not None and _event_time(event) <= record.removed_at:
        return "ignored"  # a late delivery of something that has since been removed
    if target.resume:
        return _reconcile(svc, inst, deadline)
    current = _current(project, inst, svc, deadline)
    if current is None:
        svc.store.forget_project(inst.configuration_id, project.id)
        return "applied"
    return _reconcile(svc, inst, deadline, projects=[current])


def on_project_removed(
    event: Event, target: Target | None, svc: Services, deadline: Deadline
) -> Outcome:
    project = _project(event)
    if target is None or project is None:
        return "ignored"
    tombstone = ProjectRecord(
        project_id=project.id, name=project.name, removed_at=_event_time(event)
    )
    svc.store.put_project(target.installation.configuration_id, tombstone)
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
