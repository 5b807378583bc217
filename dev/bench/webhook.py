"""Webhook receiver: how many events one process verifies, parses and dedupes per second,
and how long a `project.created` takes end to end against a Vercel 40 ms away.

Throughput (`webhook_events_per_s`, goal >= 2,000): `lib.webhooks.receive.receive` in one thread
(one core) on fresh, validly signed `project.created` events naming a scope we have no
installation for, which is the full verify → parse → dedupe path: the lease and the lookup
in one KV round trip, the "done" mark in a second. The KV is the Upstash-protocol gateway
with its embedded engine, called in-process through `httpx.WSGITransport`, so the figure is
our code and the SDK, not a network. Duplicates (one round trip) and event types we ignore
(none) are reported alongside.

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
        "createdAt": 1_700_000_000_000 + n,
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


def throughput() -> dict[str, float]:
    gateway = create_gateway(_KV_TOKEN, Engine())
    env = _env("http://127.0.0.1:1")  # never dialled: the transport is in-process
    services = _services(env, httpx.WSGITransport(app=gateway))
    secret = env["VERCEL_CLIENT_SECRET"]
    warm = [_signed(secret, "project.created", -n - 1) for n in range(200)]
    _rate(services, warm, "ignored")
    fresh = [_signed(secret, "project.created", n) for n in range(THROUGHPUT_EVENTS)]
    gateway.reset_stats()
    per_s = _rate(services, fresh, "ignored")
    trips = gateway.stats()["requests"] / len(fresh)
    duplicate_per_s = _rate(services, fresh[: THROUGHPUT_EVENTS // 2], "duplicate")
    ignored = [_signed(secret, "deployment.succeeded", n) for n in range(THROUGHPUT_EVENTS)]
    ignored_per_s = _rate(services, ignored, "ignored")
    return {
        "webhook_events_per_s": round(per_s, 1),
        "webhook_duplicates_per_s": round(duplicate_per_s, 1),
        "webhook_ignored_per_s": round(ignored_per_s, 1),
        "webhook_kv_round_trips_per_event": round(trips, 2),
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
