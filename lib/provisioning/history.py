"""When an installation was last synced and when its secrets were last rotated.

Both are stamped on the installation record (`last_synced_at`, `last_rotated_at`) so the
configuration page and `/provision` can say them. A sync is noted when a reconcile
finished every reachable project and either wrote something, or was asked for by a
person or an operator: a background run that found nothing to do writes nothing at all
(that keeps a no-op rerun free of KV writes), so "last synced" is the last time the
projects were brought in line or checked on request.

A stamp is a nicety, never a reason to fail the work it describes: losing the
compare-and-set race (`Contended`) leaves the previous stamp, and an uninstall landing
between the work and its stamp (`Gone`) leaves nothing to stamp: the work's own report
already says what happened, so neither escapes to the caller.
"""

from __future__ import annotations

import time

from lib.kv.records import Installation
from lib.kv.store import Contended, Gone, Store
from lib.log import get_logger
from lib.provisioning.reports import InstallationReport

__all__ = ["note_rotated", "note_synced"]

log = get_logger("provisioning")


def note_synced(store: Store, report: InstallationReport, *, asked: bool = False) -> None:
    """Stamp `last_synced_at` after a finished reconcile. The reconcile itself notes a run
    that wrote (`asked=False`); the resync a person or operator asked for notes a run
    that wrote nothing (`asked=True`), so every finished run is noted once."""
    if report.outcome != "done" or report.pending:
        return
    wrote = any(p.writes for p in report.projects)
    if wrote == asked:
        return
    _stamp(store, report.configuration_id, "last_synced_at")


def note_rotated(store: Store, configuration_id: str) -> None:
    """Stamp `last_rotated_at` once new secret values are stored."""
    _stamp(store, configuration_id, "last_rotated_at")


def _stamp(store: Store, configuration_id: str, field: str) -> None:
    at = time.time()

    def change(inst: Installation) -> Installation:
        return inst.model_copy(update={field: at})

    try:
        store.update_installation(configuration_id, change)
    except Gone:
        log.info(
            "not stamped: uninstalled meanwhile",
            extra={"configuration_id": configuration_id, "field": field},
        )
    except Contended:
        log.warning(
            "could not record the time (record kept changing)",
            extra={"configuration_id": configuration_id, "field": field},
        )
