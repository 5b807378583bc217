"""lib/kv/records.py: new fields read from records stored before they existed."""

from lib.crypto import EncryptionKey, Keyring
from lib.kv.client import KV
from lib.kv.records import Installation
from lib.kv.store import Store

KEY = EncryptionKey(key_id="k1", key=bytes(range(32)))

# An installation record byte for byte as versions before `last_synced_at` and
# `last_rotated_at` stored it.
OLD = (
    '{"configuration_id":"icfg_1","owner_id":"team_1","team_id":"team_1","user_id":"user_1",'
    '"sealed_token":"v1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAA","scopes":["read:project"],'
    '"source":"marketplace","project_selection":"all","project_ids":[],"status":"active",'
    '"status_reason":null,"created_at":1700000000.5,"updated_at":1700000100.25,'
    '"owner_at":0.0,"scopes_at":0.0,"projects_at":0.0}'
)


def test_a_record_without_the_times_reads_as_never() -> None:
    inst = Installation.model_validate_json(OLD)
    assert (inst.last_synced_at, inst.last_rotated_at) == (None, None)
    assert inst.updated_at == 1700000100.25


def test_the_times_round_trip() -> None:
    inst = Installation.model_validate_json(OLD).model_copy(
        update={"last_synced_at": 1700000200.0, "last_rotated_at": 1700000300.0}
    )
    again = Installation.model_validate_json(inst.model_dump_json())
    assert (again.last_synced_at, again.last_rotated_at) == (1700000200.0, 1700000300.0)


def test_an_old_stored_record_is_updated_in_place_with_a_time(kv) -> None:  # type: ignore[no-untyped-def]
    store = Store(KV(kv.url, kv.token), Keyring(KEY), prefix="t:")
    store.kv.call("SET", "t:inst:icfg_1", OLD)
    store.kv.call("SADD", "t:all", "icfg_1")
    read = store.get_installation("icfg_1")
    assert read is not None
    assert read.last_synced_at is None
    store.update_installation("icfg_1", lambda i: i.model_copy(update={"last_synced_at": 5.0}))
    after = store.get_installation("icfg_1")
    assert after is not None
    assert after.last_synced_at == 5.0
    assert after.model_copy(update={"last_synced_at": None}) == read
