"""An uninstall between finished work and its history stamp (`last_synced_at`,
`last_rotated_at`) is no failure of the work (issue 11, invariant 1 and "never a 500").

The operation is parked at the stamp's first read (the store's `update_installation`
pipeline: GET of the record, EXISTS of the tombstone) while the uninstall completes;
then it goes on. Every answer is the work's own report (or, on the configuration page,
its redirect), and a sweep goes on to the next installation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lib.web import session
from lib.web.session import SESSION_COOKIE
from tests.conftest import E2E, E2E_ADMIN_TOKEN, E2E_CRON_SECRET
from tests.invariants.test_uninstall_races import TEAM, _csrf, _installed, _scope_id, _uninstall
from tests.invariants.traces import assert_uninstalled


def _at_the_stamp(e2e: E2E, cfg: str, operation: Callable[[], Any], *, alone: bool = True) -> Any:
    """Run `operation`, parked at its stamp while `cfg` is uninstalled. `alone`: no other
    installation is stored, so the whole KV is scanned for leftovers."""
    result: list[Any] = []
    hold = e2e.kv.gateway.hold(key_glob="vi:gone:*", path="/pipeline", timeout_seconds=30)
    with hold as held:
        thread = threading.Thread(target=lambda: result.append(operation()))
        thread.start()
        assert held.wait_held(timeout=20), "the operation never reached the stamp"
        _uninstall(e2e, cfg)
    thread.join(40)
    assert not thread.is_alive()
    assert e2e.emulator.drain(20)
    store = e2e.services().store
    if alone:
        assert_uninstalled(e2e.kv.gateway.backend, store.gone_key(cfg), cfg, _scope_id(e2e, TEAM))
    else:
        assert not [k for k in e2e.kv_keys() if cfg in k]
        assert store.installations_for_owner(_scope_id(e2e, TEAM)) == []
    assert result, "the operation raised"
    return result[0]


def _admin(e2e: E2E, body: dict[str, Any]) -> Callable[[], httpx.Response]:
    def post() -> httpx.Response:
        with e2e.http(headers={"authorization": f"Bearer {E2E_ADMIN_TOKEN}"}) as client:
            return client.post("/provision", json=body)

    return post


@pytest.mark.parametrize("rotate", [False, True])
def test_an_admin_resync_or_rotation_reports_the_uninstall(e2e: E2E, rotate: bool) -> None:
    cfg = _installed(e2e)
    body: dict[str, Any] = {"configurationId": cfg}
    if rotate:
        body["rotateSecrets"] = True
    answer = _at_the_stamp(e2e, cfg, _admin(e2e, body))
    assert answer.status_code == 200, answer.text[:300]
    [report] = answer.json()["installations"]
    assert report["configurationId"] == cfg


def test_the_sweep_goes_on_to_the_next_installation(e2e: E2E) -> None:
    first = _installed(e2e)
    e2e.emulator.create_team("globex")
    second = str(e2e.install("globex")["configurationId"])
    assert e2e.emulator.drain(20)
    store = e2e.services().store
    store.mark_pending(first)  # oldest first: the sweep reaches `first` first
    store.mark_pending(second)

    def sweep() -> httpx.Response:
        with e2e.http(headers={"authorization": f"Bearer {E2E_CRON_SECRET}"}) as client:
            return client.get("/provision", params={"sweep": "1"})

    answer = _at_the_stamp(e2e, first, sweep, alone=False)
    assert answer.status_code == 200, answer.text[:300]
    swept = {r["configurationId"]: r for r in answer.json()["swept"]}
    assert swept[second]["outcome"] == "done"
    assert not store.is_pending(second)
    inst = store.get_installation(second)
    assert inst is not None
    assert inst.last_synced_at is not None


def test_the_configuration_page_rotation_redirects_after_the_uninstall(e2e: E2E) -> None:
    cfg = _installed(e2e)
    client = e2e.http()
    client.cookies.set(SESSION_COOKIE, session.issue(e2e.services().store.keyring, cfg))
    try:
        page = client.get("/configure", params={"configurationId": cfg})
        page = client.post(
            "/configure",
            params={"configurationId": cfg},
            data={"csrf": _csrf(page), "action": "rotate"},
        )
        csrf = _csrf(page)
        answer = _at_the_stamp(
            e2e,
            cfg,
            lambda: client.post(
                "/configure",
                params={"configurationId": cfg},
                data={"csrf": csrf, "action": "rotate-confirm"},
            ),
        )
    finally:
        client.close()
    assert answer.status_code == 303, answer.text[:300]


def test_an_uninstall_the_configuration_page_meets_is_the_removed_page(e2e: E2E) -> None:
    """The page records a disabled configuration (`set_status`); uninstalled meanwhile,
    the store refuses that write (`Gone`): the person sees the removed page, a 410."""
    cfg = _installed(e2e)
    client = e2e.http()
    client.cookies.set(SESSION_COOKIE, session.issue(e2e.services().store.keyring, cfg))
    e2e.emulator.disable_configuration(cfg)
    try:
        answer = _at_the_stamp(
            e2e, cfg, lambda: client.get("/configure", params={"configurationId": cfg})
        )
    finally:
        client.close()
    assert answer.status_code == 410, answer.text[:300]
    assert "This integration was removed" in answer.text
    assert "Back to Vercel" in answer.text
