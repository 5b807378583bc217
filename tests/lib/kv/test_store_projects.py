"""`Store.record_project`: a reconcile's record of one project is a compare-and-set
against the record it read, and a lost race never leaves a fingerprint that no write is
known to have produced. Over the KV gateway (real REST protocol, real scripts)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lib.crypto import EncryptionKey, Keyring
from lib.kv.client import KV
from lib.kv.records import Installation, ProjectRecord
from lib.kv.store import Gone, Store

KEY = EncryptionKey(key_id="k1", key=bytes(range(32)))
CFG = "icfg_1"
SECRET_SLOT, PLAIN_SLOT = "API_KEY||0", "REGION||0"


@pytest.fixture
def store(kv: Any) -> Store:
    store = Store(KV(kv.url, kv.token), Keyring(KEY), prefix="r:")
    inst = Installation(
        configuration_id=CFG,
        owner_id="team_1",
        team_id="team_1",
        user_id="user_1",
        sealed_token=store.seal_token(CFG, "vca_token"),
    )
    store.save_installation(inst, pending=False)
    return store


def _record(secret_fp: str, secret_id: str = "env_1") -> ProjectRecord:
    env = {
        SECRET_SLOT: {"id": secret_id, "fp": secret_fp},
        PLAIN_SLOT: {"id": "env_2", "fp": "same"},
    }
    return ProjectRecord(project_id="prj_1", env=env)


def test_a_record_over_the_one_read_is_written_in_one_round_trip(store: Store, kv: Any) -> None:
    assert store.record_project(CFG, _record("old"), None)
    [previous] = store.load(CFG)[2].values()
    kv.gateway.reset_stats()
    assert store.record_project(CFG, _record("new"), previous)
    assert kv.gateway.stats()["requests"] == 1
    assert store.get_projects(CFG)["prj_1"].env[SECRET_SLOT]["fp"] == "new"
    assert not store.is_pending(CFG)


def test_a_record_written_by_an_earlier_version_is_compared_as_stored(store: Store) -> None:
    # No `removed_at`/`updated_at`, keys in another order: what an older version wrote.
    old = {"env": {SECRET_SLOT: {"fp": "old", "id": "env_1"}}, "project_id": "prj_1"}
    store.kv.call("HSET", store.key("projects", CFG), "prj_1", json.dumps(old))
    previous = store.get_projects(CFG)["prj_1"]
    assert store.record_project(CFG, _record("new"), previous)
    assert not store.is_pending(CFG)


def test_two_runs_that_wrote_different_values_leave_that_slot_to_be_rewritten(
    store: Store, kv: Any
) -> None:
    """The rotation race: both runs read no record; one recorded the value it wrote with
    the old secret, the other then records the new one. Neither knows which Vercel kept."""
    assert store.record_project(CFG, _record("old"), None)
    kv.gateway.reset_stats()
    assert not store.record_project(CFG, _record("new"), None)
    assert kv.gateway.stats()["requests"] == 3  # the lost script, a read, the merge
    env = store.get_projects(CFG)["prj_1"].env
    assert env[SECRET_SLOT] == {"id": "env_1"}  # no fingerprint: the next run rewrites it
    assert env[PLAIN_SLOT] == {"id": "env_2", "fp": "same"}  # both wrote the same value
    assert store.is_pending(CFG)


def test_two_runs_that_wrote_the_same_values_merge_without_more_work(store: Store) -> None:
    assert store.record_project(CFG, _record("same-value"), None)
    other = _record("same-value")
    other.env["EXTRA||0"] = {"id": "env_3", "fp": "x"}
    assert store.record_project(CFG, other, None)
    env = store.get_projects(CFG)["prj_1"].env
    assert env == {**_record("same-value").env, "EXTRA||0": {"id": "env_3", "fp": "x"}}
    assert not store.is_pending(CFG)


def test_another_var_for_the_same_slot_is_no_known_value(store: Store) -> None:
    assert store.record_project(CFG, _record("v", secret_id="env_a"), None)
    assert not store.record_project(CFG, _record("v", secret_id="env_b"), None)
    assert store.get_projects(CFG)["prj_1"].env[SECRET_SLOT] == {"id": "env_b"}


def test_a_project_removal_recorded_meanwhile_stays(store: Store) -> None:
    store.put_project(CFG, ProjectRecord(project_id="prj_1", removed_at=123.0))
    store.record_project(CFG, _record("v"), None)
    assert store.get_projects(CFG)["prj_1"].removed_at == 123.0


def test_nothing_is_recorded_for_an_uninstalled_installation(store: Store) -> None:
    store.delete_installation(CFG, ["team_1"])
    with pytest.raises(Gone):
        store.record_project(CFG, _record("v"), None)
    assert store.get_projects(CFG) == {}


def test_the_bytes_read_are_no_part_of_the_record(store: Store) -> None:
    assert store.record_project(CFG, _record("v"), None)
    read = store.get_projects(CFG)["prj_1"]
    assert read.stored is not None
    assert read == ProjectRecord.model_validate_json(read.stored)  # which has none


def test_a_record_forgotten_meanwhile_is_written_afresh(store: Store) -> None:
    """The run read a record; the project was forgotten before it wrote: the compare
    fails, and the write goes over nothing (no merge with a record that is not there)."""
    assert store.record_project(CFG, _record("old"), None)
    previous = store.get_projects(CFG)["prj_1"]
    store.forget_project(CFG, "prj_1")
    assert store.record_project(CFG, _record("new"), previous)
    assert store.get_projects(CFG)["prj_1"].env == _record("new").env
    assert not store.is_pending(CFG)


def test_slots_only_the_other_run_recorded_are_kept(store: Store) -> None:
    theirs = ProjectRecord(project_id="prj_1", env={"THEIRS||0": {"id": "env_9", "fp": "t"}})
    assert store.record_project(CFG, theirs, None)
    ours = ProjectRecord(project_id="prj_1", env={"OURS||0": {"id": "env_8"}})
    assert store.record_project(CFG, ours, None)
    assert store.get_projects(CFG)["prj_1"].env == {
        "THEIRS||0": {"id": "env_9", "fp": "t"},
        "OURS||0": {"id": "env_8"},
    }


def test_two_vars_for_one_slot_without_fingerprints_merge_to_ours(store: Store) -> None:
    assert store.record_project(
        CFG, ProjectRecord(project_id="prj_1", env={"S||0": {"id": "a"}}), None
    )
    ours = ProjectRecord(project_id="prj_1", env={"S||0": {"id": "b"}})
    assert store.record_project(CFG, ours, None)  # no fingerprint was dropped
    assert store.get_projects(CFG)["prj_1"].env == {"S||0": {"id": "b"}}
    assert not store.is_pending(CFG)


def test_a_record_that_kept_changing_gives_up_saying_so(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lib.kv.store import CAS_ATTEMPTS, Contended

    real = store.kv.call
    reads: list[object] = []

    def meddling(*args: Any, **kwargs: Any) -> Any:
        got = real(*args, **kwargs)
        if args[0] == "HGET":  # another run writes between each read and our write
            reads.append(args)
            other = {"project_id": "prj_1", "removed_at": float(len(reads))}
            real("HSET", store.key("projects", CFG), "prj_1", json.dumps(other))
        return got

    monkeypatch.setattr(store.kv, "call", meddling)
    assert store.record_project(CFG, _record("a"), None)
    with pytest.raises(Contended) as caught:
        store.record_project(CFG, _record("b"), None)
    assert str(caught.value) == "the project record kept changing under this write"
    assert len(reads) == CAS_ATTEMPTS


def test_a_damaged_record_met_while_merging_is_named(store: Store) -> None:
    from lib.kv.records import StoreError

    store.kv.call("HSET", store.key("projects", CFG), "prj_1", "{damaged")
    with pytest.raises(StoreError, match="prj_1"):
        store.record_project(CFG, _record("v"), None)
