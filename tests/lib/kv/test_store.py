"""lib/kv/store.py over the real SDK, the KV gateway and Redis."""

import json
import secrets
import threading
import time

import pytest

from lib.crypto import CryptoError, EncryptionKey, Keyring
from lib.kv.client import KV
from lib.kv.records import Installation, ProjectRecord, StoreError
from lib.kv.store import Gone, Store

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
    store.save_installation(make_installation(store, cfg="icfg_2", owner="team_1"), pending=False)
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


def test_delete_leaves_the_index_of_the_owner_the_record_names_now(store: Store) -> None:
    # The caller read team_1 before a transfer moved the installation to team_2.
    store.save_installation(make_installation(store, owner="team_2"), pending=False)
    store.save_installation(make_installation(store, cfg="icfg_2", owner="team_2"), pending=False)
    store.delete_installation("icfg_1", ["team_1"])
    assert store.installations_for_owner("team_2") == ["icfg_2"]
    assert store.installations_for_owner("team_1") == []
    assert store.get_installation("icfg_1") is None


def test_delete_of_a_damaged_record_still_deletes_it(store: Store) -> None:
    store.save_installation(make_installation(store), pending=False)
    store.kv.call("SET", store.key("inst", "icfg_1"), "{not json")
    store.delete_installation("icfg_1", ["team_1"])
    assert store.installations_for_owner("team_1") == []
    assert store.kv.call("EXISTS", store.key("inst", "icfg_1")) == 0
    with pytest.raises(Gone):
        store.mark_pending("icfg_1")


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
    with pytest.raises(Gone):
        store.set_status("icfg_1", "active", None)
    assert store.get_installation("icfg_1") is None


def test_released_event_lease_can_be_claimed_again(store: Store) -> None:
    key = store.key("event", "evt_2")
    assert store.kv.call("SET", key, "lease-1", "NX", "EX", 30)
    store.release_event("evt_2")
    assert store.kv.call("GET", key) is None


def test_an_install_state_is_marked_used_once(store: Store) -> None:
    takers: list[bool] = []
    barrier = threading.Barrier(6)

    def take(n: int) -> None:
        barrier.wait()
        takers.append(store.claim_install(f"code-{n}", "icfg_1", "v1.st", 60).state_fresh)

    threads = [threading.Thread(target=take, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(takers) == [False] * 5 + [True]
    # No life left: nothing is marked (the caller refuses an expired state anyway).
    assert not store.claim_install("code-x", "icfg_1", "v1.other", 0).state_fresh


def test_pending_is_oldest_first(store: Store) -> None:
    for cfg in ("icfg_a", "icfg_b"):
        store.save_installation(make_installation(store, cfg=cfg), pending=False)
    store.mark_pending("icfg_a")
    store.mark_pending("icfg_b")
    store.mark_pending("icfg_a")  # re-marking moves it to the back
    assert store.pending() == ["icfg_b", "icfg_a"]
    store.clear_pending("icfg_b", started=time.time())
    assert store.pending() == ["icfg_a"]


def test_a_run_never_clears_a_mark_set_after_it_started(store: Store) -> None:
    store.save_installation(make_installation(store), pending=False)
    started = time.time()
    store.mark_pending("icfg_1")  # another run's unfinished work, marked after our start
    assert not store.clear_pending("icfg_1", started=started)
    assert store.is_pending("icfg_1")
    assert store.clear_pending("icfg_1", started=time.time())  # a run that began later
    assert not store.is_pending("icfg_1")
    assert store.clear_pending("icfg_1", started=time.time())  # nothing left: as good as done


def test_key_prefix_isolates_deployments(store: Store, kv) -> None:
    other = Store(store.kv, Keyring(KEY), prefix="other:")
    store.save_installation(make_installation(store))
    assert other.get_installation("icfg_1") is None
    assert other.all_installations() == []


def test_corrupt_record_raises_store_error(store: Store) -> None:
    store.kv.call("SET", "t:inst:icfg_bad", json.dumps({"nope": 1}))
    with pytest.raises(StoreError, match="unreadable") as caught:
        store.get_installation("icfg_bad")
    assert "icfg_bad" in str(caught.value)


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


# -- compatibility: records exactly as deployed versions stored them -------------------------


def _sealed(key: EncryptionKey, plaintext: str, aad: str) -> str:
    """A sealed value built from the documented format, not by the code under test:
    v1.<key id>.<base64url(nonce + AES-GCM(plaintext, aad="v1|<key id>|<aad>"))>."""
    import base64

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = bytes(12)
    box = AESGCM(key.key).encrypt(nonce, plaintext.encode(), f"v1|{key.key_id}|{aad}".encode())
    return f"v1.{key.key_id}." + base64.urlsafe_b64encode(nonce + box).decode().rstrip("=")


def test_reads_every_record_in_the_stored_form_of_deployed_versions(store: Store) -> None:
    """The key layout documented in lib/kv/store.py is a contract with data already in
    KV: each key is written here raw, byte for byte as earlier versions wrote it (an
    unknown field included, as a newer version might add), and read through the store."""
    import hashlib

    raw = store.kv.call
    token = _sealed(KEY, "vca_old_token", "token:icfg_1")
    raw(
        "SET",
        "t:inst:icfg_1",
        '{"configuration_id":"icfg_1","owner_id":"team_1","team_id":"team_1",'
        '"user_id":"user_1","sealed_token":"' + token + '","scopes":["read:project"],'
        '"source":"marketplace","project_selection":"selected","project_ids":["prj_1"],'
        '"status":"paused","status_reason":"missing scope","created_at":1700000000.5,'
        '"updated_at":1700000100.25,"a_field_from_the_future":1}',
    )
    raw("SADD", "t:owner:team_1", "icfg_1")
    raw("SADD", "t:all", "icfg_1")
    raw("ZADD", "t:pending", 1700000200, "icfg_1")
    raw("HSET", "t:secrets:icfg_1", "webhook", _sealed(KEY, "s3cret", "secret:icfg_1:webhook"))
    raw(
        "HSET",
        "t:projects:icfg_1",
        "prj_1",
        '{"project_id":"prj_1","name":"web","env":{"API_URL|*|0":{"id":"env_1","fp":"ab12"},'
        '"TOKEN||1":{"id":"env_2","fp":"cd34","hidden":"preview","seen":"1700000000"}},'
        '"removed_at":null,"updated_at":1700000150.0}',
    )
    raw("SET", "t:event:evt_done", "done")
    raw("SET", "t:event:evt_busy", "processing:0123456789abcdef")
    code_mark = "done:" + hashlib.sha256(b"icfg_1").hexdigest()[:24]
    raw("SET", "t:code:" + hashlib.sha256(b"code_1").hexdigest()[:32], code_mark)
    state = '{"browser": "' + "b" * 64 + '", "issued": 1700000000, "configurationId": "icfg_1"}'
    raw("SET", "t:state:st_1", state)

    inst, secrets, projects = store.load("icfg_1")
    assert inst is not None
    assert (inst.owner_id, inst.team_id, inst.user_id) == ("team_1", "team_1", "user_1")
    assert (inst.status, inst.status_reason, inst.source) == (
        "paused",
        "missing scope",
        "marketplace",
    )
    assert (inst.project_selection, inst.project_ids) == ("selected", ["prj_1"])
    assert (inst.created_at, inst.updated_at) == (1700000000.5, 1700000100.25)
    assert store.token(inst) == "vca_old_token"
    assert secrets == {"webhook": "s3cret"}
    assert projects["prj_1"].env["TOKEN||1"]["hidden"] == "preview"
    assert projects["prj_1"].env["API_URL|*|0"] == {"id": "env_1", "fp": "ab12"}
    assert store.installations_for_owner("team_1") == ["icfg_1"]
    assert store.all_installations() == ["icfg_1"]
    assert store.pending() == ["icfg_1"]

    assert store.claim_event("evt_done", configuration_id="icfg_1", owner_id=None).status == "done"
    assert store.claim_event("evt_busy", configuration_id=None, owner_id="team_1").status == "busy"
    by_owner = store.claim_event("evt_new", configuration_id=None, owner_id="team_1")
    assert by_owner.status == "ours"
    [found] = store.event_installations(by_owner)
    assert (found.installation.configuration_id, found.pending) == ("icfg_1", True)

    # A state of the earlier stored form is no longer read (it expires by itself); the
    # "used" mark of a signed state lives beside it under another key.
    claim = store.claim_install("code_1", "icfg_1", "st_1", 600)
    assert (claim.ours, claim.peer, claim.state_fresh) == (False, "done", True)
    assert raw("GET", "t:state:st_1") == state
    assert store.claimed_installation(claim) == inst


def test_writes_keep_the_stored_form(store: Store) -> None:
    """What the store writes is what deployed versions read: same keys, same values."""
    import hashlib
    import re

    raw = store.kv.call
    inst = make_installation(store)
    store.save_installation(inst, secrets={"s": "v"})
    assert raw("GET", "t:inst:icfg_1") == inst.model_dump_json()
    assert raw("SMEMBERS", "t:owner:team_1") == ["icfg_1"]
    assert raw("SMEMBERS", "t:all") == ["icfg_1"]
    assert re.fullmatch(r"v1\.k1\.[A-Za-z0-9_-]+", raw("HGET", "t:secrets:icfg_1", "s"))

    claim = store.claim_event("evt_1", configuration_id="icfg_1", owner_id=None)
    assert claim.status == "ours"
    assert re.fullmatch(r"processing:[0-9a-f]{16}", raw("GET", "t:event:evt_1"))
    assert 0 < raw("TTL", "t:event:evt_1") <= 60
    assert store.settle_event("evt_1", done=True, still_installed=["icfg_1", "icfg_x"]) == [
        True,
        False,
    ]
    assert raw("GET", "t:event:evt_1") == "done"
    assert 47 * 3600 < raw("TTL", "t:event:evt_1") <= 48 * 3600

    code_key = "t:code:" + hashlib.sha256(b"code_1").hexdigest()[:32]
    state_key = "t:state:" + hashlib.sha256(b"v1.st").hexdigest()[:32]
    claim2 = store.claim_install("code_1", "icfg_1", "v1.st", 600)
    assert claim2.ours
    assert claim2.state_fresh
    assert raw("GET", code_key) == "pending"
    assert raw("GET", state_key) == "used"
    assert 590 < raw("TTL", state_key) <= 600
    store.complete_install(claim2, lambda _: inst, configuration_id="icfg_1", secrets={})
    assert raw("GET", code_key) == "done:" + hashlib.sha256(b"icfg_1").hexdigest()[:24]
    assert 29 * 60 < raw("TTL", code_key) <= 30 * 60
    assert raw("ZSCORE", "t:pending", "icfg_1") is not None


def test_a_token_sealed_with_a_retired_key_is_resealed_when_next_written(store: Store) -> None:
    """Key rotation (README, Configuration): an installation written under the old key
    is resealed with the new one the next time the store writes it; reads never write."""
    old = store
    inst = make_installation(old)
    old.save_installation(inst)
    assert inst.sealed_token.startswith("v1.k1.")
    rotated = Store(old.kv, Keyring(OTHER, old=[KEY]), prefix="t:")
    read = rotated.get_installation("icfg_1")
    assert read is not None
    assert read.sealed_token == inst.sealed_token  # reading alone changes nothing
    updated = rotated.set_status("icfg_1", "paused", "missing scope")
    assert updated is not None
    assert updated.sealed_token.startswith("v1.k2.")
    again = rotated.get_installation("icfg_1")
    assert again is not None
    assert again.sealed_token.startswith("v1.k2.")
    assert rotated.token(again) == "vca_secret_token_1"
    rotated.save_installation(again.model_copy(update={"sealed_token": inst.sealed_token}))
    stored = rotated.get_installation("icfg_1")
    assert stored is not None
    assert stored.sealed_token.startswith("v1.k2.")


# -- what the mutation run found unjudged (issue 11, `make mutation`) --------------------------


def test_values_sealed_by_another_instance_are_redacted_once_read(store: Store) -> None:
    """In production the function that reads a token is rarely the one that sealed it:
    reading it is what must teach the log to mask it."""
    from lib.log import redact

    # Fresh values each run: the log's secret registry lives as long as the process.
    token, secret = f"vca_{secrets.token_hex(8)}", f"secret-{secrets.token_hex(8)}"
    inst = make_installation(store).model_copy(
        update={"sealed_token": _sealed(KEY, token, "token:icfg_1")}
    )
    store.kv.call("SET", "t:inst:icfg_1", inst.model_dump_json())
    store.kv.call("HSET", "t:secrets:icfg_1", "s", _sealed(KEY, secret, "secret:icfg_1:s"))
    assert redact(f"{token} {secret}") == f"{token} {secret}"  # unknown until read
    loaded = store.get_installation("icfg_1")
    assert loaded is not None
    assert store.token(loaded) == token
    assert store.get_secrets("icfg_1") == {"s": secret}
    line = redact(f"leak {token} and {secret}")
    assert line.startswith("leak ")
    assert token not in line
    assert secret not in line


def test_a_damaged_record_is_named_in_the_error(store: Store) -> None:
    store.kv.call("SET", "t:inst:icfg_bad", json.dumps({"nope": 1}))
    store.kv.call(
        "SET", "t:inst:icfg_ok", make_installation(store, cfg="icfg_ok").model_dump_json()
    )
    store.kv.call("HSET", "t:projects:icfg_ok", "prj_bad", json.dumps({"env": 7}))
    with pytest.raises(StoreError, match="icfg_bad"):
        store.load("icfg_bad")
    with pytest.raises(StoreError, match="icfg_bad"):
        store.installations(["icfg_ok", "icfg_bad"])
    with pytest.raises(StoreError, match="prj_bad"):
        store.get_projects("icfg_ok")
    with pytest.raises(StoreError, match="prj_bad"):
        store.load("icfg_ok")
    claim = store.claim_event("evt_bad", configuration_id="icfg_bad", owner_id=None)
    with pytest.raises(StoreError, match="icfg_bad"):
        store.event_installations(claim)


def test_installations_reads_each_record_with_its_own_pending_mark(store: Store, kv) -> None:
    for cfg in ("icfg_a", "icfg_b", "icfg_c"):
        store.save_installation(make_installation(store, cfg=cfg), pending=False)
    store.mark_pending("icfg_b")
    kv.gateway.reset_stats()
    found = store.installations(["icfg_a", "icfg_b", "icfg_missing", "icfg_c"])
    assert kv.gateway.stats()["requests"] == 1
    assert [(s.installation.configuration_id, s.pending) for s in found] == [
        ("icfg_a", False),
        ("icfg_b", True),
        ("icfg_c", False),
    ]
    assert store.installations([]) == []


def test_an_owner_event_finds_every_installation_of_the_owner(store: Store, kv) -> None:
    for cfg in ("icfg_b", "icfg_a"):
        store.save_installation(make_installation(store, cfg=cfg), pending=False)
    store.mark_pending("icfg_b")
    claim = store.claim_event("evt_o", configuration_id=None, owner_id="team_1")
    found = store.event_installations(claim)
    assert [(s.installation.configuration_id, s.pending) for s in found] == [
        ("icfg_a", False),
        ("icfg_b", True),
    ]
    nobody = store.claim_event("evt_n", configuration_id=None, owner_id="team_nobody")
    kv.gateway.reset_stats()
    assert store.event_installations(nobody) == []
    assert kv.gateway.stats()["requests"] == 0  # an owner with no installations: no lookup


def test_set_status_writes_only_a_change_and_stamps_it(store: Store) -> None:
    store.save_installation(make_installation(store), pending=False)
    first = store.get_installation("icfg_1")
    assert first is not None
    raw = store.kv.call("GET", "t:inst:icfg_1")
    # Same status and reason: nothing is written.
    store.set_status("icfg_1", "active", None)
    assert store.kv.call("GET", "t:inst:icfg_1") == raw
    # Either one changing is a change, stamped with its time.
    for status, reason in (("paused", None), ("paused", "disabled"), ("active", "disabled")):
        before = time.time()
        store.set_status("icfg_1", status, reason)  # type: ignore[arg-type]
        now = store.get_installation("icfg_1")
        assert now is not None
        assert (now.status, now.status_reason) == (status, reason)
        assert now.updated_at >= before > first.updated_at - 1


def test_add_secrets_keeps_what_exists_and_set_secrets_replaces_it(store: Store) -> None:
    store.save_installation(make_installation(store), secrets={"s": "first"}, pending=False)
    store.add_secrets("icfg_1", {"s": "second", "t": "new"})
    assert store.get_secrets("icfg_1") == {"s": "first", "t": "new"}
    store.set_secrets("icfg_1", {"s": "rotated"})
    assert store.get_secrets("icfg_1") == {"s": "rotated", "t": "new"}


def test_the_fingerprint_key_is_stable_across_releases(store: Store) -> None:
    # Fingerprints of every value written are stored in the project records: another key
    # would make every variable look changed and be written again everywhere.
    assert store.fingerprint_key().hex() == (
        "f5960911ed30222c64de79e07e6b1f356c7f9b64935452b7f434d740d6784a24"
    )


def test_settle_reconcile_says_whether_it_still_exists_and_was_pending(store: Store) -> None:
    store.save_installation(make_installation(store), pending=False)
    assert store.settle_reconcile("icfg_1", pending=False) == (True, False)
    store.mark_pending("icfg_1")
    assert store.settle_reconcile("icfg_1", pending=False) == (True, True)
    store.clear_pending("icfg_1", started=time.time())
    assert store.settle_reconcile("icfg_1", pending=True) == (True, False)
    assert store.pending() == ["icfg_1"]
    store.delete_installation("icfg_1", ["team_1"])
    assert store.settle_reconcile("icfg_1", pending=False) == (False, False)
    assert store.settle_reconcile("icfg_1", pending=True) == (False, False)
    assert store.pending() == []


def test_pending_lists_at_most_its_limit_oldest_first(store: Store) -> None:
    members: list[object] = []
    for n in range(103):
        members += [1000 + n, f"icfg_{n:03}"]
    store.kv.call("ZADD", "t:pending", *members)
    assert store.pending() == [f"icfg_{n:03}" for n in range(100)]
    assert store.pending(limit=3) == ["icfg_000", "icfg_001", "icfg_002"]
    assert store.pending(limit=1) == ["icfg_000"]


def test_a_refused_write_says_whether_it_was_uninstalled_or_never_stored(store: Store) -> None:
    with pytest.raises(Gone) as never:
        store.mark_pending("icfg_never")
    assert (never.value.configuration_id, never.value.why) == ("icfg_never", "not stored")
    assert str(never.value) == "installation not stored"
    store.save_installation(make_installation(store), pending=False)
    store.delete_installation("icfg_1", ["team_1"])
    with pytest.raises(Gone) as gone:
        store.mark_pending("icfg_1")
    assert (gone.value.configuration_id, gone.value.why) == ("icfg_1", "gone")
    assert str(gone.value) == "installation gone"


def test_hash_replies_read_as_pairs_in_either_form() -> None:
    from lib.kv.store import _pairs

    assert _pairs(["a", "1", "b", "2"]) == {"a": "1", "b": "2"}
    assert _pairs(["a", "1", "b"]) == {"a": "1"}  # a dangling name is no pair
    assert _pairs({"a": 1}) == {"a": "1"}
    assert _pairs(None) == _pairs([]) == {}


def test_the_default_prefix_and_the_tombstone_keep_their_layout(kv) -> None:
    """Deployed data is found by these names (the layout in lib/kv/store.py's docstring):
    a tombstone written before a deploy must still stop writes after it."""
    import hashlib

    store = Store(KV(kv.url, kv.token), Keyring(KEY))
    assert store.key("inst", "icfg_1") == "vi:inst:icfg_1"
    assert store.gone_key("icfg_1") == "vi:gone:" + hashlib.sha256(b"icfg_1").hexdigest()[:32]
