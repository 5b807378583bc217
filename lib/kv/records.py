"""The records kept in KV, in the exact JSON form deployed installations already store.

The field names and their JSON spelling are a compatibility contract with data written by
earlier versions (see the key layout in `lib.kv.store`): add fields with defaults, never
rename or drop one. Unknown fields are ignored, so a rollback still reads newer records.
"""

from __future__ import annotations

import time
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

__all__ = ["Installation", "ProjectRecord", "StoreError", "parse_record"]

_M = TypeVar("_M", bound=BaseModel)


class StoreError(Exception):
    """A record exists but cannot be read (corrupt JSON, wrong key): never guessed around."""


class Installation(BaseModel):
    """One installation (Vercel "integration configuration") and its access token."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    configuration_id: str
    owner_id: str
    team_id: str | None = None
    user_id: str
    sealed_token: str = Field(repr=False)
    scopes: list[str] = Field(default_factory=list)
    source: str | None = None
    project_selection: Literal["all", "selected"] | None = None
    project_ids: list[str] = Field(default_factory=list)
    status: Literal["active", "paused", "broken"] = "active"
    status_reason: str | None = None
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    # Per-fact watermarks (epoch seconds): when the fact was true at Vercel, from the
    # `createdAt` of the event that set it, or the moment the callback read it. An
    # event older than the watermark of the fact it changes is refused (Vercel delivers
    # in no guaranteed order). Records written before these existed read as 0.
    owner_at: float = 0.0
    scopes_at: float = 0.0
    projects_at: float = 0.0
    # When a sync last finished for every reachable project, and when the installation's
    # secrets were last replaced (epoch seconds); None until it first happens, and for
    # records written before these fields existed.
    last_synced_at: float | None = None
    last_rotated_at: float | None = None


class ProjectRecord(BaseModel):
    """What we last wrote to one project, so a rerun can tell drift from no-op."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    project_id: str
    name: str | None = None
    # slot ("<key>|<branch>|<n>", see lib.provisioning.spec.DesiredVar) -> {"id": Vercel env id, "fp": keyed
    # fingerprint of the value we wrote}; entries may also carry "hidden" (targets a var we
    # cannot list holds) and "seen" (when that was learnt), see lib.provisioning.reconcile.HIDDEN_RECHECK_S.
    env: dict[str, dict[str, str]] = Field(default_factory=dict)
    removed_at: float | None = None
    updated_at: float = Field(default_factory=time.time)
    # The exact bytes this record was read from (None: not read from KV): what a write of
    # it compares with (`Store.record_project`). Not stored, not compared.
    _stored: str | None = PrivateAttr(default=None)

    @property
    def stored(self) -> str | None:
        return self._stored

    @stored.setter
    def stored(self, raw: str | None) -> None:
        self._stored = raw

    def __eq__(self, other: object) -> bool:  # the bytes read are no part of the record
        if not isinstance(other, ProjectRecord):
            return NotImplemented
        return self.model_dump() == other.model_dump()


def parse_record(model: type[_M], raw: str, ident: str) -> _M:
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        raise StoreError(f"stored {model.__name__} for {ident!r} is unreadable") from None
