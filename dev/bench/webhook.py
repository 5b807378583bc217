"""Webhook receiver: how many events one process verifies, parses and dedupes per second,
and how long a `project.created` takes end to end against a Vercel 40 ms away.

Throughput (`webhook_events_per_s`, goal >= 2,000): `lib.webhooks.receive.receive` in one thread
(one core) on fresh, validly signed `project.created` events naming a scope we have no
installation for, which is the full verify → parse → dedupe path: the lease and the lookup
in one KV round trip, the "done" mark in a second. The KV is the Upstash-protocol gateway
with its embedded engine, called in-process through `httpx.WSGITransport`, so the figure is
our code and the SDK, not a network. Duplicates (one round trip) and event types we ignore
(none) are reported alongside.

The machine's load moves that figure by a factor of two from run to run, so it is also
expressed as a ratio to the KV-bound limit measured in the same run (`webhook_vs_kv_bound`,
goal >= 0.8): the round trips the events made are recorded at the transport and replayed
through the same KV client against the same gateway, with nothing of ours around them;
(round trips/s ÷ round trips per event) is the rate the events could reach if the KV were
all they cost. Each event is followed at once by the replay of its own round trips, so a
change in the machine's load hits both sides of the ratio alike; the spread of the ratio
over `ROUNDS` slices of the run is reported with it.

Latency (`webhook_project_created_p50_ms` / `_p99_ms`): the real stack over HTTP (the
functions' dev server, the emulator, the KV gateway on the embedded engine) with 40 ms
added to every Vercel API call. A project is created through the emulator's control API;
its webhook is delivered to /webhook, which reads the project, lists its env and creates
the vars before answering. The figure is the delivery's duration as the emulator's sender
measured it, i.e. what Vercel would see.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from dev import serve
from dev.bench import ROOT, print_table
from dev.kv_engine import Engine
from dev.kv_gateway import create_app as create_gateway

__all__ = ["run"]

THROUGHPUT_EVENTS = 4000
ROUNDS = 8  # slices of the run, for the ratio's spread
GOAL_VS_KV_BOUND = 0.8
LATENCY_SAMPLES = 60
LATENCY_MS = 40.0
GOAL_PER_S = 2000.0
_KV_TOKEN = secrets.token_hex(16)


def _env(kv_url: str, api_url: str = "http://127.0.0.1:9", redirect: str = "") -> dict[str, str]:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {
        "VERCEL_CLIENT_ID": "oac_devclient0000000000000000",
        "VERCEL_CLIENT_SECRET": "bench-" + secrets.token_hex(16),
        "TOKEN_ENCRYPTION_KEY": f"bench:{key}",
        "UPSTASH_REDIS_REST_URL": kv_url,
        "UPSTASH_REDIS_REST_TOKEN": _KV_TOKEN,
        "VERCEL_API_URL": api_url,
        "VERCEL_DASHBOARD_URL": api_url,
        "INTEGRATION_SPEC_PATH": str(ROOT / "integration.toml"),
        # The functions set this level when they build their services: one JSON line per
        # request would bury the table (and cost time).
        "LOG_LEVEL": "WARNING",
    }
    if redirect:
        env["VERCEL_REDIRECT_URI"] = redirect
    return env


def _services(env: dict[str, str], transport: httpx.BaseTransport) -> Any:
    """Services built by hand around a KV client that reaches the gateway in-process."""
    from lib.app import Services
    from lib.crypto import Keyring
    from lib.kv.client import KV
    from lib.kv.store import Store
    from lib.provisioning.reconcile import Provisioner
    from lib.provisioning.spec import load_spec
    from lib.settings import load_settings

    settings = load_settings(env)
    kv = KV(settings.kv.url, settings.kv.token, transport=transport)
    store = Store(kv, Keyring(settings.encryption_key), settings.key_prefix)
    spec = load_spec(settings.spec_path)
    provisioner = Provisioner(store, spec, api_url=settings.vercel_api_url)
    return Services(settings=settings, store=store, spec=spec, provisioner=provisioner)


def _signed(secret: str, kind: str, n: int, event_id: str | None = None) -> tuple[bytes, str]:
    from lib.crypto import hmac_sha1_hex

    envelope = {
        "id": event_id or f"evt_{n:08d}_{secrets.token_hex(4)}",
        "type": kind,
        # Now: a delivery older than the dedupe window is refused before any KV call.
        "createdAt": int(time.time() * 1000),
        "region": "iad1",
        "payload": {
            "team": {"id": "team_nobody"},
            "user": {"id": "user_bench"},
            "project": {"id": f"prj_{n:08d}", "name": f"project-{n}"},
        },
    }
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return body, hmac_sha1_hex(secret, body)


def _rate(services: Any, batch: list[tuple[bytes, str]], expect: str) -> float:
    from lib.deadline import Deadline
    from lib.webhooks.receive import receive

    started = time.perf_counter()
    for body, signature in batch:
        reply = receive(body, signature, services, Deadline(22.0))
        if reply.body.get("status") != expect:
            raise RuntimeError(f"unexpected reply {reply.status} {reply.body}")
    return len(batch) / (time.perf_counter() - started)


class _Recorder(httpx.BaseTransport):
    """Passes requests to `inner`, keeping (path, body) of each while `recording`."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.recording = False
        self.requests: list[tuple[str, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.recording:
            self.requests.append((request.url.path, request.read()))
        return self.inner.handle_request(request)


def _replay(kv: Any, requests: list[tuple[str, bytes]]) -> None:
    """Send `requests` again through `kv`, as the store sent them.

    The Upstash REST paths (https://upstash.com/docs/redis/features/restapi): a command
    array at `/`, an array of them at `/pipeline`, or at `/multi-exec` for a transaction.
    """
    for path, body in requests:
        commands = json.loads(body)
        if path.endswith("/pipeline"):
            kv.pipeline(commands)
        elif path.endswith("/multi-exec"):
            kv.transaction(commands)
        else:
            kv.call(*commands)


def _against_kv(
    services: Any, recorder: _Recorder, batch: list[tuple[bytes, str]]
) -> tuple[float, float, int]:
    """Seconds spent in events, seconds replaying their round trips, round trips.

    Event and replay alternate one event at a time, so the two sides of the ratio see the
    same load on a busy machine.
    """
    from lib.deadline import Deadline
    from lib.webhooks.receive import receive

    in_events = in_kv = 0.0
    trips = 0
    for body, signature in batch:
        recorder.requests.clear()
        recorder.recording = True
        started = time.perf_counter()
        reply = receive(body, signature, services, Deadline(22.0))
        middle = time.perf_counter()
        recorder.recording = False
        if reply.body.get("status") != "ignored":
            raise RuntimeError(f"unexpected reply {reply.status} {reply.body}")
        _replay(services.store.kv, recorder.requests)
        in_events += middle - started
        in_kv += time.perf_counter() - middle
        trips += len(recorder.requests)
    return in_events, in_kv, trips


def throughput() -> dict[str, float]:
    gateway = create_gateway(_KV_TOKEN, Engine())
    env = _env("http://127.0.0.1:1")  # never dialled: the transport is in-process
    recorder = _Recorder(httpx.WSGITransport(app=gateway))
    services = _services(env, recorder)
    secret = env["VERCEL_CLIENT_SECRET"]
    warm = [_signed(secret, "project.created", -n - 1) for n in range(200)]
    _rate(services, warm, "ignored")
    fresh = [_signed(secret, "project.created", n) for n in range(THROUGHPUT_EVENTS)]
    batch = THROUGHPUT_EVENTS // ROUNDS
    gateway.reset_stats()
    rounds = [
        _against_kv(services, recorder, fresh[start : start + batch])
        for start in range(0, batch * ROUNDS, batch)
    ]
    in_events = sum(r[0] for r in rounds)
    in_kv = sum(r[1] for r in rounds)
    trips = sum(r[2] for r in rounds) / (batch * ROUNDS)
    per_s = batch * ROUNDS / in_events
    trips_per_s = trips * batch * ROUNDS / in_kv
    bound = trips_per_s / trips
    # events/s ÷ bound = KV time ÷ event time, per round for the spread.
    ratios = [kv_s / events_s for events_s, kv_s, _ in rounds]
    duplicate_per_s = _rate(services, fresh[: THROUGHPUT_EVENTS // 2], "duplicate")
    ignored = [_signed(secret, "deployment.succeeded", n) for n in range(THROUGHPUT_EVENTS)]
    ignored_per_s = _rate(services, ignored, "ignored")
    return {
        "webhook_events_per_s": round(per_s, 1),
        "webhook_duplicates_per_s": round(duplicate_per_s, 1),
        "webhook_ignored_per_s": round(ignored_per_s, 1),
        "webhook_kv_round_trips_per_event": round(trips, 2),
        "webhook_kv_round_trips_per_s": round(trips_per_s, 1),
        "webhook_kv_bound_events_per_s": round(bound, 1),
        "webhook_vs_kv_bound": round(per_s / bound, 3),
        "webhook_vs_kv_bound_spread": round(max(ratios) - min(ratios), 3),
    }


@contextmanager
def _stack() -> Iterator[tuple[Any, str, dict[str, str]]]:
    """Gateway, emulator and functions on loopback; settings in os.environ meanwhile."""
    from dev.devserver import create_app as create_devserver
    from dev.emulator import EmulatorConfig
    from dev.emulator import create_app as create_emulator
    from lib.app import reset_services

    saved = dict(os.environ)
    gateway = serve.start(create_gateway(_KV_TOKEN, Engine()))
    functions = serve.start(create_devserver(ROOT))
    emulator = create_emulator(EmulatorConfig(client_secret=secrets.token_hex(16)))
    api = serve.start(emulator)
    env = _env(gateway.url, api.url, f"{functions.url}/callback")
    emulator.configure(
        client_secret=env["VERCEL_CLIENT_SECRET"],
        public_url=api.url,
        redirect_uri=env["VERCEL_REDIRECT_URI"],
        webhook_url=f"{functions.url}/webhook",
        time_scale=0.001,
    )
    for name in ("KV_REST_API_URL", "KV_REST_API_TOKEN", "VERCEL_ENV"):
        os.environ.pop(name, None)
    os.environ.update(env)
    reset_services()
    try:
        yield emulator, functions.url, env
    finally:
        emulator.close()
        for server in (api, functions, gateway):
            server.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_services()


def latency() -> dict[str, float]:
    with _stack() as (emulator, functions_url, env):
        minted = emulator.mint_code(scope="acme", project_selection="all")
        callback = minted["redirectUrl"].replace(env["VERCEL_REDIRECT_URI"], "/callback")
        with httpx.Client(base_url=functions_url, timeout=30) as client:
            answer = client.get(callback)
        if answer.status_code != 302:
            raise RuntimeError(f"install failed: {answer.status_code}")
        emulator.set_latency(LATENCY_MS)
        emulator.reset_calls()
        samples: list[float] = []
        for n in range(LATENCY_SAMPLES):
            created = emulator.create_project("acme", f"bench-{n}", sync=True)
            [delivery] = created["deliveries"]
            emulator.drain(30)
            sent = next(d for d in emulator.deliveries() if d["id"] == delivery["id"])
            [attempt] = sent["attempts"]
            if attempt["status"] != 200:
                raise RuntimeError(f"project.created answered {attempt['status']}")
            samples.append(float(attempt["durationMs"]))
        calls = emulator.call_counts()["total"]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "webhook_project_created_p50_ms": round(statistics.median(samples), 1),
        "webhook_project_created_p99_ms": round(cuts[98], 1),
        "webhook_project_created_api_calls": round(calls / LATENCY_SAMPLES, 2),
    }


def run() -> dict[str, float]:
    from lib.log import configure

    configure("WARNING")  # one JSON line per request would bury the table (and cost time)
    figures = {**throughput(), **latency()}
    rows = [
        (
            "fresh events (verify+parse+dedupe)",
            f"{figures['webhook_events_per_s']:,.0f}/s",
            f"goal >= {GOAL_PER_S:,.0f}/s",
        ),
        ("  KV round trips per fresh event", f"{figures['webhook_kv_round_trips_per_event']}", ""),
        (
            "  KV alone (same client, same gateway)",
            f"{figures['webhook_kv_round_trips_per_s']:,.0f} trips/s",
            f"bound {figures['webhook_kv_bound_events_per_s']:,.0f} events/s",
        ),
        (
            "  events / KV-bound limit",
            f"{figures['webhook_vs_kv_bound']:.2f}",
            f"goal >= {GOAL_VS_KV_BOUND}; spread over {ROUNDS} rounds "
            f"{figures['webhook_vs_kv_bound_spread']:.2f}",
        ),
        ("duplicates", f"{figures['webhook_duplicates_per_s']:,.0f}/s", ""),
        ("ignored types (deployment.*)", f"{figures['webhook_ignored_per_s']:,.0f}/s", ""),
        ("project.created p50, 40 ms API", f"{figures['webhook_project_created_p50_ms']} ms", ""),
        ("project.created p99, 40 ms API", f"{figures['webhook_project_created_p99_ms']} ms", ""),
        (
            "  Vercel calls per project.created",
            f"{figures['webhook_project_created_api_calls']}",
            "",
        ),
    ]
    print_table("Webhook receiver (one process, one core)", ["measure", "value", "note"], rows)
    return figures


if __name__ == "__main__":
    run()
