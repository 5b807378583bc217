"""Shared pytest fixtures, one section per part of the local stack.

Each section is owned by the module it serves; add new fixtures in a new section.
"""

from __future__ import annotations

import base64
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import httpx
import pytest
from hypothesis import settings

from dev import serve
from dev.kv_gateway import (
    Backend,
    BackendUnavailable,
    Gateway,
    RedisBackend,
    create_app,
    open_backend,
)
from dev.test_dbs import TEST_DBS, TEST_REDIS_URL, claim_test_db

# ---------------------------------------------------------------------------------------
# Property tests (hypothesis)
#
# Under CI=true every property test draws the same inputs each run (a red build
# reproduces, a green one is not luck); locally and under `make soak` (SOAK=1) they
# explore. https://hypothesis.readthedocs.io/en/latest/settings.html#settings-profiles
# ---------------------------------------------------------------------------------------

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI") == "true" and os.environ.get("SOAK") != "1":
    settings.load_profile("ci")

# ---------------------------------------------------------------------------------------
# KV gateway (dev/kv_gateway.py)
#
# One gateway server per session over Redis DB 13 (REDIS_TEST_URL overrides), or over the
# embedded engine when no Redis answers, unless REQUIRE_REDIS=1 (CI), which fails instead.
# `kv` gives each test an empty database, zeroed counters and no faults.
# ---------------------------------------------------------------------------------------

KV_TEST_TOKEN = "test-kv-token"
# Test runs flush their database; concurrent runs on one machine each take their own.
KV_TEST_REDIS_URL = TEST_REDIS_URL
KV_TEST_DBS = TEST_DBS


@dataclass(frozen=True)
class KVGateway:
    """A running gateway: point `upstash_redis.Redis(url, token)` at it."""

    url: str
    token: str
    gateway: Gateway


@pytest.fixture(scope="session")
def kv_backend() -> Iterator[Backend]:
    required = os.environ.get("REQUIRE_REDIS") == "1"
    url = os.environ.get("REDIS_TEST_URL")
    lock: TextIO | None = None
    if not url:
        db, lock = claim_test_db()
        url = KV_TEST_REDIS_URL.format(db=db)
    try:
        backend = open_backend(url, require_redis=required)
    except BackendUnavailable as exc:
        pytest.fail(f"REQUIRE_REDIS=1 but {exc}", pytrace=False)
    if not isinstance(backend, RedisBackend):
        warnings.warn(f"KV tests run on the {backend.description}", stacklevel=1)
    yield backend
    backend.close()
    if lock is not None:
        lock.close()


@pytest.fixture
def second_test_db(kv_backend: Backend) -> Iterator[str]:
    """The URL of another database locked for this run (a test that must show something
    stays out of a neighbour's database), flushed before and after; Redis only."""
    if not isinstance(kv_backend, RedisBackend):
        pytest.skip(
            f"a second database needs real Redis; the tests run on {kv_backend.description}"
        )
    db, lock = claim_test_db()
    url = KV_TEST_REDIS_URL.format(db=db)
    other = RedisBackend.connect(url)
    try:
        other.execute([b"FLUSHDB"])
        yield url
        other.execute([b"FLUSHDB"])
    finally:
        other.close()
        lock.close()


@pytest.fixture(scope="session")
def kv_gateway(kv_backend: Backend) -> Iterator[KVGateway]:
    gateway = create_app(KV_TEST_TOKEN, kv_backend)
    with serve.running(gateway) as server:
        yield KVGateway(server.url, KV_TEST_TOKEN, gateway)


@pytest.fixture
def kv(kv_gateway: KVGateway) -> Iterator[KVGateway]:
    gateway = kv_gateway.gateway
    gateway.clear_faults()  # first: a stalled request from an earlier test now gives up
    gateway.backend.execute([b"FLUSHDB"])
    gateway.reset_stats()
    yield kv_gateway
    gateway.clear_faults()


# ---------------------------------------------------------------------------------------
# The integration end to end (lib/, api/ through dev/devserver.py)
#
# The real functions served by the dev server, talking over real HTTP to the Vercel API
# emulator and, through the KV gateway, to Redis. `e2e` gives each test a freshly seeded
# emulator, an empty KV, fresh function state, and settings in os.environ exactly as
# Vercel would provide them.
# ---------------------------------------------------------------------------------------

E2E_CLIENT_SECRET = "e2e-client-secret-0123456789"
E2E_ADMIN_TOKEN = "e2e-admin-token-0123456789"
E2E_CRON_SECRET = "e2e-cron-secret-0123456789"


@dataclass
class E2E:
    """Handles on the running system. `http` talks to our functions."""

    dev_url: str
    emulator_url: str
    emulator: Any
    kv: KVGateway
    env: dict[str, str]

    def http(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.dev_url, **kwargs)

    def post_webhook(self, envelope: dict[str, Any]) -> httpx.Response:
        """`envelope` delivered to our /webhook as Vercel would: JSON, signed with the
        client secret (to replay a delivery in an order of the test's choosing)."""
        from dev.emulator import sign

        raw = json.dumps(envelope).encode()
        headers = {
            "content-type": "application/json",
            "x-vercel-signature": sign(raw, E2E_CLIENT_SECRET),
        }
        with self.http() as client:
            return client.post("/webhook", content=raw, headers=headers)

    def services(self) -> Any:
        from lib.app import get_services

        return get_services()

    def kv_keys(self, pattern: str = "*") -> list[str]:
        keys = self.kv.gateway.backend.execute([b"KEYS", pattern.encode()])
        assert isinstance(keys, list)
        return sorted(k.decode() if isinstance(k, bytes) else str(k) for k in keys)

    def install(
        self, scope: str, selection: str = "all", projects: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """A full install through our /callback, as the emulator's install page does it."""
        minted = self.emulator.mint_code(
            scope=scope, project_selection=selection, projects=projects
        )
        with self.http() as client:
            response = client.get(
                minted["redirectUrl"].replace(self.env["VERCEL_REDIRECT_URI"], "/callback")
            )
        assert response.status_code in (302, 200), (response.status_code, response.text[:500])
        return {**minted, "response": response}


@pytest.fixture(scope="session")
def _e2e_servers(kv_gateway: KVGateway) -> Iterator[E2E]:
    from dev.devserver import create_app as create_devserver
    from dev.emulator import EmulatorConfig
    from dev.emulator import create_app as create_emulator
    from dev.stack import ROOT

    saved = dict(os.environ)
    dev = serve.start(create_devserver(ROOT))
    emulator = create_emulator(
        EmulatorConfig(client_secret=E2E_CLIENT_SECRET, webhook_url=f"{dev.url}/webhook")
    )
    emu = serve.start(emulator)
    emulator.configure(
        public_url=emu.url,
        redirect_uri=f"{dev.url}/callback",
        webhook_url=f"{dev.url}/webhook",
        time_scale=0.001,
    )
    env = {
        "VERCEL_CLIENT_ID": emulator.config.client_id,
        "VERCEL_CLIENT_SECRET": E2E_CLIENT_SECRET,
        "VERCEL_REDIRECT_URI": f"{dev.url}/callback",
        "INTEGRATION_SLUG": emulator.config.slug,
        "TOKEN_ENCRYPTION_KEY": "e2e:"
        + base64.b64encode(b"E2E-test-key-32-bytes-long-12345").decode(),
        "UPSTASH_REDIS_REST_URL": kv_gateway.url,
        "UPSTASH_REDIS_REST_TOKEN": kv_gateway.token,
        "VERCEL_API_URL": emu.url,
        "VERCEL_DASHBOARD_URL": emu.url,
        "ADMIN_TOKEN": E2E_ADMIN_TOKEN,
        "CRON_SECRET": E2E_CRON_SECRET,
    }
    for name in ("KV_REST_API_URL", "KV_REST_API_TOKEN", "VERCEL_ENV", "INTEGRATION_SPEC_PATH"):
        os.environ.pop(name, None)
    os.environ.update(env)
    baseline = {
        f: getattr(emulator.config, f)
        for f in ("time_scale", "webhook_url", "redirect_uri", "public_url")
    }
    try:
        yield E2E(dev.url, emu.url, emulator, kv_gateway, env)
    finally:
        emulator.configure(**baseline)
        emulator.reset()
        dev.stop()
        emu.stop()
        emulator.close()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def e2e(_e2e_servers: E2E, kv: KVGateway) -> Iterator[E2E]:
    from lib.app import reset_services

    _e2e_servers.emulator.reset()
    _e2e_servers.emulator.clear_faults()
    reset_services()
    yield _e2e_servers
    _e2e_servers.emulator.clear_faults()
    _e2e_servers.emulator.drain(timeout=10)
    reset_services()
