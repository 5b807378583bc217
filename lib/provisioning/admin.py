"""Operator actions on installations: resync, sweep, drift, secret rotation.

`/provision` (admin and cron) and the configuration page call these; each works within
a deadline and leaves whatever it could not reach marked pending, so the next sweep
picks it up. Thousands of installations never fit one function run, and need not.
"""

from __future__ import annotations

from lib.deadline import Deadline
from lib.kv.records import Installation
from lib.kv.store import Gone
from lib.provisioning.fanout import fan_out
from lib.provisioning.reconcile import Provisioner
from lib.provisioning.reports import (
    ChangedVar,
    Drift,
    InstallationReport,
    MissingVar,
    ProjectDrift,
)
from lib.vercel.errors import VercelError
from lib.vercel.models import Project

__all__ = ["drift", "resync", "rotate_secrets", "sweep"]

# Stop starting new installations with less than this left.
_MIN_INSTALL_BUDGET_S = 2.0
_DRIFT_CONCURRENCY = 8


def resync(
    provisioner: Provisioner,
    configuration_ids: list[str],
    deadline: Deadline,
    *,
    recheck_conflicts: bool = False,
) -> list[InstallationReport]:
    """Reconcile each installation in turn; those not reached are marked pending."""
    reports: list[InstallationReport] = []
    for index, cfg in enumerate(configuration_ids):
        if deadline.remaining() < _MIN_INSTALL_BUDGET_S:
            for rest in configuration_ids[index:]:
                try:
                    provisioner.store.mark_pending(rest)
                except Gone:  # uninstalled (or never stored): nothing is left to do for it
                    reports.append(InstallationReport(rest, outcome="unknown", reason="gone"))
                    continue
                reports.append(
                    InstallationReport(rest, outcome="partial", reason="out of time", pending=True)
                )
            break
        reports.append(provisioner.reconcile(cfg, deadline, recheck_conflicts=recheck_conflicts))
    return reports


def sweep(
    provisioner: Provisioner, deadline: Deadline, limit: int = 200
) -> list[InstallationReport]:
    """Resume installations with unfinished work, oldest first."""
    return resync(provisioner, provisioner.store.pending(limit), deadline)


def rotate_secrets(
    provisioner: Provisioner, configuration_id: str, names: list[str] | None, deadline: Deadline
) -> InstallationReport:
    """Mint new values for the named secrets (all when None) and push them everywhere."""
    unknown = [n for n in names or [] if n not in provisioner.spec.secrets]
    if unknown:
        raise ValueError(f"unknown secret(s): {', '.join(unknown)}")
    try:
        provisioner.store.set_secrets(configuration_id, provisioner.spec.mint_secrets(names))
    except Gone:  # uninstalled meanwhile: nothing was written
        return InstallationReport(configuration_id, outcome="unknown", reason="uninstalled")
    return provisioner.reconcile(configuration_id, deadline)


def drift(provisioner: Provisioner, installation: Installation, deadline: Deadline) -> Drift:
    """Desired vs actual per project: keys, targets and field names, never a value, and
    nothing written (a dry run of the reconcile's plan)."""
    cfg = installation.configuration_id
    _, secrets, records = provisioner.store.load(cfg)
    client = provisioner.client(installation, deadline)
    try:
        projects = provisioner.projects(client, installation)
    except VercelError as exc:
        return Drift(projects=[], in_sync=False, error=exc.code)

    def one(project: Project) -> ProjectDrift:
        try:
            p = provisioner.plan_project(
                client, installation, project, secrets, records.get(project.id)
            )
        except VercelError as exc:
            return ProjectDrift(project.id, project.name, error=exc.code)
        clashing = {c.env_id for c in p.clashes}
        return ProjectDrift(
            project.id,
            project.name,
            in_sync=p.writes == 0,
            ok=sorted(s.key for s in p.unchanged),
            missing=[MissingVar(s.key, s.target) for _, s in p.creates],
            changed=[
                ChangedVar(
                    u.slot.key,
                    sorted(u.patch.model_fields_set - {"value"})
                    + (["value"] if "value" in u.patch.model_fields_set else []),
                )
                for u in p.updates
            ],
            extra=len([d for d in p.deletes if d not in clashing]),
            conflicts=list(p.clashes),
        )

    rows = fan_out(one, projects, _DRIFT_CONCURRENCY)
    return Drift(projects=rows, in_sync=all(r.in_sync for r in rows))
