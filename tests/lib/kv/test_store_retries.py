"""A lost answer costs nothing where repeating is safe (lib/kv/client.py retries a call
only when the store declares it idempotent): each store operation declared so runs here
with its first answer lost on the wire — the command ran, the reply never came — and
must end exactly as it does without the loss. Over the real SDK, the gateway and Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lib.crypto import EncryptionKey, Keyring
from lib.kv.client import KV
from lib.kv.records import Installation, ProjectRecord
from lib.kv.store import Store
from tests.lib.kv.test_store import make_installation

KEY = EncryptionKey(key_id="k1", key=bytes(range(32)))
CFG = "icfg_1"


class LosesAnswers(httpx.BaseTransport):
    """Forwards every request; the next `lose` answers (of requests whose body contains
    `only`, when set) are read and then dropped."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.lose = 0
        self.only: bytes | None = None
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if self.lose and (self.only is None or self.only in request.content):
            response.read()
            response.close()
            self.lose -= 1
            self.lost += 1
            raise httpx.ReadError("answer lost (test)", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def wire() -> LosesAnswers:
    return LosesAnswers()


@pytest.fixture
def store(kv: Any, wire: LosesAnswers) -> Store:
    return Store(KV(kv.url, kv.token, transport=wire), Keyring(KEY), prefix="r:")


def installed(store: Store, cfg: str = CFG) -> Installation:
    inst = make_installation(store, cfg)
    store.save_installation(inst, secrets={"s": "secret-1"}, pending=True)
    store.put_project(cfg, ProjectRecord(project_id="prj_1"))
    store.claim_event("evt_held", configuration_id=cfg, owner_id=None)  # a lease to give back
    return inst


def _claimed_and_settled(store: Store) -> object:
    claim = store.claim_event("evt_1", configuration_id=CFG, owner_id=None)
    return (claim.status, store.settle_event("evt_1", done=True, still_installed=[CFG]))


# (what it does, then what it must have returned/left, as seen without a lost answer)
OPERATIONS: dict[str, tuple[Callable[[Store], object], Callable[[Store], object]]] = {
    "get_installation": (
        lambda s: s.get_installation(CFG).configuration_id,  # type: ignore[union-attr]
        lambda s: None,
    ),
    "load": (lambda s: (s.load(CFG)[1], list(s.load(CFG)[2])), lambda s: None),
    "installations_for_owner": (lambda s: s.installations_for_owner("team_1"), lambda s: None),
    "all_installations": (lambda s: s.all_installations(), lambda s: None),
    "installations": (lambda s: [x.pending for x in s.installations([CFG])], lambda s: None),
    "get_secrets": (lambda s: s.get_secrets(CFG), lambda s: None),
    "get_projects": (lambda s: list(s.get_projects(CFG)), lambda s: None),
    "is_pending": (lambda s: s.is_pending(CFG), lambda s: None),
    "pending": (lambda s: s.pending(), lambda s: None),
    "update_installation": (
        lambda s: (
            s.update_installation(  # type: ignore[union-attr]
                CFG, lambda i: i.model_copy(update={"scopes": ["x"]})
            )[0].scopes
        ),
        lambda s: s.get_installation(CFG).scopes,  # type: ignore[union-attr]
    ),
    "set_status": (
        lambda s: s.set_status(CFG, "paused", "disabled").status,  # type: ignore[union-attr]
        lambda s: s.get_installation(CFG).status,  # type: ignore[union-attr]
    ),
    "mark_pending": (lambda s: s.mark_pending(CFG), lambda s: s.is_pending(CFG)),
    "clear_pending": (
        lambda s: s.clear_pending(CFG, started=time.time() + 1),
        lambda s: s.is_pending(CFG),
    ),
    "settle_reconcile": (
        lambda s: s.settle_reconcile(CFG, pending=False),
        lambda s: s.is_pending(CFG),
    ),
    "forget_project": (lambda s: s.forget_project(CFG, "prj_1"), lambda s: s.get_projects(CFG)),
    "put_project": (
        lambda s: s.put_project(CFG, ProjectRecord(project_id="prj_2")),
        lambda s: sorted(s.get_projects(CFG)),
    ),
    "add_secrets": (
        lambda s: s.add_secrets(CFG, {"t": "secret-2"}),
        lambda s: s.get_secrets(CFG),
    ),
    "delete_installation": (
        lambda s: s.delete_installation(CFG, ["team_1"]),
        lambda s: (s.get_installation(CFG), s.all_installations(), s.pending()),
    ),
    "claim_event+settle_event": (_claimed_and_settled, lambda s: None),
    "release_event": (
        lambda s: s.release_event("evt_held"),
        lambda s: s.claim_event("evt_held", configuration_id=CFG, owner_id=None).status,
    ),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_an_operation_safe_to_repeat_survives_its_answer_being_lost(
    kv: Any, wire: LosesAnswers, name: str
) -> None:
    act, after = OPERATIONS[name]
    # The reference: the same operation on another deployment's keys, nothing lost.
    clean = Store(KV(kv.url, kv.token), Keyring(KEY), prefix="c:")
    installed(clean)
    expected = (act(clean), after(clean))

    lossy = Store(KV(kv.url, kv.token, transport=wire), Keyring(KEY), prefix="r:")
    installed(lossy)
    wire.lose = 1
    got = act(lossy)
    assert wire.lost == 1
    assert (got, after(lossy)) == expected


def test_a_claim_whose_answer_was_lost_is_still_ours(store: Store, wire: LosesAnswers) -> None:
    """`SET NX` is not idempotent, but the lease value is this attempt's alone: the
    replay reads it back and knows the claim succeeded (not "busy")."""
    installed(store)
    wire.lose = 1
    claim = store.claim_event("evt_9", configuration_id=CFG, owner_id=None)
    assert wire.lost == 1
    assert claim.status == "ours"
    assert [s.installation.configuration_id for s in store.event_installations(claim)] == [CFG]


def test_a_merge_whose_read_was_lost_still_merges(store: Store, wire: LosesAnswers) -> None:
    """Two runs recorded the same project: the loser reads the winner's record to merge
    with it, and that read's answer is lost."""
    installed(store)
    ours = ProjectRecord(project_id="prj_1", env={"A||0": {"id": "env_a", "fp": "1"}})
    wire.lose, wire.only = 1, b'"HGET"'
    assert store.record_project(CFG, ours, None)  # it read none; prj_1 was recorded
    assert wire.lost == 1
    assert store.get_projects(CFG)["prj_1"].env == {"A||0": {"id": "env_a", "fp": "1"}}


def test_a_settled_event_whose_answer_was_lost_is_still_done(
    store: Store, wire: LosesAnswers
) -> None:
    installed(store)
    store.claim_event("evt_s", configuration_id=CFG, owner_id=None)
    wire.lose, wire.only = 1, b'"done"'
    assert store.settle_event("evt_s", done=True, still_installed=[CFG]) == [True]
    assert wire.lost == 1
    assert store.claim_event("evt_s", configuration_id=CFG, owner_id=None).status == "done"


def test_a_peer_looking_at_a_code_survives_a_lost_answer(store: Store, wire: LosesAnswers) -> None:
    installed(store)
    store.claim_install("code-p", CFG, None)
    peer = store.claim_install("code-p", CFG, None)
    assert not peer.ours
    wire.lose = 1
    assert store.install_progress(peer) == "pending"
    assert wire.lost == 1


def test_a_claim_given_back_over_a_lost_answer_is_given_back(
    store: Store, wire: LosesAnswers
) -> None:
    """The give-back runs on the way out of a failure, where a KV error is swallowed: it
    must not be lost to a dropped answer, or the reload finds the code still "pending"."""
    installed(store)
    claim = store.claim_install("code-u", CFG, "v1.state-u", 60)
    wire.lose = 1
    store.undo_install_claim(claim, release_code=True, restore_state=True)
    assert wire.lost == 1
    again = store.claim_install("code-u", CFG, "v1.state-u", 60)
    assert (again.ours, again.state_fresh) == (True, True)


def test_an_install_reads_its_record_again_over_a_lost_answer(
    store: Store, wire: LosesAnswers
) -> None:
    """A link without configurationId claims under a placeholder; the record of the id
    the token names is read before the write, and that read's answer is lost."""
    installed(store)
    claim = store.claim_install("code-r", "icfg_-unnamed", None)
    wire.lose, wire.only = 1, b'"EXISTS"'
    before, after = store.complete_install(claim, lambda s: s, configuration_id=CFG, secrets={})
    assert wire.lost == 1
    assert before is not None
    assert after is not None
