"""Shared pytest fixtures, one section per part of the local stack.

Each section is owned by the module it serves; add new fixtures in a new section.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dev import serve
from dev.kv_gateway import (
    Backend,
    BackendUnavailable,
    Gateway,
    RedisBackend,
    create_app,
    open_backend,
)

# ---------------------------------------------------------------------------------------
# KV gateway (dev/kv_gateway.py)
#
# One gateway server per session over Redis DB 13 (REDIS_TEST_URL overrides), or over the
# embedded engine when no Redis answers, unless REQUIRE_REDIS=1 (CI), which fails instead.
# `kv` gives each test an empty database, zeroed counters and no faults.
# ---------------------------------------------------------------------------------------

KV_TEST_TOKEN = "test-kv-token"
KV_TEST_REDIS_URL = "redis://127.0.0.1:6379/13"


@dataclass(frozen=True)
class KVGateway:
    """A running gateway: point `upstash_redis.Redis(url, token)` at it."""

    url: str
    token: str
    gateway: Gateway


@pytest.fixture(scope="session")
def kv_backend() -> Iterator[Backend]:
    required = os.environ.get("REQUIRE_REDIS") == "1"
    url = os.environ.get("REDIS_TEST_URL") or KV_TEST_REDIS_URL
    try:
        backend = open_backend(url, require_redis=required)
    except BackendUnavailable as exc:
        pytest.fail(f"REQUIRE_REDIS=1 but {exc}", pytrace=False)
    if not isinstance(backend, RedisBackend):
        warnings.warn(f"KV tests run on the {backend.description}", stacklevel=1)
    yield backend
    backend.close()


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
