"""Operator actions on installations: resync, sweep, drift, secret rotation.

`/provision` (admin and cron) and the configuration page call these; each works within
a deadline and leaves whatever it could not reach marked pending, so the next sweep
picks it up. Thousands of installations never fit one function run, and need not.
"""

from __future__ import annotations

from typing import Any

from lib.concurrency import fan_out
from lib.deadline import Deadline
from lib.env_plan import fingerprint, plan
from lib.provisioning import InstallationReport, Provisioner
from lib.spec import TemplateContext
from lib.store import Installation
from lib.vercel import VercelError

__all__ = ["drift", "resync", "rotate_secrets", "status", "sweep"]

# Stop starting new installations with less than this left.
_MIN_INSTALL_BUDGET_S = 2.0


def resync(
    provisioner: Provisioner, configuration_ids: list[str], deadline: Deadline
) -> list[InstallationReport]:
    """Reconcile each installation in turn; those not reached are marked pending."""
    reports: list[InstallationReport] = []
    for index, cfg in enumerate(configuration_ids):
        if deadline.remaining() < _MIN_INSTALL_BUDGET_S:
            for rest in configuration_ids[index:]:
                provisioner.store.mark_pending(rest)
                reports.append(
                    InstallationReport(rest, outcome="partial", reason="out of time", pending=True)
                )
            break
        reports.append(provisioner.reconcile(cfg, deadline))
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
    provisioner.store.set_secrets(configuration_id, provisioner.spec.mint_secrets(names))
    return provisioner.reconcile(configuration_id, deadline)


def status(installation: Installation, pending: bool) -> dict[str, Any]:
    """What an operator (or the installing user) may see of an installation: no token."""
    return {
        "configurationId": installation.configuration_id,
        "ownerId": installation.owner_id,
        "teamId": installation.team_id,
        "scopes": installation.scopes,
        "projectSelection": installation.project_selection,
        "projectIds": installation.project_ids,
        "status": installation.status,
        "statusReason": installation.status_reason,
        "source": installation.source,
        "createdAt": installation.created_at,
        "updatedAt": installation.updated_at,
        "pending": pending,
    }


def drift(
    provisioner: Provisioner, installation: Installation, deadline: Deadline
) -> dict[str, Any]:
    """Desired vs actual per project, without values and without writing anything."""
    store = provisioner.store
    cfg = installation.configuration_id
    _, secrets, records = store.load(cfg)
    client = provisioner.client(installation, deadline)
    fp_key = store.fingerprint_key()
    try:
        projects = client.list_projects()
    except VercelError as exc:
        return {"error": exc.code, "projects": []}
    if installation.project_selection == "selected":
        projects = [p for p in projects if p.id in set(installation.project_ids)]

    def one(project: Any) -> dict[str, Any]:
        ctx = TemplateContext(
            configuration_id=cfg,
            team_id=installation.team_id,
            user_id=installation.user_id,
            project_id=project.id,
            project_name=project.name,
            secrets=secrets,
        )
        desired = provisioner.spec.desired(ctx)
        fps = {d.slot: fingerprint(fp_key, cfg, d.slot, d.value) for d in desired}
        record = records.get(project.id)
        try:
            actual = client.list_env(project.id).envs
        except VercelError as exc:
            return {"projectId": project.id, "name": project.name, "error": exc.code}
        p = plan(
            desired,
            actual,
            configuration_id=cfg,
            recorded=record.env if record else {},
            fingerprint_of=fps,
        )
        return {
            "projectId": project.id,
            "name": project.name,
            "inSync": p.writes == 0,
            "ok": sorted(s.split("|")[0] for s in p.unchanged),
            "missing": [{"key": s.key, "targets": s.target} for _, s in p.creates],
            "changed": [
                {
                    "key": u.slot.split("|")[0],
                    "fields": sorted(u.patch.model_fields_set - {"value"})
                    + (["value"] if "value" in u.patch.model_fields_set else []),
                }
                for u in p.updates
            ],
            "extra": len([d for d in p.deletes if d not in {c.env_id for c in p.clashes}]),
            "conflicts": [
                {"key": c.key, "targets": list(c.targets), "owner": c.owner} for c in p.clashes
            ],
        }

    rows = fan_out(one, projects, 8)
    return {"projects": rows, "inSync": all(r.get("inSync") for r in rows)}
