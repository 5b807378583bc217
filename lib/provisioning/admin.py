"""Operator actions on installations: resync, sweep, drift, secret rotation, listing.

`/provision` (admin and cron) and the configuration page call these; each works within
a deadline and leaves whatever it could not reach marked pending, so the next sweep
picks it up. Thousands of installations never fit one function run, and need not.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from lib.deadline import Deadline
from lib.kv.client import KVError
from lib.kv.records import Installation
from lib.kv.store import Gone, Store
from lib.log import get_logger
from lib.provisioning.fanout import fan_out
from lib.provisioning.history import note_rotated, note_synced
from lib.provisioning.reconcile import Provisioner
from lib.provisioning.reports import (
    ChangedVar,
    Drift,
    InstallationReport,
    MissingVar,
    ProjectDrift,
    status,
)
from lib.vercel.errors import VercelError
from lib.vercel.models import Project

__all__ = [
    "MAX_PAGE",
    "Page",
    "drift",
    "installation_status",
    "list_installations",
    "resync",
    "rotate_secrets",
    "sweep",
]

log = get_logger("provisioning")

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
    """Reconcile each installation in turn; those not reached are marked pending.

    One installation's failure (a damaged record, a KV blip, an uninstall mid-run) is its
    own report and the next one still runs: a sweep must not let one installation starve
    every later one. Only when every installation failed on the KV is that raised (the
    storage is down: the caller answers "retry")."""
    reports: list[InstallationReport] = []
    storage: list[KVError] = []
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
        try:
            report = provisioner.reconcile(cfg, deadline, recheck_conflicts=recheck_conflicts)
            note_synced(provisioner.store, report, asked=True)
        except Gone:
            report = InstallationReport(cfg, outcome="unknown", reason="uninstalled")
        except Exception as exc:  # one installation must not stop the rest
            if isinstance(exc, KVError):
                storage.append(exc)
            log.exception("resync of one installation failed", extra={"configuration_id": cfg})
            report = InstallationReport(
                cfg, outcome="partial", reason=f"failed: {type(exc).__name__}"
            )
        reports.append(report)
    if storage and len(storage) == len(configuration_ids):
        raise storage[-1]
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
    note_rotated(provisioner.store, configuration_id)
    report = provisioner.reconcile(configuration_id, deadline)
    note_synced(provisioner.store, report, asked=True)
    return report


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
            in_sync=p.writes == 0 and not p.clashes,  # a conflict is never "in sync"
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


# A page of the installations list answers at most this many (one KV pipeline reads them).
MAX_PAGE = 200


@dataclass(frozen=True)
class Page:
    """One page of installations in configuration-id order; `next_cursor` continues it
    (None on the last page). `total` counts every stored installation."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int


def installation_status(installation: Installation, pending: bool) -> dict[str, Any]:
    """What `/provision` shows of one installation: the status, and when it was last
    synced and rotated (epoch seconds, null until it happens)."""
    return {
        **status(installation, pending).as_dict(),
        "lastSyncedAt": installation.last_synced_at,
        "lastRotatedAt": installation.last_rotated_at,
    }


def list_installations(
    store: Store, cursor: str | None, limit: int, *, owner: str | None = None
) -> Page:
    """The installations after `cursor` (a configuration id, exclusive), at most `limit`;
    with `owner` (a team or user id), only that owner's (its index: one set read).

    Keyset paging over the sorted ids: a page is stable while installations come and go
    (nothing is skipped or repeated for an id that existed throughout), and only the
    page's records are read. The ids themselves are one set read (short strings: tens of
    kilobytes for thousands of installations)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    ids = store.all_installations() if owner is None else store.installations_for_owner(owner)
    start = bisect_right(ids, cursor) if cursor else 0
    chosen = ids[start : start + limit]
    items = [installation_status(s.installation, s.pending) for s in store.installations(chosen)]
    more = start + limit < len(ids)
    return Page(items, chosen[-1] if more and chosen else None, len(ids))
