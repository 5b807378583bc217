"""Signed webhook delivery with Vercel's timeout and retry rules (vercel-api.md §3).

- Envelope `{id, type, createdAt, region, payload}` (§3.2); the raw body is fixed at
  enqueue time, so every retry of an event carries the same bytes and the same `id`.
- `x-vercel-signature`: lowercase hex HMAC-SHA1 of the raw body keyed by the client
  secret (§3.4). During a client-secret rotation (`previous_client_secret` set) the
  secret that signs is chosen per attempt by `webhook_signer` ("current" or
  "previous"): Vercel sends one signature header, and whether it signs with the old or
  the new secret while both are valid is not documented, so a receiver must accept both.
- A 2xx within `webhook_timeout_s` (30 s) is success; anything else is retried with
  exponential backoff (base 60 s, doubling) until 24 h after the first attempt, then the
  delivery is given up (§3.5: "exponential backoff for up to 24 hours"; the exact
  schedule is not published, this one is the emulator's). `time_scale` compresses the
  delays, never the timeout.
- Background worker threads deliver, so a state change never waits on the receiver;
  ordering between events is not guaranteed, as with Vercel (§3.5).
- While a configuration is disabled its deliveries are held ("paused") except
  `project.created`, `project.removed` and `integration-configuration.removed` (§3.1).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from dev.emulator.clock import Clock
from dev.emulator.config import EmulatorConfig
from dev.emulator.ids import new_id

__all__ = ["Attempt", "Delivery", "WebhookSender", "sign", "signing_secret"]

_ACTIVE = frozenset({"queued", "delivering", "retrying"})
_FINAL = frozenset({"delivered", "failed", "skipped", "dropped"})
_MAX_LOG = 10_000  # settled deliveries kept for inspection; older ones are forgotten


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def signing_secret(settings: EmulatorConfig) -> str:
    """The client secret that signs now: the previous one only while asked to."""
    if settings.webhook_signer == "previous" and settings.previous_client_secret:
        return settings.previous_client_secret
    return settings.client_secret


@dataclass
class Attempt:
    at: int  # epoch ms
    status: int | None
    error: str | None
    duration_ms: float


@dataclass
class Delivery:
    """One event on its way to the integration's Webhook URL, with every attempt."""

    id: str  # the emulator's record id
    event_id: str  # the envelope `id`, identical across retries and redeliveries
    type: str
    configuration_id: str
    body: bytes
    created_at: int
    state: str = "queued"
    attempts: list[Attempt] = field(default_factory=list)
    waited_s: float = 0.0  # unscaled backoff so far, against the 24 h window
    first_attempt: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "eventId": self.event_id,
            "type": self.type,
            "configurationId": self.configuration_id,
            "state": self.state,
            "createdAt": self.created_at,
            "attempts": [
                {"at": a.at, "status": a.status, "error": a.error, "durationMs": a.duration_ms}
                for a in self.attempts
            ],
            "envelope": json.loads(self.body),
        }


class WebhookSender:
    """A scheduled queue of deliveries and the worker threads that send them."""

    def __init__(self, settings: Callable[[], EmulatorConfig], clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._log: dict[str, Delivery] = {}
        self._active: set[str] = set()
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._in_flight = 0
        self._http = httpx.Client(trust_env=False, follow_redirects=False)

    # -- producing

    def enqueue(
        self,
        event_type: str,
        payload: dict[str, Any],
        configuration_id: str,
        *,
        paused: bool = False,
    ) -> Delivery:
        settings = self._settings()
        created = self._clock.now_ms()
        envelope = {
            "id": new_id(""),
            "type": event_type,
            "createdAt": created,
            "region": settings.region,
            "payload": payload,
        }
        body = json.dumps(envelope, separators=(",", ":")).encode()
        return self._add(
            Delivery(
                id=new_id("dlv_", length=16),
                event_id=str(envelope["id"]),
                type=event_type,
                configuration_id=configuration_id,
                body=body,
                created_at=created,
                state="paused" if paused else "queued",
            )
        )

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send an event again with the same envelope: a duplicate, as at-least-once allows."""
        with self._cond:
            original = self._log.get(delivery_id)
        if original is None:
            raise KeyError(delivery_id)
        return self._add(
            Delivery(
                id=new_id("dlv_", length=16),
                event_id=original.event_id,
                type=original.type,
                configuration_id=original.configuration_id,
                body=original.body,
                created_at=self._clock.now_ms(),
            )
        )

    def _add(self, delivery: Delivery) -> Delivery:
        with self._cond:
            self._log[delivery.id] = delivery
            if delivery.state == "queued":
                self._active.add(delivery.id)
                self._schedule(delivery, 0.0)
                self._start_workers()
        return delivery

    def _set_state(self, delivery: Delivery, state: str) -> None:
        """Every state change goes here, so `drain` needs no scan. Call with the lock held."""
        delivery.state = state
        if state in _ACTIVE:
            self._active.add(delivery.id)
        else:
            self._active.discard(delivery.id)
        if state in _FINAL:
            delivery.first_attempt.set()
            if len(self._log) > _MAX_LOG:
                for old in [k for k, d in self._log.items() if d.state in _FINAL][: _MAX_LOG // 10]:
                    del self._log[old]

    def resume(self, configuration_id: str) -> None:
        """A re-enabled configuration gets the deliveries held while it was disabled."""
        with self._cond:
            for d in self._log.values():
                if d.configuration_id == configuration_id and d.state == "paused":
                    self._set_state(d, "queued")
                    self._schedule(d, 0.0)
            self._start_workers()

    def drop_paused(self, configuration_id: str) -> None:
        with self._cond:
            for d in self._log.values():
                if d.configuration_id == configuration_id and d.state == "paused":
                    self._set_state(d, "dropped")
            self._cond.notify_all()

    # -- observing

    def deliveries(self) -> list[dict[str, Any]]:
        with self._cond:
            return [d.to_json() for d in self._log.values()]

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued, in flight or waiting to retry (paused excluded)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    @staticmethod
    def wait_first_attempts(deliveries: Iterable[Delivery], timeout: float) -> bool:
        """Wait for each delivery's first attempt; held (paused) ones are not waited for."""
        deadline = time.monotonic() + timeout
        sent = [d for d in deliveries if d.state != "paused"]
        return all(d.first_attempt.wait(max(0.0, deadline - time.monotonic())) for d in sent)

    def pending(self) -> int:
        with self._cond:
            return len(self._active)

    # -- lifecycle

    def reset(self, timeout: float | None = None) -> None:
        """Forget every delivery, then wait (bounded) for attempts already on the wire,
        so nothing from before the reset reaches the receiver after it."""
        limit = self._settings().webhook_timeout_s + 1 if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._cond:
            self._heap.clear()
            for d in self._log.values():
                d.first_attempt.set()
            self._log.clear()
            self._active.clear()
            self._cond.notify_all()
            while self._in_flight and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
        for worker in self._workers:
            worker.join(timeout=2)
        self._http.close()

    # -- sending

    def _schedule(self, delivery: Delivery, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))
        self._cond.notify()

    def _start_workers(self) -> None:
        wanted = self._settings().webhook_concurrency
        self._workers = [w for w in self._workers if w.is_alive()]
        while not self._closed and len(self._workers) < wanted:
            worker = threading.Thread(
                target=self._work, name=f"emulator-webhooks-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
            worker.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                delivery = self._next_due()
                if delivery is None:
                    return
                self._set_state(delivery, "delivering")
                self._in_flight += 1
            attempt = self._send(delivery)
            with self._cond:
                self._in_flight -= 1
                self._record(delivery, attempt)
                self._cond.notify_all()

    def _next_due(self) -> Delivery | None:
        """Block until a delivery is due; None once closed. Call with the lock held."""
        while not self._closed:
            if self._heap:
                due, _, delivery = self._heap[0]
                wait = due - time.monotonic()
                if wait <= 0:
                    heapq.heappop(self._heap)
                    if delivery.state in ("queued", "retrying") and delivery.id in self._log:
                        return delivery
                    continue
                self._cond.wait(wait)
            else:
                self._cond.wait()
        return None

    def _send(self, delivery: Delivery) -> Attempt:
        settings = self._settings()
        at = self._clock.now_ms()
        if not settings.webhook_url:
            return Attempt(at, None, "no webhook_url configured", 0.0)
        headers = {
            "Content-Type": "application/json",
            "x-vercel-signature": sign(delivery.body, signing_secret(settings)),
            "User-Agent": "vercel-emulator-webhooks/1",
        }
        started = time.monotonic()
        try:
            response = self._http.post(
                settings.webhook_url,
                content=delivery.body,
                headers=headers,
                timeout=settings.webhook_timeout_s,
            )
            status: int | None = response.status_code
            error = None
        except Exception as exc:  # any failure to deliver is a failed attempt, never a dead worker
            status, error = None, type(exc).__name__
        return Attempt(at, status, error, round((time.monotonic() - started) * 1000, 1))

    def _record(self, delivery: Delivery, attempt: Attempt) -> None:
        delivery.attempts.append(attempt)
        delivery.first_attempt.set()
        if delivery.id not in self._log:  # reset while in flight
            return
        if attempt.status is not None and 200 <= attempt.status < 300:
            self._set_state(delivery, "delivered")
            return
        settings = self._settings()
        if not settings.webhook_url:
            self._set_state(delivery, "skipped")
            return
        delay = settings.webhook_retry_base_s * 2 ** (len(delivery.attempts) - 1)
        if delivery.waited_s + delay > settings.webhook_retry_window_s:
            self._set_state(delivery, "failed")
            return
        delivery.waited_s += delay
        self._set_state(delivery, "retrying")
        self._schedule(delivery, delay * settings.time_scale)
