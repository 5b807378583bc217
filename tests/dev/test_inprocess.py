"""dev/inprocess.py: the product's own clients reach the in-process apps, nothing else."""

from __future__ import annotations

import os

import httpx
import pytest

from dev import inprocess
from lib.app import get_services


def test_the_sdk_and_the_functions_run_in_process_and_the_network_comes_back() -> None:
    before = os.environ.get("UPSTASH_REDIS_REST_URL")
    with inprocess.running(
        client_secret="secret-0123456789", admin_token="admin-0123456789", cron_secret="cron-0"
    ) as stack:
        get_services().store.kv.call("SET", "probe", "1")
        assert stack.gateway.backend.execute([b"GET", b"probe"]) == b"1"  # the real SDK
        assert stack.gateway.stats()["requests"] >= 1
        with stack.http() as client:
            assert client.get("/health").status_code == 200
            assert client.get("/api/health").status_code == 200
            assert client.get("/nothing-here").status_code == 404
        with pytest.raises(httpx.ConnectError):
            stack.router.handle_request(httpx.Request("GET", "http://127.0.0.1:9/"))
    assert os.environ.get("UPSTASH_REDIS_REST_URL") == before
