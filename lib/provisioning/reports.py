"""What the provisioning operations report: per installation, per project, and the
status an operator or the installing user may see. Keys, targets and field names only,
never a value or a token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lib.kv.records import Installation

__all__ = ["InstallationReport", "Outcome", "ProjectReport", "status"]

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
