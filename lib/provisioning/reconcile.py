"""Reconciling env vars: make every reachable project match the spec, and say what happened.

Per project, one list call tells us the actual state; `lib.provisioning.plan.plan` decides; this module
applies the plan (deletes, PATCHes by id, then ONE batched create) and records what we
wrote. Because every run plans from Vercel's actual state, it can be killed at any step
and the next run converges: a var created but not recorded is found by the list and
matched by key; a delete that happened is simply absent. A conflict that surfaces only at
write time (a race, or a var the list does not show) re-lists and re-plans; what the list
still cannot explain is recorded as held by a hidden var, so the free targets are
provisioned and later runs neither retry nor loop (see `_Hidden`). Nothing is upserted:
`?upsert=true` overwrites whatever holds the key and fails on a target-set mismatch.

Per installation, projects are reconciled concurrently within a deadline; what does not
fit is left marked pending for the next run (webhook delivery or cron sweep).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lib.deadline import Deadline
from lib.kv.client import KVError
from lib.kv.records import Installation, ProjectRecord
from lib.kv.store import Gone, Store
from lib.log import get_logger
from lib.provisioning.fanout import fan_out
from lib.provisioning.history import note_synced
from lib.provisioning.plan import Plan, fingerprint, plan, planned_targets
from lib.provisioning.reports import Clash, InstallationReport, Outcome, ProjectReport
from lib.provisioning.spec import DesiredVar, Slot, Spec, TemplateContext
from lib.vercel.client import VercelClient
from lib.vercel.errors import (
    ConfigurationDisabled,
    EnvConflict,
    Forbidden,
    MissingScope,
    NotFound,
    Unauthorized,
    VercelError,
)
from lib.vercel.models import CustomEnvironment, EnvCreateResult, EnvSpec, EnvVar, Project
from lib.vercel.transport import call_timeout

__all__ = [
    "DEFAULT_CONCURRENCY",
    "HIDDEN_RECHECK_S",
    "InstallationReport",
    "ProjectReport",
    "Provisioner",
]

DEFAULT_CONCURRENCY = 16
# Don't start a project with less time than this left: a half-done project is fine
# (resumable), but starting work that can't finish wastes API calls.
_MIN_PROJECT_BUDGET_S = 1.0
# A conflicting write is explained by a re-list at most this many times per project.
_MAX_ROUNDS = 3
# How long a var hidden from us is taken to still hold its targets before a run tries
# the write again (an explicit resync with `recheck_conflicts` does not wait).
HIDDEN_RECHECK_S = 24 * 3600.0

log = get_logger("provisioning")


class _Stop(Exception):
    """The whole installation must stop (disabled, token revoked)."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


class Provisioner:
    """Reconciles installations against the spec, using the store and the Vercel API."""

    def __init__(
        self,
        store: Store,
        spec: Spec,
        *,
        api_url: str,
        concurrency: int = DEFAULT_CONCURRENCY,
        client_factory: Any = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float | None = None,
    ) -> None:
        self.store = store
        self.spec = spec
        self._api_url = api_url
        self._timeout: dict[str, Any] = (
            {} if timeout_s is None else {"timeout": call_timeout(timeout_s)}
        )
        self._concurrency = max(1, concurrency)
        self._client_factory = client_factory or VercelClient
        self._clock = clock

    # -- installation ----------------------------------------------------------------------

    def client(self, installation: Installation, deadline: Deadline) -> VercelClient:
        client: VercelClient = self._client_factory(
            self.store.token(installation),
            team_id=installation.team_id,
            base_url=self._api_url,
            deadline=deadline,
            **self._timeout,
        )
        return client

    def reconcile(
        self,
        configuration_id: str,
        deadline: Deadline,
        *,
        projects: Sequence[Project] | None = None,
        only: Iterable[str] | None = None,
        installation: Installation | None = None,
        recheck_conflicts: bool = False,
    ) -> InstallationReport:
        """Bring every reachable project of an installation in line, or just `projects`
        (given), or just the reachable projects whose ids are in `only`.
        `recheck_conflicts` tries again the writes that vars hidden from us blocked."""
        report = InstallationReport(configuration_id)
        try:
            return self._reconcile(
                report, deadline, projects, only, installation, recheck_conflicts
            )
        except Gone:
            # Uninstalled meanwhile: the store refused this run's writes from then on.
            report.outcome, report.reason, report.pending = (
                "unknown",
                "uninstalled meanwhile",
                False,
            )
            return report

    def _reconcile(
        self,
        report: InstallationReport,
        deadline: Deadline,
        projects: Sequence[Project] | None,
        only: Iterable[str] | None,
        installation: Installation | None,
        recheck_conflicts: bool,
    ) -> InstallationReport:
        configuration_id = report.configuration_id
        started = time.time()  # a pending mark set later is another run's: not ours to clear
        inst, secrets, records = self.store.load(configuration_id)
        inst = installation or inst
        if inst is None:
            report.outcome = "unknown"
            return report
        secrets = self._ensure_secrets(configuration_id, secrets)
        client = self.client(inst, deadline)
        try:
            if projects is not None:
                targets = list(projects)
            else:
                targets = self._reachable(client, inst)
                if only is None:
                    gone = set(records) - {p.id for p in targets}
                    for project_id in sorted(gone):
                        self.store.forget_project(configuration_id, project_id)
                else:
                    wanted = set(only)
                    targets = [p for p in targets if p.id in wanted]
            report.projects = self._run_all(
                client, inst, targets, secrets, records, deadline, recheck_conflicts
            )
        except _Stop as stop:
            report.outcome, report.reason = stop.outcome, stop.reason
        except VercelError as exc:
            report.outcome, report.reason = "partial", f"{exc.code}: listing projects failed"
        self._settle(inst, report, started=started if projects is None and only is None else None)
        return report

    @staticmethod
    def projects(client: VercelClient, inst: Installation) -> list[Project]:
        """The projects the installation reaches: its selection, or every project."""
        projects = client.list_projects()
        if inst.project_selection == "selected":
            allowed = set(inst.project_ids)
            projects = [p for p in projects if p.id in allowed]
        return projects

    def _reachable(self, client: VercelClient, inst: Installation) -> list[Project]:
        try:
            return self.projects(client, inst)
        except VercelError as exc:
            raise _classify(exc, listing=True) or exc from None

    def _run_all(
        self,
        client: VercelClient,
        inst: Installation,
        projects: list[Project],
        secrets: dict[str, str],
        records: dict[str, ProjectRecord],
        deadline: Deadline,
        recheck_conflicts: bool,
    ) -> list[ProjectReport]:
        stop: list[_Stop] = []
        gone: list[Gone] = []
        lock = threading.Lock()

        def work(project: Project) -> ProjectReport:
            report = ProjectReport(project.id, project.name)
            if stop or gone or deadline.remaining() < _MIN_PROJECT_BUDGET_S:
                report.errors.append("not started: out of time or installation stopped")
                return report
            try:
                return self.reconcile_project(
                    client,
                    inst,
                    project,
                    secrets,
                    records.get(project.id),
                    recheck_conflicts=recheck_conflicts,
                )
            except _Stop as exc:
                with lock:
                    stop.append(exc)
                report.errors.append(exc.reason)
            except KVError as exc:  # written to Vercel, not recorded: the next run re-lists
                report.errors.append(f"storage: {type(exc).__name__}")
            except Gone as exc:  # uninstalled meanwhile: no other project starts a call
                with lock:
                    gone.append(exc)
            return report

        reports = fan_out(work, projects, self._concurrency)
        if gone:
            raise gone[0]
        if stop:
            raise stop[0]
        return reports

    def _settle(
        self, inst: Installation, report: InstallationReport, *, started: float | None
    ) -> None:
        """Record the outcome: pending work, and the installation's status."""
        cfg = inst.configuration_id
        if report.outcome in ("paused", "broken", "blocked"):
            self.store.set_status(
                cfg, "broken" if report.outcome == "broken" else "paused", report.reason
            )
            report.pending = report.outcome != "broken"
        else:
            incomplete = any(not p.complete for p in report.projects)
            if incomplete and report.outcome == "done":
                report.outcome = "partial"
            report.pending = report.outcome == "partial"
            if inst.status != "active":
                self.store.set_status(cfg, "active", None)
        # One round trip: the pending mark (or a read of it), and whether the installation
        # still exists — an uninstall may have landed while this run was writing.
        exists, was_pending = self.store.settle_reconcile(cfg, pending=report.pending)
        if not exists:
            self.store.delete_installation(cfg, [inst.owner_id])  # sweep what this run wrote
            report.outcome, report.reason, report.pending = (
                "unknown",
                "uninstalled meanwhile",
                False,
            )
            return
        if was_pending and started is not None:  # read first: a no-op run writes nothing
            self.store.clear_pending(cfg, started=started)  # only a full run (None: scoped)
        note_synced(self.store, report)  # only a run that wrote: a no-op stays write-free
        log.info(
            "reconciled installation",
            extra={
                "configuration_id": cfg,
                "outcome": report.outcome,
                "projects": len(report.projects),
                "writes": sum(p.writes for p in report.projects),
            },
        )

    def _ensure_secrets(self, configuration_id: str, secrets: dict[str, str]) -> dict[str, str]:
        """Mint secrets the spec declares but the installation lacks (spec grew)."""
        missing = [name for name in self.spec.secrets if name not in secrets]
        if not missing:
            return secrets
        self.store.add_secrets(configuration_id, self.spec.mint_secrets(missing))
        return self.store.get_secrets(configuration_id)

    # -- project ------------------------------------------------------------------------------

    def reconcile_project(
        self,
        client: VercelClient,
        inst: Installation,
        project: Project,
        secrets: dict[str, str],
        record: ProjectRecord | None,
        *,
        recheck_conflicts: bool = False,
    ) -> ProjectReport:
        """One project: list, plan, apply, record. Raises `_Stop` for installation-wide stops.

        A project we hold nothing on yet (no var of ours recorded, none known hidden) is
        not listed first: the whole spec goes out in one batched create, which is all a
        fresh project needs. Only when that create reports a failure (a var in the way,
        a partial earlier run whose record was lost) is the project listed and planned.

        A write that conflicts is explained by a fresh list: if the var in the way is ours
        (a concurrent run made it), the re-plan adopts it; if the list still cannot show
        it, it is somebody's var hidden from us, and its targets are recorded as theirs so
        that later runs neither retry the write nor leave the free targets out.
        """
        report = ProjectReport(project.id, project.name)
        cfg = inst.configuration_id
        try:
            desired, fps = self._desired(inst, project, secrets, client, report.notes)
        except NotFound:  # the project was deleted meanwhile: nothing to do
            self.store.forget_project(cfg, project.id)
            report.complete = True
            return report
        except VercelError as exc:
            return self._project_failed(client, inst, project, report, exc)
        written = _written(record)
        now = self._clock()
        hidden = _Hidden.load(written, desired, now, as_of=math.inf if recheck_conflicts else now)

        def replan(actual: Sequence[EnvVar]) -> Plan:
            return plan(
                desired,
                actual,
                configuration_id=cfg,
                recorded=written,
                fingerprint_of=fps,
                hidden=hidden.targets,
            )

        try:
            unexplained: dict[Slot, set[str]] = {}
            fresh = not written and not hidden.targets
            if fresh:  # planned against nothing: every desired var is one batched create
                unexplained = self._apply(client, project.id, replan([]), fps, written, report)
            # Listed only when the fresh create did not settle it (with 0 rounds the loop's
            # `else` below has nothing to learn: `unexplained` is empty).
            rounds = 0 if fresh and not unexplained and not report.errors else _MAX_ROUNDS
            for _ in range(rounds):
                actual = client.list_env(project.id).envs
                current = replan(actual)
                if unexplained and hidden.learn(_unexplained(current, actual, unexplained)):
                    current = replan(actual)
                unexplained = self._apply(client, project.id, current, fps, written, report)
                if not unexplained:
                    break
            else:
                # Still conflicting after the last re-plan: take it as hidden, so the next
                # run does not try again (and again) before the recheck is due.
                hidden.learn(unexplained)
                report.conflicts += [
                    Clash(s.key, tuple(sorted(t)), s.git_branch, "hidden")
                    for s, t in unexplained.items()
                    if t
                ]
                if any(not t for t in unexplained.values()):
                    report.errors.append("changing under us: try again later")
            report.complete = not report.errors
        except NotFound:
            # The project was deleted (or access to it withdrawn) meanwhile: nothing to do.
            self.store.forget_project(cfg, project.id)
            report.complete = True
            report.errors.clear()
            return report
        except VercelError as exc:
            # Keep what got written.
            self._record(cfg, project, written, fps, hidden, record, report)
            return self._project_failed(client, inst, project, report, exc)
        self._record(cfg, project, written, fps, hidden, record, report)
        return report

    def _project_failed(
        self,
        client: VercelClient,
        inst: Installation,
        project: Project,
        report: ProjectReport,
        exc: VercelError,
    ) -> ProjectReport:
        """A Vercel failure on one project: that project's error, or `_Stop` for all.

        A missing permission on a project of a "selected" installation is often just the
        project having been taken out of the selection (the webhook saying so may not have
        arrived yet): the configuration says which, before the whole installation is
        blocked for it."""
        stop = _classify(exc, listing=False)
        if (
            stop is not None
            and isinstance(exc, MissingScope)
            and self._deselected(client, inst, project)
        ):
            self.store.forget_project(inst.configuration_id, project.id)
            report.notes.append("no longer selected for this installation: left alone")
            report.errors.clear()
            report.complete = True
            return report
        if stop is not None:
            raise stop from None
        report.errors.append(f"{exc.code}: {type(exc).__name__}")
        return report

    @staticmethod
    def _deselected(client: VercelClient, inst: Installation, project: Project) -> bool:
        """True when the installation reaches only selected projects and the configuration,
        read now, no longer lists this one."""
        if inst.project_selection != "selected":
            return False
        try:
            configuration = client.get_configuration(inst.configuration_id)
        except VercelError:
            return False  # cannot tell: the missing permission stands
        if configuration.all_projects:
            return False
        deselected = project.id not in (configuration.projects or [])
        if deselected:
            log.info(
                "project no longer selected: missing permission is that project's only",
                extra={"configuration_id": inst.configuration_id, "project_id": project.id},
            )
        return deselected

    def plan_project(
        self,
        client: VercelClient,
        inst: Installation,
        project: Project,
        secrets: dict[str, str],
        record: ProjectRecord | None,
    ) -> Plan:
        """What a reconcile of this project would do now (drift), writing nothing."""
        desired, fps = self._desired(inst, project, secrets, client, [])
        written = _written(record)
        hidden = _Hidden.load(written, desired, self._clock(), as_of=-math.inf)
        return plan(
            desired,
            client.list_env(project.id).envs,
            configuration_id=inst.configuration_id,
            recorded=written,
            fingerprint_of=fps,
            hidden=hidden.targets,
        )

    def _desired(
        self,
        inst: Installation,
        project: Project,
        secrets: dict[str, str],
        client: VercelClient,
        notes: list[str],
    ) -> tuple[list[DesiredVar], dict[Slot, str]]:
        """The records the spec wants on this project, and their value fingerprints.

        Custom environments the spec names are resolved to this project's ids with one
        extra call, made only when the spec names any; one the project lacks is noted in
        `notes` and left out (the rest of the record is still provisioned)."""
        ctx = TemplateContext(
            configuration_id=inst.configuration_id,
            team_id=inst.team_id,
            user_id=inst.user_id,
            project_id=project.id,
            project_name=project.name,
            secrets=secrets,
        )
        desired = self.spec.desired(ctx)
        if self.spec.custom_environments:
            desired = _resolve_custom(desired, client.list_custom_environments(project.id), notes)
        key = self.store.fingerprint_key()
        cfg = inst.configuration_id
        return desired, {d.slot: fingerprint(key, cfg, d.slot, d.value) for d in desired}

    def _apply(
        self,
        client: VercelClient,
        project_id: str,
        p: Plan,
        fps: dict[Slot, str],
        written: dict[Slot, dict[str, str]],
        report: ProjectReport,
    ) -> dict[Slot, set[str]]:
        """Apply one plan: deletes, PATCHes, then one batched create. Returns the slots
        whose write needs a fresh list to be understood, with the targets the write found
        taken (none when the var to PATCH was gone)."""
        report.conflicts = list(p.clashes)
        report.adopted = sorted(set(report.adopted) | set(p.adopted))
        report.unchanged = len(p.unchanged)
        report.errors = []  # this round's verdict replaces the last one's
        for slot in p.unchanged:
            _wrote(written, slot, p.matched[slot], fps[slot], p.types[slot])
        for env_id in p.deletes:
            with contextlib.suppress(NotFound):  # already gone: the goal of a delete
                client.delete_env(project_id, env_id)
            report.deleted += 1
            report.writes += 1
            for entry in written.values():
                if entry.get("id") == env_id:
                    entry.pop("id", None)
                    entry.pop("fp", None)
                    entry.pop("t", None)
        conflicts: dict[Slot, set[str]] = {}
        for update in p.updates:
            report.writes += 1
            try:
                client.edit_env(project_id, update.env_id, update.patch, current=update.current)
            except EnvConflict as exc:
                taken = set(exc.target) or set(update.patch.target or ())
                conflicts.setdefault(update.slot, set()).update(taken)
                continue
            except NotFound:  # deleted meanwhile (by the user?): the re-list will show it
                conflicts.setdefault(update.slot, set())
                continue
            _wrote(written, update.slot, update.env_id, fps[update.slot], p.types[update.slot])
            report.updated.append(update.slot.key)
        if p.creates:
            conflicts.update(self._create(client, project_id, p, fps, written, report))
        return conflicts

    def _create(
        self,
        client: VercelClient,
        project_id: str,
        p: Plan,
        fps: dict[Slot, str],
        written: dict[Slot, dict[str, str]],
        report: ProjectReport,
    ) -> dict[Slot, set[str]]:
        """The plan's creates in one call; partial success is taken item by item."""
        report.writes += 1
        try:
            result = client.create_env(project_id, [spec for _, spec in p.creates])
        except EnvConflict as exc:  # the whole request refused: the re-list tells what exists
            error = {"code": exc.code, "key": exc.key, "target": exc.target}
            error["gitBranch"] = exc.git_branch
            result = EnvCreateResult.model_validate({"failed": [{"error": error}]})
        left: list[tuple[Slot, EnvSpec]] = []
        for slot, spec in p.creates:
            var = _find_created(result.created, spec)
            if var is not None and var.id:
                _wrote(written, slot, var.id, fps[slot], spec.type)
                report.created.append(spec.key)
            else:
                left.append((slot, spec))
        conflicts: dict[Slot, set[str]] = {}
        explained: set[Slot] = set()
        for failure in result.failed:
            hits = [
                (slot, spec)
                for slot, spec in left
                if failure.key in (None, spec.key)
                and (failure.git_branch is None or failure.git_branch == spec.git_branch)
                and (not failure.target or set(failure.target) & set(spec.target or ()))
            ]
            for slot, spec in hits:
                explained.add(slot)
                wanted = set(spec.target or ())
                if failure.is_conflict:
                    conflicts.setdefault(slot, set()).update(set(failure.target) & wanted or wanted)
                else:
                    report.errors.append(f"{failure.code}: {spec.key}")
            if not hits and not failure.is_conflict:
                report.errors.append(f"{failure.code}: {failure.key or '?'}")
        if not conflicts:
            report.errors += [f"not created: {spec.key}" for s, spec in left if s not in explained]
        return conflicts

    def _record(
        self,
        cfg: str,
        project: Project,
        written: dict[Slot, dict[str, str]],
        fps: dict[Slot, str],
        hidden: _Hidden,
        previous: ProjectRecord | None,
        report: ProjectReport,
    ) -> None:
        env: dict[str, dict[str, str]] = {}
        for slot in fps:
            entry = {k: v for k, v in written.get(slot, {}).items() if k in ("id", "fp", "t")}
            entry.update(hidden.entry(slot))
            if entry:
                env[str(slot)] = entry
        same = previous is not None and previous.env == env and previous.name == project.name
        if same and not report.writes:
            return  # nothing new: a no-op resync writes nothing to the KV either
        # Compared with the record this run read: another run (one with secrets read
        # before or after a rotation) may have written other values meanwhile. Then the
        # store keeps no fingerprint and marks the installation pending, and this run
        # says it is unfinished, so the next run writes every value again.
        record = ProjectRecord(project_id=project.id, name=project.name, env=env)
        if not self.store.record_project(cfg, record, previous):
            report.errors.append("changed under us: to be written again")
            report.complete = False

    # -- events -------------------------------------------------------------------------------

    def forget_projects(self, configuration_id: str, project_ids: Iterable[str]) -> None:
        for project_id in project_ids:
            self.store.forget_project(configuration_id, project_id)


def _classify(exc: VercelError, *, listing: bool) -> _Stop | None:
    """Failures that stop the whole installation rather than one project. A plain 403 on
    one project (access to it withdrawn) is that project's problem, not everyone's."""
    if isinstance(exc, ConfigurationDisabled):
        return _Stop("paused", "integration_configuration_disabled")
    if isinstance(exc, Unauthorized):
        return _Stop("broken", "token revoked or invalid: the user must reinstall")
    if isinstance(exc, MissingScope) or (listing and isinstance(exc, Forbidden)):
        return _Stop("blocked", f"missing permission ({exc.code})")
    return None


class _Hidden:
    """Targets per slot held by vars the list does not show, as learnt from conflicts.

    Kept in the project record next to what we wrote (`hidden`: the targets, `seen`:
    when learnt). Within `HIDDEN_RECHECK_S` they are taken as given — no write is tried,
    so a rerun stays a no-op; after that, or when asked to recheck (the user may have
    removed their var), the next run tries the write again and learns afresh.
    """

    def __init__(self, targets: dict[Slot, set[str]], seen: dict[Slot, str], now: float) -> None:
        self.targets = targets
        self._seen = seen
        self._now = now

    @classmethod
    def load(
        cls,
        written: Mapping[Slot, Mapping[str, str]],
        desired: Sequence[DesiredVar],
        now: float,
        *,
        as_of: float,
    ) -> _Hidden:
        """What the record says, keeping what is still fresh at `as_of`: learnt less than
        `HIDDEN_RECHECK_S` before it (infinity: nothing is, -infinity: everything is)."""
        targets: dict[Slot, set[str]] = {}
        seen: dict[Slot, str] = {}
        for want in desired:
            entry = written.get(want.slot, {})
            held = set(filter(None, entry.get("hidden", "").split(","))) & planned_targets(want)
            try:
                learnt = float(entry.get("seen", ""))
            except ValueError:
                continue
            if held and as_of - learnt < HIDDEN_RECHECK_S:
                targets[want.slot] = held
                seen[want.slot] = entry["seen"]
        return cls(targets, seen, now)

    def learn(self, found: Mapping[Slot, set[str]]) -> bool:
        """Add what a conflict taught; True when it was news."""
        news = False
        for slot, targets in found.items():
            if targets - self.targets.get(slot, set()):
                self.targets.setdefault(slot, set()).update(targets)
                self._seen[slot] = str(int(self._now))
                news = True
        return news

    def entry(self, slot: Slot) -> dict[str, str]:
        held = self.targets.get(slot)
        if not held:
            return {}
        return {"hidden": ",".join(sorted(held)), "seen": self._seen[slot]}


def _unexplained(
    p: Plan, actual: Sequence[EnvVar], conflicted: Mapping[Slot, set[str]]
) -> dict[Slot, set[str]]:
    """Conflicted targets that a fresh plan still wants to write: no var we can see holds
    them, so a var hidden from us does."""
    found: dict[Slot, set[str]] = {}
    for slot, spec in p.creates:
        taken = set(spec.target or ()) & conflicted.get(slot, set())
        if taken:
            found.setdefault(slot, set()).update(taken)
    by_id = {v.id: v for v in actual}
    for update in p.updates:
        if update.patch.target is None or update.slot not in conflicted:
            continue
        var = by_id.get(update.env_id)
        adds = set(update.patch.target) - set(var.target if var else ())
        taken = adds & conflicted[update.slot]
        if taken:
            found.setdefault(update.slot, set()).update(taken)
    return found


def _resolve_custom(
    desired: list[DesiredVar], environments: Sequence[CustomEnvironment], notes: list[str]
) -> list[DesiredVar]:
    """Custom environment slugs -> this project's ids; a slug the project lacks is noted."""
    ids = {e.slug: e.id for e in environments}
    missing = sorted({s for d in desired for s in d.custom_environments if s not in ids})
    if missing:
        notes.append("custom environment(s) not on this project, skipped: " + ", ".join(missing))
    out: list[DesiredVar] = []
    for want in desired:
        if not want.custom_environments:
            out.append(want)
            continue
        found = tuple(sorted({ids[s] for s in want.custom_environments if s in ids}))
        if want.targets or found:
            out.append(want.model_copy(update={"custom_environment_ids": found}))
    return out


def _wrote(
    written: dict[Slot, dict[str, str]], slot: Slot, env_id: str, fp: str, kind: str
) -> None:
    """Record a var as ours: its id, its value's fingerprint, and the type the spec asked
    for (`t`), which tells a var the server promoted to sensitive from one we made so."""
    entry = written.setdefault(slot, {})
    entry["id"] = env_id
    entry["fp"] = fp
    entry["t"] = kind


def _written(record: ProjectRecord | None) -> dict[Slot, dict[str, str]]:
    """What the project record says we wrote, per slot (a copy: the run updates it)."""
    env = record.env if record else {}
    return {Slot.parse(slot): dict(entry) for slot, entry in env.items()}


def _find_created(created: list[EnvVar], spec: EnvSpec) -> EnvVar | None:
    wanted = set(spec.target or [])
    for var in created:
        if (
            var.key == spec.key
            and set(var.target) == wanted
            and (var.git_branch or None) == spec.git_branch
        ):
            return var
    return None
