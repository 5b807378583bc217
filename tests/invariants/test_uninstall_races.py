"""Uninstall is final (issue 11, invariant 1), forced deterministically over real HTTP.

Each test starts one operation against the real functions (dev server, real SDK, KV
gateway, Vercel emulator) and parks it with a gateway hold just before its first
guarded write (the store's script, which names the tombstone key) — after it has read
the installation and talked to Vercel. The uninstall then runs to completion (Vercel
deletes the configuration and delivers `integration-configuration.removed` to our
webhook), the operation is let go, and a scan of the whole KV finds nothing of the
installation but its digest-keyed tombstone.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lib.kv.store import _GUARDED_WRITE
from lib.web import session
from lib.web.session import SESSION_COOKIE
from tests.conftest import E2E, E2E_ADMIN_TOKEN, E2E_CRON_SECRET
from tests.invariants.traces import assert_uninstalled

TEAM = "acme"


def _scope_id(e2e: E2E, slug: str) -> str:
    state = e2e.emulator.state()
    for team in state["teams"]:
        if team["slug"] == slug:
            return str(team["id"])
    raise AssertionError(f"no team {slug}")


def _a_project(e2e: E2E) -> str:
    team = _scope_id(e2e, TEAM)
    return next(str(p["id"]) for p in e2e.emulator.state()["projects"] if p["accountId"] == team)


def _installed(e2e: E2E) -> str:
    got = e2e.install(TEAM)
    assert e2e.emulator.drain(20)
    return str(got["configurationId"])


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def _uninstall(e2e: E2E, cfg: str) -> None:
    """Vercel removes the configuration and our webhook processes the removal."""
    gone = e2e.services().store.gone_key(cfg).encode()
    e2e.emulator.delete_configuration(cfg)
    _wait_for(lambda: e2e.kv.gateway.backend.execute([b"EXISTS", gone]) == 1)


def _race(e2e: E2E, cfg: str, operation: Callable[[], Any]) -> Any:
    """Run `operation` in a thread, parked before its first guarded write while the
    uninstall completes; return what it returned."""
    e2e.kv.gateway.backend.execute([b"SCRIPT", b"LOAD", _GUARDED_WRITE.encode()])
    result: list[Any] = []
    with e2e.kv.gateway.hold(key_glob="vi:gone:*", path="/", timeout_seconds=30) as held:
        thread = threading.Thread(target=lambda: result.append(operation()))
        thread.start()
        assert held.wait_held(timeout=20), "the operation never reached a guarded write"
        _uninstall(e2e, cfg)
    thread.join(40)
    assert not thread.is_alive()
    assert e2e.emulator.drain(20)
    assert_uninstalled(
        e2e.kv.gateway.backend, e2e.services().store.gone_key(cfg), cfg, _scope_id(e2e, TEAM)
    )
    assert result, "the operation raised"
    return result[0]


def _unknown_project(e2e: E2E, name: str) -> None:
    """A project our KV has not heard of (its webhook is not delivered): work to do."""
    url = e2e.emulator.config.webhook_url
    e2e.emulator.configure(webhook_url=None)
    try:
        e2e.emulator.create_project(TEAM, name)
        assert e2e.emulator.drain(20)  # skipped, not sent to the restored URL later
    finally:
        e2e.emulator.configure(webhook_url=url)


def _wait_for_hook(e2e: E2E, before: int) -> Callable[[], int]:
    """The operation for a webhook-driven race: wait until Vercel's delivery finished."""

    def done() -> int:
        _wait_for(lambda: len(e2e.emulator.deliveries()) > before)
        assert e2e.emulator.drain(40)
        return 200

    return done


# -- webhooks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event", ["permission-upgraded", "scope-change-confirmed", "transferred", "project.created"]
)
def test_uninstall_during_a_webhook_handler(e2e: E2E, event: str) -> None:
    cfg = _installed(e2e)
    if event == "transferred":
        e2e.emulator.create_team("globex")
    before = len(e2e.emulator.deliveries())
    triggers: dict[str, Callable[[], Any]] = {
        "permission-upgraded": lambda: e2e.emulator.set_project_access(
            cfg, "selected", [_a_project(e2e)]
        ),
        "scope-change-confirmed": lambda: e2e.emulator.confirm_scope_change(
            cfg, ["read:project", "read-write:project-env-vars"]
        ),
        "transferred": lambda: e2e.emulator.transfer_configuration(cfg, "globex"),
        "project.created": lambda: e2e.emulator.create_project(TEAM, "late-racer"),
    }
    triggers[event]()
    _race(e2e, cfg, _wait_for_hook(e2e, before))
    removed = [d for d in e2e.emulator.deliveries() if d["type"].endswith(".removed")]
    assert [a["status"] for a in removed[-1]["attempts"]] == [200]


# -- the install callback --------------------------------------------------------------------


def test_uninstall_between_the_code_exchange_and_the_write(e2e: E2E) -> None:
    minted = e2e.emulator.mint_code(scope=TEAM, project_selection="all")
    cfg = str(minted["configurationId"])
    url = minted["redirectUrl"].replace(e2e.env["VERCEL_REDIRECT_URI"], "/callback")

    def callback() -> httpx.Response:
        with e2e.http() as client:
            return client.get(url)

    page = _race(e2e, cfg, callback)
    assert page.status_code == 410, page.text[:300]
    assert "removed" in page.text


def test_uninstall_between_the_exchange_and_the_write_of_a_reinstall(e2e: E2E) -> None:
    cfg = _installed(e2e)
    minted = e2e.emulator.mint_code(cfg)
    url = minted["redirectUrl"].replace(e2e.env["VERCEL_REDIRECT_URI"], "/callback")

    def callback() -> httpx.Response:
        with e2e.http() as client:
            return client.get(url)

    page = _race(e2e, cfg, callback)
    assert page.status_code == 410, page.text[:300]


# -- operators: resync and sweep ---------------------------------------------------------------


def test_uninstall_during_an_admin_resync(e2e: E2E) -> None:
    cfg = _installed(e2e)
    _unknown_project(e2e, "drifted")

    def resync() -> httpx.Response:
        with e2e.http(headers={"authorization": f"Bearer {E2E_ADMIN_TOKEN}"}) as client:
            return client.post("/provision", json={"configurationId": cfg})

    answer = _race(e2e, cfg, resync)
    assert answer.status_code == 200
    [report] = answer.json()["installations"]
    assert report["outcome"] == "unknown"


def test_uninstall_during_an_admin_rotation(e2e: E2E) -> None:
    cfg = _installed(e2e)

    def rotate() -> httpx.Response:
        with e2e.http(headers={"authorization": f"Bearer {E2E_ADMIN_TOKEN}"}) as client:
            return client.post("/provision", json={"configurationId": cfg, "rotateSecrets": True})

    answer = _race(e2e, cfg, rotate)
    assert answer.status_code in (200, 404), answer.text  # 404: gone before its first read


def test_uninstall_during_the_sweep(e2e: E2E) -> None:
    cfg = _installed(e2e)
    _unknown_project(e2e, "left-over")
    e2e.services().store.mark_pending(cfg)

    def sweep() -> httpx.Response:
        with e2e.http(headers={"authorization": f"Bearer {E2E_CRON_SECRET}"}) as client:
            return client.get("/provision", params={"sweep": "1"})

    answer = _race(e2e, cfg, sweep)
    assert answer.status_code == 200
    assert [r["outcome"] for r in answer.json()["swept"]] == ["unknown"]


# -- the configuration page --------------------------------------------------------------------


@pytest.mark.parametrize("action", ["resync", "rotate"])
def test_uninstall_during_a_configuration_page_action(e2e: E2E, action: str) -> None:
    cfg = _installed(e2e)
    cookie = session.issue(e2e.services().store.keyring, cfg)
    client = e2e.http()
    client.cookies.set(SESSION_COOKIE, cookie)
    page = client.get("/configure", params={"configurationId": cfg})
    assert page.status_code == 200, page.text[:300]
    if action == "rotate":  # the first press asks for confirmation and writes nothing
        page = client.post(
            "/configure",
            params={"configurationId": cfg},
            data={"csrf": _csrf(page), "action": "rotate"},
        )
        assert page.status_code == 200, page.text[:300]
        action = "rotate-confirm"
    else:
        _unknown_project(e2e, "drifted")  # work for the resync (after the page's own look)
    csrf = _csrf(page)

    def act() -> httpx.Response:
        return client.post(
            "/configure", params={"configurationId": cfg}, data={"csrf": csrf, "action": action}
        )

    try:
        answer = _race(e2e, cfg, act)
    finally:
        client.close()
    assert answer.status_code in (303, 200), answer.text[:300]


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_the_scan_sees_a_zombie(e2e: E2E) -> None:
    """Control: the scan is not vacuous — a record written after the uninstall (what a
    plain SET used to do) is found."""
    cfg = _installed(e2e)
    store = e2e.services().store
    raw = store.kv.call("GET", store.key("inst", cfg))
    _uninstall(e2e, cfg)
    assert e2e.emulator.drain(20)
    store.kv.call("SET", store.key("inst", cfg), raw)
    with pytest.raises(AssertionError):
        assert_uninstalled(e2e.kv.gateway.backend, store.gone_key(cfg), cfg, _scope_id(e2e, TEAM))
    assert json.loads(raw)["configuration_id"] == cfg
