"""lib/provisioning/history.py: when a sync or rotation is stamped, and when not."""

from __future__ import annotations

import pytest

from lib.crypto import EncryptionKey, Keyring
from lib.kv.client import KV
from lib.kv.records import Installation
from lib.kv.store import Contended, Gone, Store
from lib.provisioning.history import note_rotated, note_synced
from lib.provisioning.reports import InstallationReport, Outcome, ProjectReport

KEY = EncryptionKey(key_id="k1", key=bytes(range(32)))


@pytest.fixture
def store(kv) -> Store:  # type: ignore[no-untyped-def]
    store = Store(KV(kv.url, kv.token), Keyring(KEY), prefix="h:")
    store.save_installation(
        Installation(
            configuration_id="icfg_1",
            owner_id="team_1",
            team_id="team_1",
            user_id="user_1",
            sealed_token=store.seal_token("icfg_1", "vca_token_for_history"),
        ),
        pending=False,
    )
    return store


def _report(
    outcome: Outcome = "done", writes: int = 0, pending: bool = False
) -> InstallationReport:
    return InstallationReport(
        "icfg_1", outcome, projects=[ProjectReport("prj_1", writes=writes)], pending=pending
    )


def _times(store: Store) -> tuple[float | None, float | None]:
    inst = store.get_installation("icfg_1")
    assert inst is not None
    return inst.last_synced_at, inst.last_rotated_at


@pytest.mark.parametrize(
    ("writes", "asked", "stamped"),
    [
        (0, False, False),  # a background no-op writes nothing at all
        (3, False, True),  # the reconcile notes what it wrote
        (0, True, True),  # a resync somebody asked for is a sync, even with nothing to do
        (3, True, False),  # ...noted once: the reconcile already did
    ],
)
def test_a_finished_sync_is_noted_once(
    store: Store, writes: int, asked: bool, stamped: bool
) -> None:
    note_synced(store, _report(writes=writes), asked=asked)
    synced, rotated = _times(store)
    assert (synced is not None) is stamped
    assert rotated is None


@pytest.mark.parametrize(
    "report",
    [
        _report("partial", 2, pending=True),
        _report("paused"),
        _report("broken"),
        _report(pending=True),
    ],
)
def test_an_unfinished_run_is_never_a_sync(store: Store, report: InstallationReport) -> None:
    note_synced(store, report, asked=True)
    note_synced(store, report)
    assert _times(store) == (None, None)


def test_rotation_is_stamped_and_the_rest_of_the_record_kept(store: Store) -> None:
    before = store.get_installation("icfg_1")
    note_rotated(store, "icfg_1")
    after = store.get_installation("icfg_1")
    assert before is not None
    assert after is not None
    assert after.last_rotated_at is not None
    assert after.model_copy(update={"last_rotated_at": None}) == before


def test_a_lost_race_keeps_the_old_stamp_and_an_uninstall_is_not_stamped(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def contended(*_args: object, **_kwargs: object) -> None:
        raise Contended("busy")

    with monkeypatch.context() as patched:
        patched.setattr(store, "update_installation", contended)
        note_rotated(store, "icfg_1")  # logged, not raised: the rotation itself happened
    assert _times(store) == (None, None)
    store.delete_installation("icfg_1", ["team_1"])
    note_rotated(store, "icfg_1")  # a stamp is a nicety: the caller's report says the rest
    assert store.get_installation("icfg_1") is None
    with pytest.raises(Gone):
        store.mark_pending("icfg_1")  # and the tombstone still refuses every write


def test_the_installations_list_pages_by_id_and_survives_removals(store: Store) -> None:
    from lib.provisioning.admin import MAX_PAGE, list_installations

    for n in range(2, 6):
        cfg = f"icfg_{n}"
        store.save_installation(
            Installation(
                configuration_id=cfg,
                owner_id="team_1",
                team_id="team_1",
                user_id="user_1",
                sealed_token=store.seal_token(cfg, "vca_token_for_history"),
            ),
            pending=n == 3,
        )
    first = list_installations(store, None, 2)
    assert [i["configurationId"] for i in first.items] == ["icfg_1", "icfg_2"]
    assert (first.next_cursor, first.total) == ("icfg_2", 5)
    store.delete_installation("icfg_2", ["team_1"])  # the cursor's own id goes away
    second = list_installations(store, first.next_cursor, 2)
    assert [(i["configurationId"], i["pending"]) for i in second.items] == [
        ("icfg_3", True),
        ("icfg_4", False),
    ]
    last = list_installations(store, second.next_cursor, 2)
    assert [i["configurationId"] for i in last.items] == ["icfg_5"]
    assert last.next_cursor is None
    assert "sealedToken" not in repr(last.items)
    assert "sealed_token" not in repr(last.items)
    for bad in (0, MAX_PAGE + 1):
        with pytest.raises(ValueError, match="limit"):
            list_installations(store, None, bad)
