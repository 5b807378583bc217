"""Provisioning that does not fit one invocation continues on Vercel Queues.

A chain of messages per installation carries the work forward: the install callback (or
a webhook, or the sweep) provisions what fits its budget and, when the installation is
left pending, publishes the first message; each delivery to `api/queue_consumer.py`
reconciles the projects after its cursor within a budget and publishes the next message
while work remains. One message in flight per installation is the per-team concurrency
(https://vercel.com/docs/queues/concepts: at-least-once, delays, idempotency keys).

The message carries ids only and is signed:

    {"v": 1, "installation": "icfg_…", "generation": G, "hop": h, "cursor": "prj_…",
     "stall": s, "skipped": false, "mac": "<hex HMAC-SHA256>"}

* `generation` is when the chain started (epoch seconds): a new chain for the same
  installation has new keys, so the queue's deduplication window never swallows it.
* `hop` counts messages in the chain: after a 429 the next message may carry the same
  cursor, and must not be deduplicated against the one being handled.
* `cursor` is the last project id (in id order) up to which every project is done or
  skipped: projects with a larger id are the work left.
* `stall` counts hops in a row that made no progress without a rate limit (each backs
  off longer; after `MAX_STALLS` the chain stops and the sweep takes over), `skipped`
  says a project failed for good somewhere in the chain (the sweep gets it back).
* `mac` is HMAC-SHA256 over the canonical JSON of the other fields, keyed by
  `Keyring.derive("queue-continuation")`: a key only this deployment holds (derived from
  TOKEN_ENCRYPTION_KEY, never used for anything else). The integration's client secret
  was not chosen: Vercel holds it too and it signs Vercel's webhooks, a different role.
  A consumer refuses a message whose mac does not verify before any other work.

The idempotency key is a pure function of the message (installation, generation, hop,
cursor, stall, skipped), so the payload is determined by the key: the SDK's embedded queue
deduplicates on key and payload, the hosted one on the key alone, and both then agree.

Publishing imports the SDK (`vercel-queue`) only when a message is sent: functions that
never continue work (most invocations) pay nothing for it at cold start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from lib.crypto import Keyring
from lib.deadline import Deadline
from lib.kv.store import Gone
from lib.log import get_logger
from lib.provisioning.reconcile import Provisioner
from lib.provisioning.reports import InstallationReport
from lib.vercel.client import VercelClient
from lib.vercel.errors import DeadlineExceeded, RateLimited, VercelError

__all__ = [
    "CONSUMER_BUDGET_S",
    "MAX_HOPS",
    "MAX_STALLS",
    "TOPIC",
    "Forged",
    "Message",
    "Outcome",
    "continue_later",
    "handle",
    "mac_key",
    "publish",
    "verify",
]

TOPIC = "provision"
VERSION = 1
# A delivery is one function invocation (maxDuration 60 s in vercel.json); stop starting
# work well before, so the reconcile's writes are recorded and the next message sent.
CONSUMER_BUDGET_S = 40.0
# A chain that has not converged after this many messages stops; the installation stays
# pending and the cron sweep takes it from there. 1,000 projects at 300 creates a minute
# took 9 messages (dev/queue/README.md), so this only stops a runaway chain.
MAX_HOPS = 10_000
# Hops in a row that moved nothing and saw no 429: the failure is one the queue's retries
# do not fix (a project Vercel keeps refusing, a broken token that still lists). With the
# 2**stall backoff this gives up after about 8 minutes; the installation stays pending and
# the sweep retries it, so a broken installation is never retried by the queue for good.
MAX_STALLS = 8
# No delay may exceed the queue's retention (24 h on the conservative reading of
# https://vercel.com/docs/queues/pricing); a rate limit never asks for more than minutes.
MAX_DELAY_S = 3600.0
# When Vercel says 429 without saying until when: its buckets are per minute
# ("many of our APIs use 1 minute rate limit buckets", vercel-api.md).
_DEFAULT_RESET_S = 60.0
# Spreads many chains released by one reset over a second, as the client's own retries do.
_JITTER_S = 1.0
# Failures of one project that a later hop may well not see again: the cursor waits for
# them. Anything else (a 403 on one project, a bad request) is skipped past; the
# installation is left pending, so the sweep retries it later.
_TRANSIENT = (
    "not started",
    "rate_limited",
    "deadline_exceeded",
    "network_error",
    "server_error",
    "storage",
    "changing under us",
    "unexpected_response",
    "not created",
)
_FIELDS = ("v", "installation", "generation", "hop", "cursor", "stall", "skipped")
_MAX_BODY = 4096

log = get_logger("continuation")

Outcome = Literal["gone", "settled", "stopped", "done", "continued", "abandoned"]


class Forged(Exception):
    """A delivery whose body is not a message we signed: refused before any work."""


class Publisher(Protocol):
    def __call__(self, message: Message, key: bytes, *, delay: float) -> None: ...


@dataclass(frozen=True)
class Message:
    installation: str
    generation: int
    hop: int = 0
    cursor: str = ""
    stall: int = 0
    skipped: bool = False

    def fields(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "installation": self.installation,
            "generation": self.generation,
            "hop": self.hop,
            "cursor": self.cursor,
            "stall": self.stall,
            "skipped": self.skipped,
        }

    def canonical(self) -> bytes:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def idempotency_key(self) -> str:
        flag = "s" if self.skipped else "-"
        return f"{self.installation}:{self.generation}:{self.hop}:{self.cursor}:{self.stall}{flag}"

    def signed(self, key: bytes) -> dict[str, Any]:
        """The payload to publish: the fields and their mac."""
        mac = hmac.new(key, self.canonical(), hashlib.sha256).hexdigest()
        return {**self.fields(), "mac": mac}

    def successor(
        self, cursor: str, *, skipped: bool, progressed: bool, limited: bool = False
    ) -> Message:
        """The next hop. A rate-limited hop that moved nothing is waiting, not stalling."""
        stall = 0 if progressed else self.stall if limited else self.stall + 1
        return replace(
            self,
            hop=self.hop + 1,
            cursor=cursor,
            stall=stall,
            skipped=self.skipped or skipped,
        )


def mac_key(keyring: Keyring) -> bytes:
    """The key that signs continuation messages (see the module doc)."""
    return keyring.derive("queue-continuation")


def verify(body: bytes, key: bytes) -> Message:
    """The message in a delivery's body, if and only if its mac verifies. Raises `Forged`.

    Only parsing and one HMAC happen before the comparison: no KV, no Vercel call.
    """
    if len(body) > _MAX_BODY:
        raise Forged("message too large")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Forged("not JSON") from None
    if not isinstance(raw, dict) or set(raw) != {*_FIELDS, "mac"}:
        raise Forged("not a continuation message")
    mac = raw.pop("mac")
    try:
        message = Message(
            installation=_typed(raw["installation"], str),
            generation=_typed(raw["generation"], int),
            hop=_typed(raw["hop"], int),
            cursor=_typed(raw["cursor"], str),
            stall=_typed(raw["stall"], int),
            skipped=_typed(raw["skipped"], bool),
        )
    except TypeError:
        raise Forged("malformed field") from None
    expected = hmac.new(key, message.canonical(), hashlib.sha256).hexdigest()
    given = mac if isinstance(mac, str) else ""
    # Constant time; and the canonical form must be what was signed (version included).
    if raw.get("v") != VERSION or not hmac.compare_digest(
        expected.encode(), given.encode("utf-8", "replace")
    ):
        raise Forged("bad mac")
    return message


def _typed(value: Any, kind: type[Any]) -> Any:
    # bool is an int in Python: a True generation is as malformed as a string one.
    if type(value) is not kind:
        raise TypeError(kind.__name__)
    return value


# --------------------------------------------------------------------------- publishing


def publish(message: Message, key: bytes, *, delay: float = 0.0) -> None:
    """Send `message` to the queue (the SDK resolves its region, deployment and OIDC
    token from the environment Vercel sets, https://vercel.com/docs/oidc)."""
    from vercel.queue.sync import (  # type: ignore[import-not-found,unused-ignore]
        send,  # lazy: see the module doc
    )

    send(
        TOPIC,
        message.signed(key),
        idempotency_key=message.idempotency_key,
        delay=min(MAX_DELAY_S, max(0.0, delay)) or None,
    )


def continue_later(
    services: Any,
    configuration_id: str,
    report: InstallationReport | None = None,
    *,
    publisher: Publisher = publish,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Start a chain for an installation a run left pending; True when a message went out.

    For the call sites (callback, webhook, sweep): after a reconcile whose report says
    `pending`, or without a report when the caller could not provision at all. Never
    raises: if the queue cannot be reached the installation stays pending and the cron
    sweep resumes it, as before the queue existed.
    """
    if report is not None and not report.pending:
        return False
    if report is not None and report.outcome in ("paused", "broken", "blocked", "unknown"):
        return False  # nothing a retry can do until the user acts (or it is gone)
    if publisher is publish and not (
        os.environ.get("VERCEL_REGION") or os.environ.get("VERCEL_QUEUE_BASE_URL")
    ):
        # Not on Vercel and no local queue (a bare test server): nothing to publish to.
        log.info(
            "no queue configured; left to the sweep", extra={"configuration_id": configuration_id}
        )
        return False
    cursor = "" if report is None else advance("", report)[0]
    message = Message(configuration_id, int(clock()), cursor=cursor or "")
    try:
        publisher(message, mac_key(services.store.keyring), delay=0.0)
    except Exception as exc:  # the sweep is the backstop; never fail the caller
        log.warning(
            "continuation not queued; left to the sweep",
            extra={"configuration_id": configuration_id, "error": type(exc).__name__},
        )
        return False
    return True


# --------------------------------------------------------------------------- consuming


def advance(cursor: str, report: InstallationReport) -> tuple[str | None, bool]:
    """Where the next message starts, and whether a project was skipped for good.

    The report's projects, in id order after `cursor`: the cursor moves over every
    project that is done or failed for good, and stops before the first one that failed
    for a reason a later hop may not see (rate limit, out of time). None: nothing is left.
    """
    skipped = False
    reached = cursor
    for project in sorted(report.projects, key=lambda p: p.project_id):
        if project.project_id <= cursor:
            continue
        if not project.complete:
            if any(e.startswith(_TRANSIENT) for e in project.errors) or not project.errors:
                return reached, skipped
            skipped = True
        reached = project.project_id
    return None, skipped


def handle(
    message: Message,
    services: Any,
    deadline: Deadline,
    *,
    publisher: Publisher = publish,
    clock: Callable[[], float] = time.time,
    jitter: Callable[[], float] = random.random,
) -> Outcome:
    """One delivery, already verified. Raises for transient failures (KV, Vercel 5xx
    on the listing): the queue then redelivers, up to the trigger's maxDeliveries."""
    store = services.store
    cfg = message.installation
    inst = store.get_installation(cfg)
    if inst is None:  # uninstalled (a tombstone reads as None): queued work is void
        return "gone"
    if not store.is_pending(cfg):  # another run finished it: this chain is done
        return "settled"
    if message.hop >= MAX_HOPS or message.stall >= MAX_STALLS:
        log.warning(
            "continuation chain stopped; left to the sweep",
            extra={"configuration_id": cfg, "hop": message.hop, "stall": message.stall},
        )
        return "abandoned"
    gate = RateGate(clock)
    settings = services.settings
    provisioner = Provisioner(
        store,
        services.spec,
        api_url=settings.vercel_api_url,
        timeout_s=settings.vercel_timeout_s,
        client_factory=gate.client,
    )
    key = mac_key(store.keyring)
    try:
        projects = provisioner.projects(provisioner.client(inst, deadline), inst)
    except (RateLimited, DeadlineExceeded):
        following = message.successor(
            message.cursor, skipped=False, progressed=False, limited=gate.reset_at is not None
        )
        publisher(following, key, delay=gate.delay(jitter))
        return "continued"
    except VercelError as exc:
        if exc.retryable:
            raise
        # Disabled, revoked, no permission: the full reconcile records why, and stops.
        provisioner.reconcile(cfg, deadline, installation=inst)
        return "stopped"
    todo = sorted((p for p in projects if p.id > message.cursor), key=lambda p: p.id)
    started = time.time()  # the mark's clock (wall time), not the rate gate's
    report = provisioner.reconcile(cfg, deadline, projects=todo, installation=inst)
    if report.outcome == "unknown":
        return "gone"
    if report.outcome in ("paused", "broken", "blocked"):
        return "stopped"
    cursor, skipped = advance(message.cursor, report)
    if cursor is None:
        if message.skipped or skipped:
            try:  # a project failed for good on the way: the sweep retries it
                store.mark_pending(cfg)
            except Gone:
                return "gone"
        else:
            # The chain has covered every project; its runs are scoped, so none cleared
            # the mark: clear it unless another run marked it after this part began.
            store.clear_pending(cfg, started=started)
        return "done"
    progressed = cursor != message.cursor
    limited = gate.reset_at is not None
    following = message.successor(cursor, skipped=skipped, progressed=progressed, limited=limited)
    delay = gate.delay(jitter)
    if not progressed and not limited:
        delay = min(300.0, 2.0 ** min(following.stall, 8))  # failing without a 429: back off
    publisher(following, key, delay=delay)
    return "continued"


class RateGate:
    """Vercel clients for one delivery that stop at the first 429 they cannot wait out.

    The client already waits out a 429 within the deadline (`Retry-After` or
    `limit.reset`). When one still surfaces, every later call of this delivery fails at
    once instead of adding to the 429s, and `delay()` tells the next message when the
    bucket refills, so the wait happens in the queue, not in a running function.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.reset_at: float | None = None

    def client(self, *args: Any, **kwargs: Any) -> _GatedClient:
        return _GatedClient(VercelClient(*args, **kwargs), self)

    def trip(self, exc: VercelError) -> None:
        wait = exc.retry_after if exc.retry_after is not None else _DEFAULT_RESET_S
        with self._lock:
            at = self._clock() + wait
            self.reset_at = at if self.reset_at is None else max(self.reset_at, at)

    def check(self) -> None:
        with self._lock:
            at = self.reset_at
        if at is not None:
            left = max(0.0, at - self._clock())
            raise RateLimited("rate limited earlier in this delivery", status=429, retry_after=left)

    def delay(self, jitter: Callable[[], float] = random.random) -> float:
        if self.reset_at is None:
            return 0.0
        return min(MAX_DELAY_S, max(0.0, self.reset_at - self._clock()) + jitter() * _JITTER_S)


def _rate_limited(exc: VercelError) -> bool:
    if isinstance(exc, RateLimited):
        return True
    return isinstance(exc, DeadlineExceeded) and isinstance(exc.last_error, RateLimited)


class _GatedClient:
    """A `VercelClient` whose calls pass through a `RateGate`."""

    def __init__(self, inner: VercelClient, gate: RateGate) -> None:
        self._inner = inner
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def gated(*args: Any, **kwargs: Any) -> Any:
            self._gate.check()
            try:
                return attr(*args, **kwargs)
            except VercelError as exc:
                if _rate_limited(exc):
                    self._gate.trip(exc)
                raise

        return gated
