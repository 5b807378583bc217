"""Client-secret rotation (issue 12, item 10): while VERCEL_CLIENT_SECRET_PREVIOUS is set,
a webhook signed with the old secret is accepted as well as one signed with the new one;
nothing else is, and the old secret is used for nothing but that check."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dev.emulator import sign
from lib.app import reset_services
from lib.settings import load_settings
from tests.api.test_webhook import drain, envelope, install, post
from tests.conftest import E2E, E2E_CLIENT_SECRET

OLD = "the-old-client-secret-before-rotation"


@pytest.fixture
def rotating(e2e: E2E) -> Iterator[E2E]:
    os.environ["VERCEL_CLIENT_SECRET_PREVIOUS"] = OLD
    reset_services()
    try:
        yield e2e
    finally:
        e2e.emulator.configure(webhook_signer="current", previous_client_secret=None)
        os.environ.pop("VERCEL_CLIENT_SECRET_PREVIOUS", None)
        reset_services()


def _removed(cfg: str) -> bytes:
    return envelope("integration-configuration.removed", {"configuration": {"id": cfg}})


def test_old_and_new_secret_both_verify_during_a_rotation(rotating: E2E) -> None:
    cfg = install(rotating, "acme")
    body = envelope("project.created", {"project": {"id": "prj_nope", "name": "x"}})
    assert post(rotating, body, sign(body, OLD)).status_code == 200
    body = envelope("project.created", {"project": {"id": "prj_nope2", "name": "y"}})
    assert post(rotating, body, sign(body, E2E_CLIENT_SECRET)).status_code == 200
    forged = _removed(cfg)
    assert post(rotating, forged, sign(forged, "some-third-secret-entirely")).status_code == 403
    assert rotating.services().store.get_installation(cfg) is not None


def test_without_the_setting_an_old_signature_is_refused(e2e: E2E) -> None:
    cfg = install(e2e, "acme")
    body = _removed(cfg)
    assert post(e2e, body, sign(body, OLD)).status_code == 403
    assert e2e.services().store.get_installation(cfg) is not None


def test_deliveries_signed_by_the_emulator_with_the_previous_secret(rotating: E2E) -> None:
    """The emulator's rotation variant: Vercel signs with the old secret meanwhile."""
    rotating.emulator.configure(previous_client_secret=OLD, webhook_signer="previous")
    before = len(rotating.emulator.deliveries())
    install(rotating, "acme")
    rotating.emulator.create_project("acme", "rotated-secret-app")
    drain(rotating)
    fresh = rotating.emulator.deliveries()[before:]
    assert fresh
    statuses = {a["status"] for d in fresh for a in d["attempts"]}
    assert statuses == {200}, statuses


def test_previous_secret_is_optional_registered_and_ignored_when_equal() -> None:
    base = {
        "VERCEL_CLIENT_ID": "oac_test",
        "VERCEL_CLIENT_SECRET": "test-client-secret-123",
        "TOKEN_ENCRYPTION_KEY": "k1:" + "a" * 43 + "=",
        "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:1",
        "UPSTASH_REDIS_REST_TOKEN": "unused",
    }
    assert load_settings(base).webhook_secrets == ("test-client-secret-123",)
    rotating = load_settings({**base, "VERCEL_CLIENT_SECRET_PREVIOUS": " old-secret-456 "})
    assert rotating.webhook_secrets == ("test-client-secret-123", "old-secret-456")
    assert "old-secret-456" not in repr(rotating)
    same = load_settings({**base, "VERCEL_CLIENT_SECRET_PREVIOUS": "test-client-secret-123"})
    assert same.client_secret_previous is None
