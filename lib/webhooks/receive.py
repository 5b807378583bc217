"""Receiving a webhook: verify, parse, dedupe, dispatch — in that order, and at least once.

Verification comes first and fails closed: nothing about an unsigned body is parsed,
logged or stored. The envelope `id` is the dedupe key: a lease (`SET NX GET` with a
value unique to this attempt, so the call can be retried safely after a lost answer)
taken in the same KV round trip as the installation lookup makes a concurrent duplicate
back off and a finished one a no-op. An event is marked done only after its effects are
durable; a transient failure gives the lease back and answers 503 so Vercel redelivers
and the (idempotent) handler resumes. Event types we don't act on cost no KV call at all,
a duplicate one, an event for an unknown installation two.

A stale delivery is refused before any KV call: an event whose `createdAt` is older
than the dedupe window (`EVENT_DONE_TTL_S`, 48 h; Vercel retries for 24 h) is
acknowledged and ignored, with an audit log line, so a captured genuine delivery cannot
be applied again once its dedupe mark has expired.

An uninstall can land while another event's handler is still working. The store then
refuses every write of the installation (`Gone`, see `lib.kv.store`): the handler stops
and the event is acknowledged. The round trip that marks an event done also checks the
installation still exists and, if not, deletes it again (which only renews the
tombstone: nothing can have been written after it).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lib.app import Services
from lib.crypto import verify_hmac_sha1
from lib.deadline import Deadline
from lib.kv.client import KVError
from lib.kv.store import EVENT_DONE_TTL_S, Gone
from lib.log import bind, get_logger, unbind
from lib.webhooks.handlers import HANDLERS, Event, Outcome, Target

__all__ = ["Envelope", "Reply", "normalize_type", "receive"]

log = get_logger("webhook")

# An event created further ahead of our clock than this is logged (clock skew).
_FUTURE_S = 300
_REMOVED = "integration-configuration.removed"

_UPGRADED = "integration-configuration.permission-upgraded"
_LEGACY = {
    "integration-configuration-permission-updated": _UPGRADED,
    "integration-configuration-permission-upgraded": _UPGRADED,
}
_FAMILIES = ("integration-configuration", "project", "deployment", "domain")


class Envelope(BaseModel):
    """Vercel's webhook envelope (vercel-api.md §3.2). Unknown fields are ignored.

    `createdAt` is documented as a Date and is epoch ms in practice; anything else (or
    nothing) counts as unknown rather than refusing an event we can otherwise handle.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    id: str = Field(min_length=1, max_length=256)
    type: str = Field(min_length=1, max_length=128)
    created_at: float | None = Field(default=None, alias="createdAt")
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("created_at", mode="before")
    @classmethod
    def _time(cls, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        number = float(value)
        return number if math.isfinite(number) and number > 0 else None

    @field_validator("payload", mode="before")
    @classmethod
    def _payload(cls, value: Any) -> Any:
        return {} if value is None else value


@dataclass(frozen=True)
class Reply:
    """What to answer Vercel: any 2xx ends the delivery, anything else is retried."""

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


def _age(envelope: Envelope, now: float | None = None) -> float | None:
    """Seconds since the event was created (epoch ms, or s if small; negative when the
    sender's clock is ahead); None when unknown."""
    at = envelope.created_at
    if at is None:
        return None
    return (time.time() if now is None else now) - (at / 1000 if at > 1e11 else at)


def _stale(envelope: Envelope, now: float | None = None) -> bool:
    """Created longer ago than the dedupe window remembers. Of unknown age: not judged
    (Vercel documents `createdAt` on every event; the handlers never let an event of
    unknown age win a watermark, and the id's dedupe mark still holds for 48 h)."""
    age = _age(envelope, now)
    return age is not None and age > EVENT_DONE_TTL_S


def _refused(reason: str, **fields: Any) -> None:
    """The audit line of a refused delivery: the reason, never a byte of an unverified
    body (a stale one is verified: its type, id and time are named)."""
    log.warning(
        "audit: webhook refused", extra={"event": "webhook_refused", "reason": reason, **fields}
    )


def receive(body: bytes, signature: str | None, services: Services, deadline: Deadline) -> Reply:
    """Handle one delivery. Never raises for bad input; KV trouble answers 503."""
    if not signature:
        _refused("missing signature")
        return Reply(401, {"error": "unauthorized"})
    # Every secret is checked (no early exit), each in constant time: the old one too
    # while a client-secret rotation is under way (VERCEL_CLIENT_SECRET_PREVIOUS).
    checks = [verify_hmac_sha1(s, body, signature) for s in services.settings.webhook_secrets]
    if not any(checks):
        _refused("bad signature")
        return Reply(403, {"error": "forbidden"})
    try:
        envelope = Envelope.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):
        _refused("malformed")
        return Reply(400, {"error": "malformed event"})
    kind = normalize_type(envelope.type)
    if kind not in HANDLERS:
        log.debug("event ignored", extra={"type": kind, "event_id": envelope.id})
        return Reply(200, {"status": "ignored"})
    if _stale(envelope):
        _refused("stale", type=kind, event_id=envelope.id, created_at=envelope.created_at)
        return Reply(200, {"status": "ignored", "reason": "stale"})
    age = _age(envelope)
    if age is not None and age < -_FUTURE_S:
        # Handled, with its time taken as now (see lib.webhooks.handlers._event_time).
        log.warning(
            "event created in the future (clock skew)",
            extra={"event_id": envelope.id, "type": kind, "ahead_s": round(-age)},
        )
    cfg, owner = _target(envelope.payload)
    if cfg is None and owner is None:
        return Reply(200, {"status": "ignored", "reason": "no installation named"})
    event = Event(
        id=envelope.id,
        type=kind,
        created_at=envelope.created_at,
        payload=envelope.payload,
        configuration_id=cfg,
        owner_id=owner,
    )
    scope = bind(event_id=event.id, configuration_id=cfg, owner_id=owner)  # on every line
    try:
        return _dispatch(event, services, deadline)
    except KVError as exc:
        log.warning(
            "event deferred: KV unavailable", extra={"event_id": event.id, "error": str(exc)}
        )
        return Reply(503, {"status": "retry"}, retry_after=10)
    finally:
        unbind(scope)


def _dispatch(event: Event, services: Services, deadline: Deadline) -> Reply:
    store = services.store
    claim = store.claim_event(
        event.id, configuration_id=event.configuration_id, owner_id=event.owner_id
    )
    if claim.status == "done":
        return Reply(200, {"status": "duplicate"})
    if claim.status == "busy":
        return Reply(503, {"status": "in progress"}, retry_after=15)
    try:
        targets = [Target(s.installation, s.pending) for s in store.event_installations(claim)]
        outcome = _settle(event, targets, _run(event, targets, services, deadline), services)
    except BaseException:
        store.release_event(event.id)
        raise
    if outcome == "retry":
        return Reply(503, {"status": "retry"}, retry_after=30)
    log.info("event handled", extra={"type": event.type, "event_id": event.id, "outcome": outcome})
    return Reply(200, {"status": outcome})


def _run(event: Event, targets: list[Target], services: Services, deadline: Deadline) -> Outcome:
    handler = HANDLERS[event.type]
    if not targets:
        # An uninstall we have no record of may still have left keys behind: sweep them.
        return handler(event, None, services, deadline) if event.type == _REMOVED else "ignored"
    outcome: Outcome = "ignored"
    for target in targets:
        try:
            result = handler(event, target, services, deadline)
        except Gone:
            # Uninstalled while the handler worked: it wrote nothing after that.
            log.info(
                "installation uninstalled meanwhile",
                extra={
                    "event_id": event.id,
                    "configuration_id": target.installation.configuration_id,
                },
            )
            continue
        if "retry" in (outcome, result):
            outcome = "retry"
        elif "applied" in (outcome, result):
            outcome = "applied"
    return outcome


def _settle(event: Event, targets: list[Target], outcome: Outcome, services: Services) -> Outcome:
    """Mark the event done (or give the lease back for a retry), in the same round trip
    checking that its installations still exist; sweep up after any that vanished."""
    store = services.store
    check = targets if event.type != _REMOVED else []
    exists = store.settle_event(
        event.id,
        done=outcome != "retry",
        still_installed=[t.installation.configuration_id for t in check],
    )
    vanished = [t.installation for t, there in zip(check, exists, strict=True) if not there]
    for inst in vanished:
        owners = {inst.owner_id, event.owner_id, event.text("newTeamId")}
        store.delete_installation(inst.configuration_id, sorted(o for o in owners if o))
    if outcome == "retry" and check and len(vanished) == len(check):
        return "ignored"  # uninstalled meanwhile: nothing left to retry for
    return outcome
