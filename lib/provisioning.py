"""Reconciling env vars: make every reachable project match the spec, and say what happened.

Per project, one list call tells us the actual state; `env_plan.plan` decides; this module
applies the plan (deletes, PATCHes by id, then ONE batched create) and records what we
wrote. Because every run plans from Vercel's actual state, it can be killed at any step
and the next run converges: a var created but not recorded is found by the list and
matched by key; a delete that happened is simply absent. A conflict that surfaces only at
create time (a race, or a var the list does not show) re-lists and re-plans once.

Per installation, projects are reconciled concurrently within a deadline; what does not
fit is left marked pending for the next run (webhook delivery or cron sweep).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lib.concurrency import fan_out
from lib.deadline import Deadline
from lib.env_plan import Clash, Plan, fingerprint, plan
from lib.log import get_logger
from lib.models import EnvCreateResult, EnvSpec, EnvVar, Project
from lib.spec import Spec, TemplateContext
from lib.store import Installation, ProjectRecord, Store
from lib.vercel import (
    ConfigurationDisabled,
    EnvConflict,
    Forbidden,
    NotFound,
    Unauthorized,
    VercelClient,
    VercelError,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "InstallationReport",
    "ProjectReport",
    "Provisioner",
]

DEFAULT_CONCURRENCY = 16
# Don't start a project with less time than this left: a half-done project is fine
# (resumable), but starting work that can't finish wastes API calls.
_MIN_PROJECT_BUDGET_S = 1.0

log = get_logger("provisioning")

Outcome = Literal["done", "partial", "paused", "broken", "blocked", "unknown"]


@dataclass
class ProjectReport:
    """What one project reconcile did. Keys and targets only, never values."""

    project_id: str
    name: str | None = None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: int = 0
    unchanged: int = 0
    adopted: list[str] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    complete: bool = False
    writes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InstallationReport:
    configuration_id: str
    outcome: Outcome = "done"
    reason: str | None = None
    projects: list[ProjectReport] = field(default_factory=list)
    pending: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "configurationId": self.configuration_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "pending": self.pending,
            "projects": [p.as_dict() for p in self.projects],
        }


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
    ) -> None:
        self.store = store
        self.spec = spec
        self._api_url = api_url
        self._concurrency = max(1, concurrency)
        self._client_factory = client_factory or VercelClient

    # -- installation ----------------------------------------------------------------------

    def client(self, installation: Installation, deadline: Deadline) -> VercelClient:
        client: VercelClient = self._client_factory(
            self.store.token(installation),
            team_id=installation.team_id,
            base_url=self._api_url,
            deadline=deadline,
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
    ) -> InstallationReport:
        """Bring every reachable project of an installation in line, or just `projects`
        (given), or just the reachable projects whose ids are in `only`."""
        report = InstallationReport(configuration_id)
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
            report.projects = self._run_all(client, inst, targets, secrets, records, deadline)
        except _Stop as stop:
            report.outcome, report.reason = stop.outcome, stop.reason
        except VercelError as exc:
            report.outcome, report.reason = "partial", f"{exc.code}: listing projects failed"
        self._settle(inst, report)
        return report

    def _reachable(self, client: VercelClient, inst: Installation) -> list[Project]:
        try:
            projects = client.list_projects()
        except VercelError as exc:
            raise _classify(exc) or exc from None
        if inst.project_selection == "selected":
            allowed = set(inst.project_ids)
            projects = [p for p in projects if p.id in allowed]
        return projects

    def _run_all(
        self,
        client: VercelClient,
        inst: Installation,
        projects: list[Project],
        secrets: dict[str, str],
        records: dict[str, ProjectRecord],
        deadline: Deadline,
    ) -> list[ProjectReport]:
        stop: list[_Stop] = []
        lock = threading.Lock()

        def work(project: Project) -> ProjectReport:
            report = ProjectReport(project.id, project.name)
            if stop or deadline.remaining() < _MIN_PROJECT_BUDGET_S:
                report.errors.append("not started: out of time or installation stopped")
                return report
            try:
                return self.reconcile_project(
                    client, inst, project, secrets, records.get(project.id)
                )
            except _Stop as exc:
                with lock:
                    stop.append(exc)
                report.errors.append(exc.reason)
                return report

        reports = fan_out(work, projects, self._concurrency)
        if stop:
            raise stop[0]
        return reports

    def _settle(self, inst: Installation, report: InstallationReport) -> None:
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
        if report.pending:
            self.store.mark_pending(cfg)
        else:
            self.store.clear_pending(cfg)
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
    ) -> ProjectReport:
        """One project: list, plan, apply, record. Raises `_Stop` for installation-wide stops."""
        report = ProjectReport(project.id, project.name)
        cfg = inst.configuration_id
        ctx = TemplateContext(
            configuration_id=cfg,
            team_id=inst.team_id,
            user_id=inst.user_id,
            project_id=project.id,
            project_name=project.name,
            secrets=secrets,
        )
        desired = self.spec.desired(ctx)
        fp_key = self.store.fingerprint_key()
        fps = {d.slot: fingerprint(fp_key, cfg, d.slot, d.value) for d in desired}
        written: dict[str, dict[str, str]] = dict(record.env) if record else {}
        try:
            for attempt in (1, 2):
                actual = client.list_env(project.id).envs
                current = plan(
                    desired, actual, configuration_id=cfg, recorded=written, fingerprint_of=fps
                )
                retry = self._apply(
                    client, project.id, current, fps, written, report, final=attempt == 2
                )
                if not retry:
                    break
            report.complete = not report.errors
        except NotFound:
            # The project was deleted (or access to it withdrawn) meanwhile: nothing to do.
            self.store.forget_project(cfg, project.id)
            report.complete = True
            report.errors.clear()
            return report
        except VercelError as exc:
            self._record(cfg, project, written, fps, record)  # keep what did get written
            stop = _classify(exc)
            if stop is not None:
                raise stop from None
            report.errors.append(f"{exc.code}: {type(exc).__name__}")
            return report
        self._record(cfg, project, written, fps, record)
        return report

    def _apply(
        self,
        client: VercelClient,
        project_id: str,
        p: Plan,
        fps: dict[str, str],
        written: dict[str, dict[str, str]],
        report: ProjectReport,
        *,
        final: bool,
    ) -> bool:
        """Apply one plan. True when a create conflict calls for a re-list and re-plan."""
        report.conflicts = [_clash(c) for c in p.clashes]
        report.adopted = sorted(set(report.adopted) | set(p.adopted))
        for slot, env_id in p.matched.items():
            if slot in p.unchanged:
                written[slot] = {"id": env_id, "fp": fps[slot]}
        report.unchanged = len(p.unchanged)
        for env_id in p.deletes:
            with contextlib.suppress(NotFound):  # already gone: the goal of a delete
                client.delete_env(project_id, env_id)
            report.deleted += 1
            report.writes += 1
            for slot in [s for s, w in written.items() if w.get("id") == env_id]:
                del written[slot]
        for update in p.updates:
            client.edit_env(project_id, update.env_id, update.patch)
            written[update.slot] = {"id": update.env_id, "fp": fps[update.slot]}
            report.updated.append(update.patch.key or _key_of(update.slot))
            report.writes += 1
        if not p.creates:
            return False
        specs = [spec for _, spec in p.creates]
        try:
            result = client.create_env(project_id, specs)
        except EnvConflict as exc:
            if not final:
                return True
            result = EnvCreateResult.model_validate(
                {"failed": [{"error": {"code": exc.code, "key": exc.key, "target": exc.target}}]}
            )
        report.writes += 1
        for slot, spec in p.creates:
            var = _find_created(result.created, spec)
            if var is not None and var.id:
                written[slot] = {"id": var.id, "fp": fps[slot]}
                report.created.append(spec.key)
        conflicted = [f for f in result.failed if f.is_conflict]
        if conflicted and not final:
            return True
        for failure in result.failed:
            if failure.is_conflict:
                report.conflicts.append(
                    {
                        "key": failure.key,
                        "targets": failure.target,
                        "gitBranch": failure.git_branch,
                        "owner": "hidden",
                    }
                )
            else:
                report.errors.append(f"{failure.code}: {failure.key or '?'}")
        return False

    def _record(
        self,
        cfg: str,
        project: Project,
        written: dict[str, dict[str, str]],
        fps: dict[str, str],
        previous: ProjectRecord | None,
    ) -> None:
        env = {slot: w for slot, w in written.items() if slot in fps}
        if previous is not None and previous.env == env and previous.name == project.name:
            return  # nothing new: a no-op resync writes nothing to the KV either
        self.store.put_project(
            cfg, ProjectRecord(project_id=project.id, name=project.name, env=env)
        )

    # -- events -------------------------------------------------------------------------------

    def forget_projects(self, configuration_id: str, project_ids: Iterable[str]) -> None:
        for project_id in project_ids:
            self.store.forget_project(configuration_id, project_id)


def _classify(exc: VercelError) -> _Stop | None:
    """Failures that stop the whole installation rather than one project."""
    if isinstance(exc, ConfigurationDisabled):
        return _Stop("paused", "integration_configuration_disabled")
    if isinstance(exc, Unauthorized):
        return _Stop("broken", "token revoked or invalid: the user must reinstall")
    if isinstance(exc, Forbidden):
        return _Stop("blocked", f"missing permission ({exc.code})")
    return None


def _clash(clash: Clash) -> dict[str, Any]:
    return {
        "key": clash.key,
        "targets": list(clash.targets),
        "gitBranch": clash.git_branch,
        "owner": clash.owner,
    }


def _key_of(slot: str) -> str:
    return slot.split("|", 1)[0]


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
