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

Newer facts win (Vercel delivers in no guaranteed order, retried for 24 h). The record
carries a watermark per fact (owner, scopes, project selection: when it was last known
true); a handler refuses an event older than the watermark of the fact it changes, and
a fact read from Vercel counts as of the moment it was read. Every record write is a
compare-and-set (`Store.update_installation`), so concurrent handlers keep each other's
facts, and refused once the installation is uninstalled (`Gone`: the handler stops).

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
from lib.kv.store import Gone
from lib.log import get_logger
from lib.provisioning.continuation import continue_later
from lib.provisioning.reports import InstallationReport
from lib.vercel.errors import NotFound, Unauthorized, VercelError
from lib.vercel.models import IntegrationConfiguration, Project

if TYPE_CHECKING:
    from lib.app import Services

__all__ = ["HANDLERS", "Event", "Handler", "Outcome", "Target"]

Outcome = Literal["applied", "ignored", "retry"]

log = get_logger("webhook")

# Leave a margin under Vercel's 30 s webhook timeout for the KV writes around the work.
_WORK_BUDGET_S = 18.0
# The status reason of an installation whose token Vercel refuses (the reconcile's words).
REINSTALL = "token revoked or invalid: the user must reinstall"


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


def _event_time(event: Event) -> float | None:
    """When the event was created, epoch seconds (createdAt is epoch milliseconds), and
    never later than now: a sender's clock ahead of ours must not push a watermark into
    the future, where it would refuse every genuine later event for the length of the
    skew (`lib.webhooks.receive` logs such an event). None when unknown (missing or not a
    positive number): such an event is not judged stale, its payload's facts never win a
    watermark, and only what Vercel answers is applied."""
    at = event.created_at
    if at is None or not math.isfinite(at) or at <= 0:
        return None
    return min(at / 1000 if at > 1e11 else at, time.time())


def _reconcile(svc: Services, inst: Installation, deadline: Deadline, **scope: Any) -> Outcome:
    report = svc.provisioner.reconcile(
        inst.configuration_id,
        deadline.within(_WORK_BUDGET_S),
        installation=inst,
        **scope,
    )
    continue_later(svc, inst.configuration_id, report)  # the queue finishes the rest
    return _outcome(report)


def _live_configuration(
    svc: Services,
    inst: Installation,
    deadline: Deadline,
    *,
    stored: bool = True,
    elsewhere: tuple[Installation, ...] = (),
) -> IntegrationConfiguration | None:
    """The configuration as Vercel has it now, or None when Vercel won't tell us.

    Only a 404 on the configuration, asked with every team it may now belong to (the
    stored team, the team the record names by now, `elsewhere`), is an uninstall whose
    event may never come: the installation is deleted with its tombstone and `Gone`
    raised. A 401 says our token is not accepted, not that the configuration is gone
    (it may be a moment's refusal, or an old token): the installation is marked broken
    ("reinstall") and keeps its keys, so a reinstall of the same configuration restores
    it. (`stored=False` asks about a guess, such as the team a transfer names: no
    conclusion is drawn then.)"""
    try:
        return _ask(svc, inst, deadline)
    except Unauthorized:
        if stored:
            _revoked(svc, inst.configuration_id)
        return None
    except NotFound:
        if not stored:
            return None
    cfg = inst.configuration_id
    now = svc.store.get_installation(cfg)
    for other in (now, *elsewhere):
        if other is not None and other.team_id != inst.team_id:
            live = _live_configuration(svc, other, deadline, stored=False)
            if live is not None:
                return live
    log.info(
        "audit: uninstall (Vercel says the configuration is gone)",
        extra={"event": "uninstall", "configuration_id": cfg},
    )
    owners = {o.owner_id for o in (inst, now) if o is not None}
    svc.store.delete_installation(cfg, sorted(owners))
    raise Gone(cfg)


def _ask(svc: Services, inst: Installation, deadline: Deadline) -> IntegrationConfiguration | None:
    """GET the configuration with `inst`'s team; None for a refusal that is not about its
    existence, `_Transient` for one worth a redelivery."""
    try:
        client = svc.provisioner.client(inst, deadline.within(_WORK_BUDGET_S))
        return client.get_configuration(inst.configuration_id)
    except (NotFound, Unauthorized):
        raise
    except VercelError as exc:
        if exc.retryable:
            raise _Transient(exc.code) from None
        return None


def _revoked(svc: Services, configuration_id: str) -> None:
    """Our token was refused: record it (the configuration page says "reinstall"), keep
    every key. Raises `Gone` if an uninstall landed meanwhile."""
    log.warning(
        "token refused by Vercel: installation marked broken",
        extra={"configuration_id": configuration_id},
    )
    svc.store.set_status(configuration_id, "broken", REINSTALL)


@dataclass(frozen=True)
class _Facts:
    """What an event (or Vercel, asked) says about an installation, and as of when."""

    at: float | None  # None: unknown, the facts are not applied
    owner: tuple[str | None, str] | None = None  # (team id, owner id)
    selection: tuple[Literal["all", "selected"], list[str]] | None = None
    scopes: list[str] | None = None
    # A transfer Vercel would not describe: the former owner's project ids mean nothing
    # in the new team (Vercel keeps the access mode and grants no project), so a
    # `selected` installation reaches none as of `at`; an `all` one stays `all`.
    regrant: bool = False
    # The team a payload's project ids belong to (`team.id`, None for a personal
    # account), when it says: ids chosen in a team the installation has since left are
    # dropped, the access mode chosen then holds (a transfer keeps it).
    team: tuple[str | None] | None = None


def _access_facts(event: Event, live: IntegrationConfiguration | None, read_at: float) -> _Facts:
    """Project access and scopes: Vercel's current view (as of `read_at`), else what the
    payload says (as of the event's `createdAt`)."""
    if live is not None:
        selection: Literal["all", "selected"] = "all" if live.all_projects else "selected"
        ids = [] if selection == "all" else list(live.projects or [])
        return _Facts(read_at, selection=(selection, ids), scopes=list(live.scopes))
    wanted = event.get("configuration", "projectSelection")
    chosen: tuple[Literal["all", "selected"], list[str]] | None = None
    if wanted == "all":
        chosen = ("all", [])
    elif wanted == "selected":
        chosen = ("selected", event.ids("configuration", "projects"))
    scopes = event.ids("configuration", "scopes")
    has_scopes = isinstance(event.get("configuration", "scopes"), list)
    team = event.get("team")
    named = (event.text("team", "id"),) if isinstance(team, dict) and "id" in team else None
    return _Facts(
        _event_time(event),
        selection=chosen,
        scopes=scopes if has_scopes else None,
        team=named,
    )


def _apply(facts: _Facts) -> Callable[[Installation], Installation | None]:
    """The pure change for `Store.update_installation`: each fact no older than its
    watermark is set with its watermark; None when nothing is newer."""

    def change(inst: Installation) -> Installation | None:
        update: dict[str, Any] = {}
        if facts.at is None:
            return None
        if facts.owner is not None and facts.at >= inst.owner_at:
            team_id, owner_id = facts.owner
            update.update(team_id=team_id, owner_id=owner_id, owner_at=facts.at)
        if facts.selection is not None and facts.at >= inst.projects_at:
            selection, ids = facts.selection
            former = facts.team is not None and facts.team[0] != inst.team_id
            if former and facts.at < inst.owner_at:
                ids = []  # named before the owner we know, in another team
            update.update(project_selection=selection, project_ids=ids, projects_at=facts.at)
        elif (
            facts.regrant and facts.at >= inst.projects_at and inst.project_selection == "selected"
        ):
            update.update(project_ids=[], projects_at=facts.at)
        if facts.scopes is not None and facts.at >= inst.scopes_at:
            update.update(scopes=facts.scopes, scopes_at=facts.at)
        if not update:
            return None
        return inst.model_copy(update={**update, "updated_at": time.time()})

    return change


def _store(svc: Services, inst: Installation, facts: _Facts) -> Installation | None:
    """Write the newer facts; the record as it now stands (None when it is no longer
    stored). Raises `Gone` after an uninstall."""
    result = svc.store.update_installation(inst.configuration_id, _apply(facts))
    if result is None:
        return None
    before, after = result
    return after or before


def _stale(event: Event, *watermarks: float) -> bool:
    """Older than every fact it could change: refused (acknowledged, logged). An event of
    unknown age is not refused: Vercel is asked, and its payload never wins."""
    at = _event_time(event)
    if at is not None and all(at < mark for mark in watermarks):
        log.info("event older than what it changes: ignored", extra={"event_id": event.id})
        return True
    return False


def _refresh(
    event: Event, target: Target, svc: Services, deadline: Deadline
) -> Installation | None:
    """Store the installation's current access and scopes; return the updated record."""
    read_at = time.time()
    live = _live_configuration(svc, target.installation, deadline)
    return _store(svc, target.installation, _access_facts(event, live, read_at))


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
    log.info("audit: uninstall", extra={"event": "uninstall", "configuration_id": cfg})
    return "applied"


def on_permission_upgraded(
    event: Event, target: Target | None, svc: Services, deadline: Deadline
) -> Outcome:
    if target is None:
        return "ignored"
    known = target.installation
    if _stale(event, known.projects_at, known.scopes_at):
        return "ignored"
    try:
        inst = _refresh(event, target, svc, deadline)
    except _Transient:
        return "retry"
    if inst is None:
        return "ignored"
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
    if _stale(event, target.installation.scopes_at):
        return "ignored"
    try:
        inst = _refresh(event, target, svc, deadline)
    except _Transient:
        return "retry"
    if inst is None:
        return "ignored"
    # Blocked by a missing scope means paused and pending: `resume` covers it.
    return _reconcile(svc, inst, deadline) if target.resume else "applied"


def on_transferred(
    event: Event, target: Target | None, svc: Services, deadline: Deadline
) -> Outcome:
    """Move the owner index, then provision what the installation reaches in its new team.

    The owner is confirmed with Vercel: a retried A→B delivered after B→A must not point
    the installation at B again. Vercel's answer (asked with the stored team first, then
    the event's) wins; the payload is used only when Vercel won't say (disabled: 403),
    and only if it is newer than the owner we know. The payload names no projects, and
    the former team's mean nothing in the new one: then a `selected` installation keeps
    none as of the transfer (unless a newer selection is known); Vercel's answer, read by
    the next event that can ask (after the enable), wins as usual."""
    if target is None:
        return "ignored"
    inst = target.installation
    if _stale(event, inst.owner_at):
        return "ignored"
    new_team = event.text("newTeamId")
    moved = inst.model_copy(update={"team_id": new_team, "owner_id": new_team or inst.user_id})
    read_at = time.time()
    try:
        live = _live_configuration(svc, inst, deadline, elsewhere=(moved,))
        if live is None and moved.team_id != inst.team_id:
            live = _live_configuration(svc, moved, deadline, stored=False)
    except _Transient:
        return "retry"
    access = _access_facts(event, live, read_at)
    if live is not None and (live.owner_id or live.team_id):
        owner = (live.team_id, live.owner_id or live.team_id or inst.user_id)
        facts = _Facts(read_at, owner=owner, selection=access.selection, scopes=access.scopes)
    else:
        owner = (moved.team_id, moved.owner_id)
        facts = _Facts(_event_time(event), owner=owner, selection=access.selection, regrant=True)
    stored = _store(svc, inst, facts)
    if stored is None:
        return "ignored"
    return _reconcile(svc, stored, deadline)


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
    at = _event_time(event)
    if record and record.removed_at is not None and at is not None and at <= record.removed_at:
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
    # Of unknown age the tombstone is dated 0: it wins over no later event, whose
    # project is then checked with Vercel (`_current`).
    removed_at = _event_time(event)
    tombstone = ProjectRecord(
        project_id=project.id, name=project.name, removed_at=removed_at or 0.0
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
