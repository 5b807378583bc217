"""Receiving a webhook: verify, parse, dedupe, dispatch — in that order, and at least once.

Verification comes first and fails closed: nothing about an unsigned body is parsed,
logged or stored. The envelope `id` is the dedupe key: a lease (`SET NX GET`) taken in the
same KV round trip as the installation lookup makes a concurrent duplicate wait and a
finished one a no-op; an event is marked done only after its effects are durable, and a
transient failure gives the lease back and answers 503 so Vercel redelivers and the
(idempotent) handler resumes. Event types we don't act on cost no KV call at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lib.crypto import verify_hmac_sha1
from lib.deadline import Deadline
from lib.events import HANDLERS, Event, Outcome
from lib.kv import KVError
from lib.log import get_logger
from lib.services import Services
from lib.store import EVENT_DONE_TTL_S, Installation

__all__ = ["Envelope", "Reply", "normalize_type", "receive"]

log = get_logger("webhook")

# Long enough for one handler run; short enough that a crashed run's event is retried soon.
_LEASE_S = 60

_UPGRADED = "integration-configuration.permission-upgraded"
_LEGACY = {
    "integration-configuration-permission-updated": _UPGRADED,
    "integration-configuration-permission-upgraded": _UPGRADED,
}
_FAMILIES = ("integration-configuration", "project", "deployment", "domain")


class Envelope(BaseModel):
    """Vercel's webhook envelope (vercel-api.md §3.2). Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=256)
    type: str = Field(min_length=1, max_length=128)
    created_at: float | None = Field(default=None, alias="createdAt")
    region: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    retry_after: int | None = None


def normalize_type(value: str) -> str:
    """Dotted type names; the legacy hyphenated ones map to their replacements."""
    if value in _LEGACY:
        return _LEGACY[value]
    if "." in value:
        return value
    for family in _FAMILIES:
        if value.startswith(family + "-"):
            return f"{family}.{value[len(family) + 1 :]}"
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 128 else None


def _target(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    """(configuration id, owner id) named by a payload; either may be None."""
    configuration = payload.get("configuration")
    cfg = _str(configuration.get("id")) if isinstance(configuration, dict) else None
    cfg = cfg or _str(payload.get("installationId"))
    team, user = payload.get("team"), payload.get("user")
    owner = _str(team.get("id")) if isinstance(team, dict) else None
    if owner is None and isinstance(user, dict):
        owner = _str(user.get("id"))
    return cfg, owner


def receive(body: bytes, signature: str | None, services: Services, deadline: Deadline) -> Reply:
    """Handle one delivery. Never raises for bad input; KV trouble answers 503."""
    if not verify_hmac_sha1(services.settings.client_secret, body, signature):
        return Reply(403, {"error": "invalid signature"})
    try:
        envelope = Envelope.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return Reply(400, {"error": "malformed event"})
    kind = normalize_type(envelope.type)
    handler = HANDLERS.get(kind)
    if handler is None:
        log.debug("event ignored", extra={"type": kind, "event_id": envelope.id})
        return Reply(200, {"status": "ignored"})
    cfg, owner = _target(envelope.payload)
    if cfg is None and owner is None:
        return Reply(200, {"status": "ignored", "reason": "no installation named"})
    try:
        return _dispatch(envelope, kind, cfg, owner, services, deadline)
    except KVError as exc:
        log.warning(
            "event deferred: KV unavailable", extra={"event_id": envelope.id, "error": str(exc)}
        )
        return Reply(503, {"status": "retry"}, retry_after=10)


def _dispatch(
    envelope: Envelope,
    kind: str,
    cfg: str | None,
    owner: str | None,
    services: Services,
    deadline: Deadline,
) -> Reply:
    store = services.store
    event_key = store.key("event", envelope.id)
    lookup = (
        ["GET", store.key("inst", cfg)] if cfg else ["SMEMBERS", store.key("owner", owner or "")]
    )
    claim, found = store.kv.pipeline(
        [["SET", event_key, "processing", "NX", "GET", "EX", _LEASE_S], lookup]
    )
    if claim == "done":
        return Reply(200, {"status": "duplicate"})
    if claim is not None:
        return Reply(503, {"status": "in progress"}, retry_after=15)

    installations = _installations(found, cfg, services)
    event = Event(
        id=envelope.id,
        type=kind,
        created_at=envelope.created_at,
        payload=envelope.payload,
        configuration_id=cfg,
        owner_id=owner,
    )
    outcome: Outcome = "ignored"
    try:
        handler = HANDLERS[kind]
        for inst in installations:
            result = handler(event, inst, services, deadline)
            outcome = "retry" if "retry" in (outcome, result) else result
        if not installations and kind == "integration-configuration.removed" and cfg:
            outcome = HANDLERS[kind](event, None, services, deadline)
    except BaseException:
        store.kv.call("DEL", event_key, idempotent=True)
        raise
    if outcome == "retry":
        store.kv.call("DEL", event_key, idempotent=True)
        return Reply(503, {"status": "retry"}, retry_after=30)
    store.kv.call("SET", event_key, "done", "EX", EVENT_DONE_TTL_S, idempotent=True)
    log.info("event handled", extra={"type": kind, "event_id": envelope.id, "outcome": outcome})
    return Reply(200, {"status": outcome})


def _installations(found: Any, cfg: str | None, services: Services) -> list[Installation]:
    if cfg:
        return [services.store.parse_installation(found, cfg)] if found else []
    ids = sorted(found or [])
    if not ids:
        return []
    raws = services.store.kv.pipeline(
        [["GET", services.store.key("inst", i)] for i in ids], idempotent=True
    )
    return [
        services.store.parse_installation(raw, i) for i, raw in zip(ids, raws, strict=True) if raw
    ]
