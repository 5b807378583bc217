"""What the provisioning operations report: per installation, per project, and the
status an operator or the installing user may see. Keys, targets and field names only,
never a value or a token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lib.kv.records import Installation

__all__ = [
    "ChangedVar",
    "Clash",
    "Drift",
    "InstallationReport",
    "MissingVar",
    "Outcome",
    "ProjectDrift",
    "ProjectReport",
    "Status",
    "status",
]

Outcome = Literal["done", "partial", "paused", "broken", "blocked", "unknown"]


@dataclass(frozen=True)
class Clash:
    """A var we did not create holds a key/target we want: reported, never overwritten.
    The one shape a plan, a reconcile report and a drift report all use."""

    key: str
    targets: tuple[str, ...]
    git_branch: str | None
    # "user", another integration's configuration id, or "hidden" (a var the list does not
    # show us: the user's, under the least-privilege scope, or one Vercel hides).
    owner: str
    env_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        # No env id: it names a var that is not ours.
        return {
            "key": self.key,
            "targets": list(self.targets),
            "gitBranch": self.git_branch,
            "owner": self.owner,
        }


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
    conflicts: list[Clash] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Worth saying, not failures: e.g. a custom environment the spec names that this
    # project does not have, or a project no longer selected for the installation.
    notes: list[str] = field(default_factory=list)
    complete: bool = False
    writes: int = 0

    def as_dict(self) -> dict[str, Any]:
        # `project_id` is the one snake_case field, answered since the first release:
        # kept (a stable interface), with its camelCase twin beside it.
        answer = {**asdict(self), "conflicts": [c.as_dict() for c in self.conflicts]}
        return {**answer, "projectId": self.project_id}


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


@dataclass(frozen=True)
class Status:
    """What an operator (or the installing user) may see of an installation: no token."""

    configuration_id: str
    owner_id: str
    team_id: str | None
    scopes: list[str]
    project_selection: str | None
    project_ids: list[str]
    status: str
    status_reason: str | None
    source: str | None
    created_at: float
    updated_at: float
    pending: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "configurationId": self.configuration_id,
            "ownerId": self.owner_id,
            "teamId": self.team_id,
            "scopes": self.scopes,
            "projectSelection": self.project_selection,
            "projectIds": self.project_ids,
            "status": self.status,
            "statusReason": self.status_reason,
            "source": self.source,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "pending": self.pending,
        }


def status(installation: Installation, pending: bool) -> Status:
    """The installation as `/provision` and the configuration page show it."""
    return Status(
        configuration_id=installation.configuration_id,
        owner_id=installation.owner_id,
        team_id=installation.team_id,
        scopes=installation.scopes,
        project_selection=installation.project_selection,
        project_ids=installation.project_ids,
        status=installation.status,
        status_reason=installation.status_reason,
        source=installation.source,
        created_at=installation.created_at,
        updated_at=installation.updated_at,
        pending=pending,
    )


@dataclass(frozen=True)
class MissingVar:
    key: str
    targets: Sequence[str] | None


@dataclass(frozen=True)
class ChangedVar:
    key: str
    fields: list[str]  # the fields that differ, "value" last (never the value itself)


@dataclass(frozen=True)
class ProjectDrift:
    """Desired against actual in one project, or why it could not be read (`error`)."""

    project_id: str
    name: str | None
    error: str | None = None
    in_sync: bool = False
    ok: list[str] = field(default_factory=list)
    missing: list[MissingVar] = field(default_factory=list)
    changed: list[ChangedVar] = field(default_factory=list)
    extra: int = 0
    conflicts: list[Clash] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        head: dict[str, Any] = {"projectId": self.project_id, "name": self.name}
        if self.error is not None:
            return {**head, "error": self.error}
        return {
            **head,
            "inSync": self.in_sync,
            "ok": self.ok,
            "missing": [{"key": m.key, "targets": m.targets} for m in self.missing],
            "changed": [{"key": c.key, "fields": c.fields} for c in self.changed],
            "extra": self.extra,
            "conflicts": [c.as_dict() for c in self.conflicts],
        }


@dataclass(frozen=True)
class Drift:
    """Desired against actual for every reachable project (a dry run: nothing written);
    `error` when the projects could not be listed at all."""

    projects: list[ProjectDrift]
    in_sync: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        rows = [p.as_dict() for p in self.projects]
        if self.error is not None:
            return {"error": self.error, "projects": rows, "inSync": self.in_sync}
        return {"projects": rows, "inSync": self.in_sync}
