"""What a webhook handler concludes from Vercel's refusals (issue 11, invariant 1).

Only a 404 on the configuration, asked with every team it may belong to by now, or the
`integration-configuration.removed` event is an uninstall (keys deleted, tombstone
written). A 401 says our token is not accepted, not that the configuration is gone: the
installation is marked broken ("reinstall") and keeps its keys, so the reinstall the
user is told to do is not refused. An uninstall deletes the owner index the record
names at that moment, not only the one the handler read before a transfer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from lib.vercel.client import VercelClient
from lib.vercel.errors import NotFound, Unauthorized
from lib.webhooks.handlers import REINSTALL
from tests.conftest import E2E
from tests.invariants.test_facts_and_work import _installed, _scope_id
from tests.invariants.traces import assert_uninstalled

_FULL = [
    "read:project",
    "read-write:project-env-vars",
    "read-write:integration-configuration",
    "read:team",
]


def test_one_401_marks_the_installation_broken_and_a_reinstall_restores_it(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _installed(e2e)
    store = e2e.services().store
    real = VercelClient.get_configuration
    refusals = [Unauthorized("token invalid", status=401)]

    def once(self: VercelClient, configuration_id: str) -> Any:
        if refusals:
            raise refusals.pop()
        return real(self, configuration_id)

    monkeypatch.setattr(VercelClient, "get_configuration", once)
    e2e.emulator.confirm_scope_change(cfg, _FULL)
    assert e2e.emulator.drain(20)
    assert not refusals, "the handler never asked Vercel"
    delivered = e2e.emulator.deliveries()[-1]
    assert [a["status"] for a in delivered["attempts"]] == [200]
    inst = store.get_installation(cfg)
    assert inst is not None
    assert (inst.status, inst.status_reason) == ("broken", REINSTALL)
    assert store.get_secrets(cfg)
    assert e2e.kv.gateway.backend.execute([b"EXISTS", store.gone_key(cfg).encode()]) == 0
    # The reinstall the page asks for (same configuration, new code) is not refused.
    minted = e2e.emulator.mint_code(cfg)
    with e2e.http() as client:
        page = client.get(
            minted["redirectUrl"].replace(e2e.env["VERCEL_REDIRECT_URI"], "/callback")
        )
    assert page.status_code < 400, page.text[:300]
    again = store.get_installation(cfg)
    assert again is not None
    assert (again.status, again.status_reason) == ("active", None)


def test_a_404_after_a_concurrent_transfer_leaves_no_owner_index(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _installed(e2e)
    e2e.emulator.create_team("globex")
    acme, globex = _scope_id(e2e, "acme"), _scope_id(e2e, "globex")
    store = e2e.services().store
    real = VercelClient.get_configuration
    armed, entered, go = threading.Event(), threading.Event(), threading.Event()
    vanished = threading.Event()

    def gated(self: VercelClient, configuration_id: str) -> Any:
        if armed.is_set():
            armed.clear()
            entered.set()
            go.wait(20)
        if vanished.is_set():
            raise NotFound("The configuration was not found")  # to every team asked
        return real(self, configuration_id)

    monkeypatch.setattr(VercelClient, "get_configuration", gated)
    body = {
        "id": "evt_upgrade_in_acme",
        "type": "integration-configuration.permission-upgraded",
        "createdAt": int(time.time() * 1000),
        "payload": {
            "team": {"id": acme},
            "user": {"id": "u"},
            "configuration": {"id": cfg, "projectSelection": "all", "projects": []},
        },
    }
    answers: list[Any] = []
    armed.set()
    handler = threading.Thread(target=lambda: answers.append(e2e.post_webhook(body)))
    handler.start()
    assert entered.wait(20), "the handler never asked Vercel"
    e2e.emulator.transfer_configuration(cfg, "globex")  # delivered and processed meanwhile
    assert e2e.emulator.drain(20)
    moved = store.get_installation(cfg)
    assert moved is not None
    assert moved.owner_id == globex
    vanished.set()
    go.set()
    handler.join(30)
    assert answers
    assert answers[0].status_code == 200, answers[0].text
    assert store.installations_for_owner(globex) == []
    assert store.installations_for_owner(acme) == []
    assert_uninstalled(e2e.kv.gateway.backend, store.gone_key(cfg), cfg, globex)
