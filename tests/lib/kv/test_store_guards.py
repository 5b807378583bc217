"""Uninstall is final and no update is lost: the store's guarded writes (issue 11,
invariants 1, 2 and 6) over the real SDK, the KV gateway and Redis, with the gateway's
holds forcing each interleaving deterministically."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from lib.crypto import EncryptionKey, Keyring
from lib.kv.client import KV
from lib.kv.records import Installation, ProjectRecord
from lib.kv.store import (
    _GUARDED_WRITE,
    CAS_ATTEMPTS,
    EVENT_DONE_TTL_S,
    GONE_TTL_S,
    Contended,
    Gone,
    Store,
)

KEY = EncryptionKey(key_id="k1", key=bytes(range(32)))
CFG = "icfg_" + "A" * 24
VERCEL_RETRY_WINDOW_S = 24 * 3600  # https://vercel.com/docs/webhooks (retries for 24 h)


@pytest.fixture
def store(kv) -> Store:
    # The script cached in the server and known to be: every guarded write is one
    # EVALSHA, which the holds below can single out.
    kv.gateway.backend.execute([b"SCRIPT", b"LOAD", _GUARDED_WRITE.encode()])
    Store._script_cached = True
    return Store(KV(kv.url, kv.token), Keyring(KEY), prefix="t:")


def installation(store: Store, cfg: str = CFG, owner: str = "team_1") -> Installation:
    return Installation(
        configuration_id=cfg,
        owner_id=owner,
        team_id=owner,
        user_id="user_1",
        sealed_token=store.seal_token(cfg, "vca_secret_token_1"),
        scopes=["read:project"],
    )


def everything(kv) -> list[tuple[str, str]]:
    """Every key with its value as text."""
    backend = kv.gateway.backend
    out = []
    for key in backend.execute([b"KEYS", b"*"]):
        kind = backend.execute([b"TYPE", key])
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        value = {
            "string": [b"GET", key],
            "hash": [b"HGETALL", key],
            "set": [b"SMEMBERS", key],
            "zset": [b"ZRANGE", key, b"0", b"-1"],
        }[kind]
        out.append((key.decode(), repr(backend.execute(value))))
    return sorted(out)


def assert_only_tombstone(kv, store: Store, cfg: str = CFG, owner: str = "team_1") -> None:
    """Nothing names the installation, its owner index or a sealed token; the tombstone
    is keyed by a digest and expires after Vercel's retry window and the dedupe window."""
    left = everything(kv)
    for key, value in left:
        assert cfg not in key, key
        assert cfg not in value, key
        assert owner not in key, key
        assert "v1.k1." not in value, key
    assert (store.gone_key(cfg), "b'1'") in left
    ttl = kv.gateway.backend.execute([b"TTL", store.gone_key(cfg).encode()])
    assert VERCEL_RETRY_WINDOW_S < EVENT_DONE_TTL_S < ttl <= GONE_TTL_S


WRITES: dict[str, Callable[[Store], object]] = {
    "save_installation": lambda s: s.save_installation(installation(s)),
    "set_status": lambda s: s.set_status(CFG, "paused", "why"),
    "update_installation": lambda s: s.update_installation(
        CFG, lambda i: i.model_copy(update={"scopes": ["x"]})
    ),
    "put_project": lambda s: s.put_project(CFG, ProjectRecord(project_id="prj_1")),
    "add_secrets": lambda s: s.add_secrets(CFG, {"b": "secret-value-b"}),
    "set_secrets": lambda s: s.set_secrets(CFG, {"a": "secret-value-2"}),
    "mark_pending": lambda s: s.mark_pending(CFG),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_every_write_after_an_uninstall_is_refused(store: Store, kv, write: str) -> None:
    store.save_installation(installation(store), secrets={"a": "secret-value-1"})
    store.delete_installation(CFG, ["team_1"])
    with pytest.raises(Gone):
        WRITES[write](store)
    assert_only_tombstone(kv, store)


@pytest.mark.parametrize("write", sorted(WRITES))
def test_an_uninstall_landing_between_read_and_write_wins(store: Store, kv, write: str) -> None:
    """The writer has read the installation (it is in the middle of its work); the
    uninstall runs to completion while the writer's script is parked before it runs."""
    store.save_installation(installation(store), secrets={"a": "secret-value-1"})
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            WRITES[write](store)
        except BaseException as exc:
            failure.append(exc)

    with kv.gateway.hold(command="EVALSHA", key_glob="t:gone:*") as held:
        thread = threading.Thread(target=writer)
        thread.start()
        assert held.wait_held()
        store.delete_installation(CFG, ["team_1"])
    thread.join(10)
    assert [type(f) for f in failure] == [Gone]
    assert_only_tombstone(kv, store)


def test_writes_of_a_never_stored_installation_create_nothing(store: Store, kv) -> None:
    for write in ("put_project", "add_secrets", "set_secrets", "mark_pending"):
        with pytest.raises(Gone):
            WRITES[write](store)
    assert store.set_status(CFG, "paused", "x") is None
    assert everything(kv) == []


def test_compare_and_set_loses_no_concurrent_field(store: Store, kv) -> None:
    """Writer A read the record, B changes another field meanwhile: A's compare-and-set
    fails, A re-reads and re-applies its change, and both changes are kept."""
    store.save_installation(installation(store), pending=False)

    applied: list[list[str]] = []

    def add_scope(inst: Installation) -> Installation:
        applied.append(inst.scopes)
        return inst.model_copy(update={"scopes": sorted({*inst.scopes, "a"})})

    with kv.gateway.hold(command="EVALSHA", key_glob="t:gone:*") as held:
        a = threading.Thread(target=store.update_installation, args=(CFG, add_scope))
        a.start()
        assert held.wait_held()  # A read the record; its write is parked
        assert store.set_status(CFG, "paused", "b was here") is not None  # B runs through
    a.join(10)
    assert len(applied) == 2  # A's compare-and-set lost once; A re-read and re-applied
    got = store.get_installation(CFG)
    assert got is not None
    assert got.scopes == ["a", "read:project"]
    assert (got.status, got.status_reason) == ("paused", "b was here")


def test_many_concurrent_writers_keep_every_change(store: Store) -> None:
    store.save_installation(installation(store), pending=False)
    barrier = threading.Barrier(6)

    def add(n: int) -> None:
        barrier.wait()
        store.update_installation(
            CFG, lambda i: i.model_copy(update={"project_ids": sorted({*i.project_ids, f"p{n}"})})
        )

    threads = [threading.Thread(target=add, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    got = store.get_installation(CFG)
    assert got is not None
    assert got.project_ids == [f"p{n}" for n in range(6)]


def test_a_writer_that_always_loses_gives_up_retryably(store: Store) -> None:
    store.save_installation(installation(store), pending=False)
    calls = []

    def meddle(inst: Installation) -> Installation:
        calls.append(1)  # another writer changes the record every time we read it
        store.kv.call(
            "SET",
            store.key("inst", CFG),
            inst.model_copy(update={"source": str(len(calls))}).model_dump_json(),
        )
        return inst.model_copy(update={"scopes": ["x"]})

    with pytest.raises(Contended) as caught:
        store.update_installation(CFG, meddle)
    assert caught.value.retryable
    assert len(calls) == CAS_ATTEMPTS


def test_an_owner_change_moves_the_owner_index_in_the_same_write(store: Store) -> None:
    store.save_installation(installation(store), pending=False)
    result = store.update_installation(
        CFG, lambda i: i.model_copy(update={"owner_id": "team_2", "team_id": "team_2"})
    )
    assert result is not None
    assert store.installations_for_owner("team_1") == []
    assert store.installations_for_owner("team_2") == [CFG]


def test_a_refused_change_writes_nothing(store: Store, kv) -> None:
    store.save_installation(installation(store), pending=False)
    kv.gateway.reset_stats()
    result = store.update_installation(CFG, lambda _: None)
    assert result is not None
    assert result[1] is None
    assert kv.gateway.stats()["requests"] == 1  # the read only


def test_the_script_is_sent_again_when_the_server_forgot_it(store: Store, kv) -> None:
    store.save_installation(installation(store), pending=False)
    kv.gateway.backend.execute([b"SCRIPT", b"FLUSH"])
    assert store.set_status(CFG, "paused", "after a flush") is not None
    got = store.get_installation(CFG)
    assert got is not None
    assert got.status == "paused"


def test_an_old_record_without_watermarks_reads_as_zero_and_updates(store: Store) -> None:
    old = installation(store).model_dump(exclude={"owner_at", "scopes_at", "projects_at"})
    store.kv.call("SET", store.key("inst", CFG), json.dumps(old))
    got = store.get_installation(CFG)
    assert got is not None
    assert (got.owner_at, got.scopes_at, got.projects_at) == (0, 0, 0)
    assert store.set_status(CFG, "paused", "x") is not None


def test_an_update_can_mark_work_pending_in_the_same_write(store: Store) -> None:
    store.save_installation(installation(store), pending=False)
    store.update_installation(CFG, lambda i: i.model_copy(update={"scopes": ["y"]}), pending=True)
    assert store.is_pending(CFG)
    assert store.get_installation(CFG).scopes == ["y"]  # type: ignore[union-attr]


def test_an_update_of_a_missing_or_damaged_record_names_it(store: Store) -> None:
    from lib.kv.records import StoreError

    store.kv.call("SET", store.key("inst", "icfg_x"), "{}")
    with pytest.raises(StoreError, match="icfg_x"):
        store.update_installation("icfg_x", lambda i: i)
    store.save_installation(installation(store), pending=False)
    store.delete_installation(CFG, ["team_1"])
    with pytest.raises(Gone) as gone:
        store.update_installation(CFG, lambda i: i)
    assert (gone.value.configuration_id, gone.value.why) == (CFG, "gone")


def test_an_install_completed_after_an_uninstall_writes_nothing(store: Store, kv) -> None:
    claim = store.claim_install("code-g", "icfg_-unnamed", None)
    store.delete_installation(CFG, ["team_1"])
    before = everything(kv)
    with pytest.raises(Gone) as gone:
        store.complete_install(
            claim, lambda s: installation(store), configuration_id=CFG, secrets={"k": "v"}
        )
    assert (gone.value.configuration_id, gone.value.why) == (CFG, "gone")
    assert everything(kv) == before


def test_a_damaged_record_under_a_claim_is_named(store: Store) -> None:
    from lib.kv.records import StoreError

    store.kv.call("SET", store.key("inst", CFG), '{"configuration_id": 1}')
    claim = store.claim_install("code-d", CFG, None)
    with pytest.raises(StoreError, match=CFG):
        store.claimed_installation(claim)
    with pytest.raises(StoreError, match=CFG):
        store.complete_install(claim, lambda s: s, configuration_id=CFG, secrets={})


def test_an_installation_record_that_kept_changing_gives_up_saying_so(store: Store) -> None:
    store.save_installation(installation(store), pending=False)

    def meddle(inst: Installation) -> Installation:
        store.kv.call(
            "SET",
            store.key("inst", CFG),
            inst.model_copy(update={"source": "x" + (inst.source or "")}).model_dump_json(),
        )
        return inst.model_copy(update={"scopes": ["x"]})

    with pytest.raises(Contended) as caught:
        store.update_installation(CFG, meddle)
    assert str(caught.value) == "the installation record kept changing under this write"


# -- the callback's write (Store.complete_install) ---------------------------------------


def test_an_install_merges_with_a_change_made_after_its_claim(store: Store, kv) -> None:
    """A transfer lands between the claim (which read the record) and the install's
    write: the write's compare fails, the record is read again and the install merges
    with the transfer instead of overwriting it."""
    store.save_installation(installation(store), pending=False)
    claim = store.claim_install("code-1", CFG, None)
    store.update_installation(CFG, lambda i: i.model_copy(update={"owner_id": "team_2"}))
    seen: list[str | None] = []

    def build(stored: Installation | None) -> Installation:
        seen.append(stored.owner_id if stored else None)
        assert stored is not None
        return stored.model_copy(update={"scopes": ["read:project", "read-write:env"]})

    kv.gateway.reset_stats()
    before, _after = store.complete_install(claim, build, configuration_id=CFG, secrets={})
    assert kv.gateway.stats()["requests"] == 3  # the lost write, a read, the write
    assert seen == ["team_1", "team_2"]
    assert before is not None
    assert before.owner_id == "team_2"
    now = store.get_installation(CFG)
    assert now is not None
    assert (now.owner_id, now.scopes) == ("team_2", ["read:project", "read-write:env"])


def test_a_reinstall_is_one_write_and_is_pending_again(store: Store, kv) -> None:
    store.save_installation(installation(store), pending=False)
    claim = store.claim_install("code-2", CFG, None)
    kv.gateway.reset_stats()
    before, after = store.complete_install(
        claim, lambda s: s, configuration_id=CFG, secrets={"k": "v"}
    )
    assert kv.gateway.stats()["requests"] == 1
    assert before is not None
    assert after is not None
    assert store.pending() == [CFG]
    assert store.get_secrets(CFG) == {"k": "v"}


def test_an_install_under_another_id_reads_the_record_it_completes(store: Store) -> None:
    """A link without configurationId claims under a placeholder: the record of the id
    the token names is read before the write, not taken as absent."""
    store.save_installation(installation(store), pending=False)
    claim = store.claim_install("code-3", "icfg_-unnamed", None)
    seen: list[str | None] = []

    def build(stored: Installation | None) -> Installation:
        seen.append(stored.configuration_id if stored else None)
        return stored or installation(store)

    store.complete_install(claim, build, configuration_id=CFG, secrets={})
    assert seen == [CFG]


def test_an_install_that_kept_losing_gives_up_saying_so(store: Store) -> None:
    store.save_installation(installation(store), pending=False)
    claim = store.claim_install("code-4", CFG, None)

    def build(stored: Installation | None) -> Installation:
        assert stored is not None
        store.kv.call(  # another writer, every time
            "SET",
            store.key("inst", CFG),
            stored.model_copy(update={"source": "x" + (stored.source or "")}).model_dump_json(),
        )
        return stored.model_copy(update={"scopes": ["z"]})

    with pytest.raises(Contended) as caught:
        store.complete_install(claim, build, configuration_id=CFG, secrets={})
    assert str(caught.value) == "the installation record kept changing under this install"


def test_an_install_refused_by_its_builder_writes_nothing(store: Store, kv) -> None:
    store.save_installation(installation(store), pending=False)
    claim = store.claim_install("code-5", CFG, None)
    before = everything(kv)
    got = store.complete_install(claim, lambda s: None, configuration_id=CFG, secrets={"k": "v"})
    assert got[1] is None
    assert everything(kv) == before


def test_only_a_run_started_after_an_install_clears_its_pending_mark(store: Store) -> None:
    """The callback provisions once the install is stored: that run clears the mark. A
    sweep that had started before the install may not have seen it: it leaves the mark."""
    import time

    store.save_installation(installation(store), pending=False)
    sweep_started = time.time()
    claim = store.claim_install("code-t", CFG, None)
    store.complete_install(claim, lambda s: s, configuration_id=CFG, secrets={})
    assert not store.clear_pending(CFG, started=sweep_started)
    assert store.is_pending(CFG)
    assert store.clear_pending(CFG, started=time.time())
    assert not store.is_pending(CFG)
