"""/health through the dev server: public status only, the detail behind the admin token."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from lib.app import reset_services
from tests.conftest import E2E, E2E_ADMIN_TOKEN, E2E_CLIENT_SECRET, E2E_CRON_SECRET

ADMIN = {"Authorization": f"Bearer {E2E_ADMIN_TOKEN}"}


@pytest.fixture
def client(e2e: E2E) -> Iterator[httpx.Client]:
    with e2e.http() as http:
        yield http


def test_anyone_sees_only_whether_it_is_healthy(e2e: E2E, client: httpx.Client) -> None:
    got = client.get("/health")
    assert got.status_code == 200
    assert got.json() == {"status": "ok"}
    assert got.headers["cache-control"] == "no-store"
    for revealing in (e2e.emulator_url, e2e.kv.url, "e2e", "kv_source", "latency"):
        assert revealing not in got.text
    assert client.head("/health").status_code == 200


def test_the_admin_token_unlocks_the_detail_never_a_secret(
    e2e: E2E, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERCEL_GIT_COMMIT_SHA", "0123456789abcdef0123")
    got = client.get("/health", headers=ADMIN)
    assert got.status_code == 200
    report = got.json()
    assert report["status"] == "ok"
    assert report["kv"]["ok"] is True
    assert report["kv"]["latency_ms"] >= 0
    assert report["config"]["vercel_api_url"] == e2e.emulator_url
    assert report["config"]["encryption_key_id"] == "e2e"
    assert report["config"]["admin_api"] is True
    assert report["version"]["commit"] == "0123456789ab"
    for secret in (E2E_ADMIN_TOKEN, E2E_CLIENT_SECRET, E2E_CRON_SECRET, e2e.kv.token):
        assert secret not in got.text


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", f"Basic {E2E_ADMIN_TOKEN}", f"Bearer {E2E_CRON_SECRET}"]
)
def test_a_wrong_token_is_401_without_detail(client: httpx.Client, authorization: str) -> None:
    got = client.get("/health", headers={"Authorization": authorization})
    assert got.status_code == 401
    assert got.headers["www-authenticate"] == "Bearer"
    assert got.json() == {"error": {"status": 401, "message": "Unauthorized."}}


def test_kv_down_is_503_degraded_and_says_why_only_to_the_operator(
    e2e: E2E, client: httpx.Client
) -> None:
    e2e.kv.gateway.set_faults(error_rate=1.0)
    try:
        public, detail = client.get("/health"), client.get("/health", headers=ADMIN)
    finally:
        e2e.kv.gateway.clear_faults()
    assert (public.status_code, public.json()) == (503, {"status": "degraded"})
    assert detail.status_code == 503
    assert detail.json()["kv"]["ok"] is False


def test_misconfigured_names_the_variables_only_to_the_operator(
    e2e: E2E, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VERCEL_CLIENT_ID")
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", "not-a-key")
    reset_services()
    public = client.get("/health")
    assert (public.status_code, public.json()) == (503, {"status": "misconfigured"})
    # The settings are invalid, yet the operator's token still opens the detail.
    detail = client.get("/health", headers=ADMIN)
    assert detail.status_code == 503
    report = detail.json()
    assert report["status"] == "misconfigured"
    assert {"VERCEL_CLIENT_ID", "TOKEN_ENCRYPTION_KEY"} <= set(report["variables"])
    assert "not-a-key" not in json.dumps(report)
    assert client.get("/health", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_only_get_and_head(client: httpx.Client) -> None:
    refused = client.post("/health", json={})
    assert refused.status_code == 405
    assert "GET" in refused.headers["allow"]
