"""No lost update (issue 11, invariant 2) for a re-install: the callback's refresh of a
stored installation is a compare-and-set against the record it read at the claim, merged
by the webhooks' watermark rule when a webhook got in first.

Each race parks the callback at the gateway just before its write (its first guarded
script, the one that names the tombstone key): it has claimed the code, read the record,
exchanged the code and read the configuration. Vercel then changes the installation and
our webhook applies it; the callback is let go. Real HTTP, the real SDK, the KV gateway
and the Vercel emulator throughout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from lib.kv.store import _GUARDED_WRITE
from tests.conftest import E2E, E2E_ADMIN_TOKEN
from tests.invariants.test_facts_and_work import _installed, _scope_id

SCOPES = (
    "read:project",
    "read-write:project-env-vars",
    "read-write:integration-configuration",
)


def _reinstall_url(e2e: E2E, cfg: str) -> str:
    """Vercel's re-install of an existing configuration: a new code, the same id."""
    minted = e2e.emulator.mint_code(cfg)
    return str(minted["redirectUrl"]).replace(e2e.env["VERCEL_REDIRECT_URI"], "/callback")


@contextmanager
def _callback_parked_before_its_write(e2e: E2E, url: str) -> Iterator[list[httpx.Response]]:
    """Run the callback at `url` in a thread, parked at its first guarded write until the
    block ends; yields the list that then holds its response."""
    # Cached first, so the callback sends EVALSHA or EVAL alike as its one script call.
    e2e.kv.gateway.backend.execute([b"SCRIPT", b"LOAD", _GUARDED_WRITE.encode()])
    out: list[httpx.Response] = []

    def callback() -> None:
        with e2e.http() as client:
            out.append(client.get(url))

    thread = threading.Thread(target=callback)
    with e2e.kv.gateway.hold(key_glob="vi:gone:*", path="/", count=1, timeout_seconds=30) as h:
        thread.start()
        assert h.wait_held(timeout=20), "the callback never reached its write"
        yield out
    thread.join(30)
    assert out, "the callback did not answer"
    assert out[0].status_code == 302, out[0].text[:300]


def _admin(e2e: E2E, body: dict[str, Any]) -> dict[str, Any]:
    with e2e.http(headers={"authorization": f"Bearer {E2E_ADMIN_TOKEN}"}) as client:
        response = client.post("/provision", json=body)
    assert response.status_code == 200, response.text[:300]
    return dict(response.json()["installations"][0])


def test_a_transfer_applied_while_a_reinstall_exchanges_its_code_wins(e2e: E2E) -> None:
    cfg = _installed(e2e)
    e2e.emulator.create_team("globex")
    acme, globex = _scope_id(e2e, "acme"), _scope_id(e2e, "globex")
    store = e2e.services().store
    with _callback_parked_before_its_write(e2e, _reinstall_url(e2e, cfg)):
        e2e.emulator.transfer_configuration(cfg, "globex")
        assert e2e.emulator.drain(20)
        moved = store.get_installation(cfg)
        assert moved is not None
        assert moved.owner_id == globex

    inst = store.get_installation(cfg)
    assert inst is not None
    assert (inst.owner_id, inst.team_id) == (globex, globex)
    assert store.installations_for_owner(acme) == []
    assert store.installations_for_owner(globex) == [cfg]
    assert inst.owner_at == moved.owner_at  # the transfer's fact, not the exchange's
    # The callback's token was stored all the same: it works for the installation.
    assert inst.sealed_token != moved.sealed_token
    # A redelivery of the transfer is a duplicate, and a resync works in the new team.
    transfer = [d for d in e2e.emulator.deliveries() if d["type"].endswith(".transferred")][-1]
    e2e.emulator.redeliver(transfer["id"])
    assert e2e.emulator.drain(20)
    assert e2e.emulator.deliveries()[-1]["attempts"][-1]["status"] == 200
    assert _admin(e2e, {"configurationId": cfg})["outcome"] == "done"
    after = store.get_installation(cfg)
    assert after is not None
    assert (after.owner_id, after.status) == (globex, "active")


def test_a_scope_change_confirmed_while_a_reinstall_exchanges_its_code_is_kept(
    e2e: E2E,
) -> None:
    cfg = _installed(e2e)
    store = e2e.services().store
    wider = [*SCOPES, "read:domain"]
    with _callback_parked_before_its_write(e2e, _reinstall_url(e2e, cfg)):
        e2e.emulator.confirm_scope_change(cfg, wider)
        assert e2e.emulator.drain(20)
        changed = store.get_installation(cfg)
        assert changed is not None
        assert "read:domain" in changed.scopes

    inst = store.get_installation(cfg)
    assert inst is not None
    assert sorted(inst.scopes) == sorted(wider)
    assert inst.scopes_at == changed.scopes_at


def test_a_reinstall_keeps_the_sync_and_rotation_history(e2e: E2E) -> None:
    cfg = _installed(e2e)
    store = e2e.services().store
    _admin(e2e, {"configurationId": cfg, "rotateSecrets": True})
    before = store.get_installation(cfg)
    assert before is not None
    assert before.last_synced_at is not None
    assert before.last_rotated_at is not None
    url = _reinstall_url(e2e, cfg)
    with e2e.http() as client:
        assert client.get(url).status_code == 302

    inst = store.get_installation(cfg)
    assert inst is not None
    assert inst.sealed_token != before.sealed_token  # the re-install was stored
    assert inst.last_rotated_at == before.last_rotated_at
    assert inst.last_synced_at is not None
    assert inst.last_synced_at >= before.last_synced_at


def _counting_provisioning(e2e: E2E, monkeypatch: Any) -> Callable[[], int]:
    """Resets the gateway's counter; returns the round trips since, less those of
    provisioning (measured around the provisioner's `reconcile`, run in this process)."""
    gateway = e2e.kv.gateway
    provisioner = e2e.services().provisioner
    real = provisioner.reconcile
    provisioning: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        start = gateway.stats()["requests"]
        try:
            return real(*args, **kwargs)
        finally:
            provisioning.append(gateway.stats()["requests"] - start)

    monkeypatch.setattr(provisioner, "reconcile", counted)
    gateway.reset_stats()
    return lambda: int(gateway.stats()["requests"]) - sum(provisioning)


def test_a_reinstall_costs_two_round_trips_and_a_lost_race_two_more(
    e2e: E2E, monkeypatch: Any
) -> None:
    """Measured at the gateway: the opening transaction and the compare-and-set script;
    when another writer changed the record meanwhile, one read and one more script."""
    cfg = _installed(e2e)
    url = _reinstall_url(e2e, cfg)
    trips = _counting_provisioning(e2e, monkeypatch)
    with e2e.http() as client:
        assert client.get(url).status_code == 302
    assert trips() == 2 <= 3

    url = _reinstall_url(e2e, cfg)
    trips = _counting_provisioning(e2e, monkeypatch)
    with _callback_parked_before_its_write(e2e, url):
        # The record changes under the callback: two round trips (a read, a script).
        e2e.services().store.set_status(cfg, "paused", "changed under the callback")
    assert trips() - 2 == 2 + 2
    inst = e2e.services().store.get_installation(cfg)
    # The re-install is a fresh grant: it restarts the installation (pending, active).
    assert inst is not None
    assert inst.status == "active"
