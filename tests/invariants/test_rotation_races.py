"""No lost update for provisioning records: a rotation racing a reconcile never leaves the
rotated-away secret at Vercel behind a record that says the new one is there.

Forced over real HTTP (/provision), the real SDK, the Vercel emulator and the KV gateway:
run R1 reads the secrets and is parked (in process) just before its create on a project
nobody has provisioned; the rotation's run R2 then writes the new value there and is
parked by a gateway hold on its write of that project's record. R1 goes on: its create
conflicts, it re-lists and writes the old value back, and records it. R2 is let go.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from lib.kv.store import _GUARDED_WRITE
from lib.vercel.client import VercelClient
from tests.conftest import E2E, E2E_ADMIN_TOKEN
from tests.invariants.test_facts_and_work import _installed, _skipped

KEY = "ACME_API_KEY"  # the spec's variable holding the `api_key` secret


def _admin(e2e: E2E, body: dict[str, Any]) -> httpx.Response:
    with e2e.http(headers={"authorization": f"Bearer {E2E_ADMIN_TOKEN}"}) as client:
        return client.post("/provision", json=body)


def _values(e2e: E2E, project_id: str) -> set[str]:
    envs = e2e.emulator._ctx.store.envs.values()
    return {e.value for e in envs if e.project_id == project_id and e.key == KEY}


def test_a_rotation_racing_a_reconcile_ends_with_the_new_secret_at_vercel(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _installed(e2e)
    store = e2e.services().store
    _skipped(e2e, lambda: e2e.emulator.create_project("acme", "fresh"))  # nobody hears of it
    fresh = next(str(p["id"]) for p in e2e.emulator.state()["projects"] if p["name"] == "fresh")
    old = store.get_secrets(cfg)["api_key"]

    armed, parked, go = threading.Event(), threading.Event(), threading.Event()
    real_create = VercelClient.create_env

    def create_env(self: VercelClient, project: str, *args: Any, **kwargs: Any) -> Any:
        if project == fresh and armed.is_set():
            armed.clear()
            parked.set()
            assert go.wait(30)
        return real_create(self, project, *args, **kwargs)

    monkeypatch.setattr(VercelClient, "create_env", create_env)
    e2e.kv.gateway.backend.execute([b"SCRIPT", b"LOAD", _GUARDED_WRITE.encode()])
    out: dict[str, httpx.Response] = {}

    def run(name: str, body: dict[str, Any]) -> threading.Thread:
        thread = threading.Thread(target=lambda: out.__setitem__(name, _admin(e2e, body)))
        thread.start()
        return thread

    armed.set()
    r1 = run("r1", {"configurationId": cfg})
    assert parked.wait(20), "R1 never reached its create on the fresh project"
    key_glob = f"vi:projects:{cfg}"
    with e2e.kv.gateway.hold(key_glob=key_glob, path="/", count=1, timeout_seconds=30) as h:
        r2 = run("r2", {"configurationId": cfg, "rotateSecrets": True})
        assert h.wait_held(timeout=20), "R2 never recorded the fresh project"
        go.set()
        r1.join(30)
        assert out["r1"].status_code == 200
    r2.join(30)
    assert out["r2"].status_code == 200
    new = store.get_secrets(cfg)["api_key"]
    assert new != old
    # R1 wrote the old value last; R2's record lost its compare-and-set: nothing claims
    # the new value is there, the installation is pending and R2 says it is unfinished.
    assert _values(e2e, fresh) == {old}
    assert out["r2"].json()["installations"][0]["outcome"] == "partial"
    assert store.is_pending(cfg)
    env = store.get_projects(cfg)[fresh].env
    assert not [e for slot, e in env.items() if slot.startswith(f"{KEY}|") and "fp" in e]
    # Both runs wrote the same value to every other var: those stay known.
    assert all("fp" in e for slot, e in env.items() if not slot.startswith(f"{KEY}|"))

    # The next run (the sweep's, or any resync) writes the new value, then is a no-op.
    assert _admin(e2e, {"configurationId": cfg}).json()["installations"][0]["outcome"] == "done"
    assert _values(e2e, fresh) == {new}
    assert not store.is_pending(cfg)
    again = _admin(e2e, {"configurationId": cfg}).json()["installations"][0]
    assert again["outcome"] == "done"
    assert _values(e2e, fresh) == {new}
