"""What the store remembers, and for how long, checked against Vercel's documented
windows rather than against the store's own constants (issue 11, "Tests that would
notice"): a mutant that shortens a window or drops NX from a lease fails here."""

from __future__ import annotations

import pytest

from lib.crypto import EncryptionKey, Keyring
from lib.kv.client import KV
from lib.kv.records import Installation
from lib.kv.store import Store

KEY = EncryptionKey(key_id="k1", key=bytes(range(32)))
# https://vercel.com/docs/webhooks: failed deliveries are retried for 24 hours.
VERCEL_WEBHOOK_RETRIES_S = 24 * 3600
# https://vercel.com/docs/integrations (the code "is valid for 30 minutes").
VERCEL_CODE_VALIDITY_S = 30 * 60


@pytest.fixture
def store(kv) -> Store:
    return Store(KV(kv.url, kv.token), Keyring(KEY), prefix="w:")


def _ttl(store: Store, key: str) -> int:
    return int(store.kv.call("TTL", key))


def test_a_processed_event_is_remembered_longer_than_vercel_retries_it(store: Store) -> None:
    claim = store.claim_event("evt_1", configuration_id="icfg_1", owner_id=None)
    assert claim.status == "ours"
    store.settle_event("evt_1", done=True)
    assert _ttl(store, store.key("event", "evt_1")) > VERCEL_WEBHOOK_RETRIES_S
    again = store.claim_event("evt_1", configuration_id="icfg_1", owner_id=None)
    assert again.status == "done"


def test_a_lease_is_never_taken_over_while_held(store: Store) -> None:
    first = store.claim_event("evt_2", configuration_id=None, owner_id="team_1")
    held = store.kv.call("GET", store.key("event", "evt_2"))
    second = store.claim_event("evt_2", configuration_id=None, owner_id="team_1")
    assert (first.status, second.status) == ("ours", "busy")
    assert store.kv.call("GET", store.key("event", "evt_2")) == held  # the first keeps it


def test_a_used_code_is_remembered_as_long_as_vercel_could_accept_it(store: Store) -> None:
    cfg = "icfg_" + "C" * 24
    claim = store.claim_install("code-1", cfg, None)
    inst = Installation(
        configuration_id=cfg,
        owner_id="team_1",
        team_id="team_1",
        user_id="user_1",
        sealed_token=store.seal_token(cfg, "vca_token"),
    )
    store.complete_install(claim, lambda _: inst, configuration_id=cfg, secrets={})
    code_key = next(k for k in store.kv.call("KEYS", "w:code:*"))
    assert _ttl(store, code_key) >= VERCEL_CODE_VALIDITY_S - 5
    assert store.claim_install("code-1", cfg, None).peer == "done"
