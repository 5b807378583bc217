"""lib/store.py over the real SDK, the KV gateway and Redis."""

import json
import threading

import pytest

from lib.crypto import CryptoError, Keyring
from lib.kv.client import KV
from lib.kv.records import Installation, ProjectRecord, StoreError
from lib.kv.store import Store
from lib.settings import EncryptionKey

KEY = EncryptionKey(key_id="k1", key=bytes(range(32)))
OTHER = EncryptionKey(key_id="k2", key=bytes(range(1, 33)))


@pytest.fixture
def store(kv) -> Store:
    return Store(KV(kv.url, kv.token), Keyring(KEY), prefix="t:")


def make_installation(
    store: Store, cfg: str = "icfg_1", owner: str = "team_1", token: str = "vca_secret_token_1"
) -> Installation:
    return Installation(
        configuration_id=cfg,
        owner_id=owner,
        team_id=owner if owner.startswith("team_") else None,
        user_id="user_1",
        sealed_token=store.seal_token(cfg, token),
        scopes=["read:project"],
    )


def raw_values(kv) -> str:
    keys = kv.gateway.backend.execute([b"KEYS", b"*"])
    dump = []
    for key in keys:
        kind = kv.gateway.backend.execute([b"TYPE", key])
        if kind in (b"string", "string"):
            dump.append(kv.gateway.backend.execute([b"GET", key]))
        elif kind in (b"hash", "hash"):
            dump.append(kv.gateway.backend.execute([b"HGETALL", key]))
    return repr(dump)


def test_installation_round_trip_with_indexes_in_one_transaction(store: Store, kv) -> None:
    inst = make_installation(store)
    kv.gateway.reset_stats()
    store.save_installation(inst, secrets={"api_key": "sk_live_abcdefgh"})
    assert kv.gateway.stats()["requests"] == 1
    got = store.get_installation("icfg_1")
    assert got is not None
    assert got.owner_id == "team_1"
    assert store.token(got) == "vca_secret_token_1"
    assert store.installations_for_owner("team_1") == ["icfg_1"]
    assert store.all_installations() == ["icfg_1"]
    assert store.get_secrets("icfg_1") == {"api_key": "sk_live_abcdefgh"}


def test_secrets_and_tokens_are_sealed_at_rest(store: Store, kv) -> None:
    store.save_installation(make_installation(store), secrets={"api_key": "sk_live_abcdefgh"})
    dump = raw_values(kv)
    assert "vca_secret_token_1" not in dump
    assert "sk_live_abcdefgh" not in dump
    assert "v1.k1." in dump


def test_token_opens_only_with_the_key_and_for_its_record(store: Store, kv) -> None:
    store.save_installation(make_installation(store))
    inst = store.get_installation("icfg_1")
    assert inst is not None
    wrong_key = Store(store.kv, Keyring(OTHER), prefix="t:")
    with pytest.raises(CryptoError):
        wrong_key.token(inst)
    moved = inst.model_copy(update={"configuration_id": "icfg_2"})
    with pytest.raises(CryptoError):
        store.token(moved)


def test_rotated_key_still_opens_old_tokens(store: Store) -> None:
    store.save_installation(make_installation(store))
    rotated = Store(store.kv, Keyring(OTHER, old=[KEY]), prefix="t:")
    inst = rotated.get_installation("icfg_1")
    assert inst is not None
    assert rotated.token(inst) == "vca_secret_token_1"


def test_new_secrets_never_overwrite_existing_ones(store: Store) -> None:
    inst = make_installation(store)
    store.save_installation(inst, secrets={"api_key": "first-value-000"})
    store.save_installation(inst, secrets={"api_key": "second-value-00"})
    assert store.get_secrets("icfg_1") == {"api_key": "first-value-000"}
    store.set_secrets("icfg_1", {"api_key": "rotated-value-0"})
    assert store.get_secrets("icfg_1") == {"api_key": "rotated-value-0"}


def test_delete_leaves_nothing_of_the_installation(store: Store, kv) -> None:
    store.save_installation(make_installation(store), secrets={"s": "secret-value-1"})
    store.save_installation(make_installation(store, cfg="icfg_2", owner="team_1"))
    store.put_project(
        "icfg_1", ProjectRecord(project_id="prj_1", env={"A||0": {"id": "env_1", "fp": "x"}})
    )
    store.mark_pending("icfg_1")
    store.delete_installation("icfg_1", ["team_1"])
    keys = [k.decode() for k in kv.gateway.backend.execute([b"KEYS", b"*"])]
    assert not [k for k in keys if "icfg_1" in k]
    assert store.installations_for_owner("team_1") == ["icfg_2"]
    assert store.all_installations() == ["icfg_2"]
    assert store.pending() == []


def test_load_is_one_round_trip(store: Store, kv) -> None:
    store.save_installation(make_installation(store), secrets={"s": "secret-value-1"})
    store.put_project("icfg_1", ProjectRecord(project_id="prj_1"))
    kv.gateway.reset_stats()
    inst, secrets, projects = store.load("icfg_1")
    assert kv.gateway.stats()["requests"] == 1
    assert inst is not None
    assert secrets == {"s": "secret-value-1"}
    assert list(projects) == ["prj_1"]
    assert store.load("icfg_missing") == (None, {}, {})


def test_set_status_never_resurrects_a_deleted_installation(store: Store) -> None:
    store.save_installation(make_installation(store))
    assert store.set_status("icfg_1", "paused", "disabled") is not None
    assert store.get_installation("icfg_1").status == "paused"  # type: ignore[union-attr]
    store.delete_installation("icfg_1", ["team_1"])
    assert store.set_status("icfg_1", "active", None) is None
    assert store.get_installation("icfg_1") is None


def test_released_event_lease_can_be_claimed_again(store: Store) -> None:
    key = store.key("event", "evt_2")
    assert store.kv.call("SET", key, "lease-1", "NX", "EX", 30)
    store.release_event("evt_2")
    assert store.kv.call("GET", key) is None


def test_one_time_state_is_consumed_once(store: Store) -> None:
    assert store.put_state("st_1", {"b": "x"}, ttl_s=60)
    assert not store.put_state("st_1", {"b": "y"}, ttl_s=60)
    takers: list[object] = []
    barrier = threading.Barrier(6)

    def take() -> None:
        barrier.wait()
        takers.append(store.take_state("st_1"))

    threads = [threading.Thread(target=take) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [t for t in takers if t is not None] == [{"b": "x"}]


def test_pending_is_oldest_first(store: Store) -> None:
    store.mark_pending("icfg_a")
    store.mark_pending("icfg_b")
    store.mark_pending("icfg_a")  # re-marking moves it to the back
    assert store.pending() == ["icfg_b", "icfg_a"]
    store.clear_pending("icfg_b")
    assert store.pending() == ["icfg_a"]


def test_key_prefix_isolates_deployments(store: Store, kv) -> None:
    other = Store(store.kv, Keyring(KEY), prefix="other:")
    store.save_installation(make_installation(store))
    assert other.get_installation("icfg_1") is None
    assert other.all_installations() == []


def test_corrupt_record_raises_store_error(store: Store) -> None:
    store.kv.call("SET", "t:inst:icfg_bad", json.dumps({"nope": 1}))
    with pytest.raises(StoreError, match="unreadable"):
        store.get_installation("icfg_bad")


def test_secrets_sealed_for_one_installation_do_not_open_for_another(store: Store) -> None:
    store.save_installation(make_installation(store), secrets={"s": "secret-value-1"})
    sealed = store.kv.call("HGET", "t:secrets:icfg_1", "s")
    store.kv.call("HSET", "t:secrets:icfg_2", "s", sealed)
    with pytest.raises(StoreError, match="cannot be opened"):
        store.get_secrets("icfg_2")


def test_unsealed_values_are_redacted_from_logs(store: Store, capsys) -> None:
    from lib.log import configure, get_logger

    configure()
    store.save_installation(
        make_installation(store, token="vca_token_for_log_test"),
        secrets={"s": "secret-for-log-test"},
    )
    inst = store.get_installation("icfg_1")
    assert inst is not None
    token = store.token(inst)
    secret = store.get_secrets("icfg_1")["s"]
    get_logger("test").info("leak %s and %s and %s", token, secret, inst.sealed_token)
    out = capsys.readouterr().out
    assert token not in out
    assert secret not in out
    assert inst.sealed_token not in out  # the field name and the v1. shape are both masked
