import hashlib
import hmac
import logging

import pytest

from lib.provisioning.plan import fingerprint, plan
from lib.provisioning.spec import DesiredVar, Slot
from lib.vercel.models import EnvVar

CFG = "icfg_ours"
FPK = b"k" * 32


def want(
    key: str,
    value: str = "v",
    *,
    type: str = "encrypted",
    targets=("production", "preview", "development"),
    part: int = 0,
    branch: str | None = None,
    comment: str | None = None,
    on_conflict: str = "skip",
) -> DesiredVar:
    return DesiredVar(
        slot=Slot(key, branch, part),
        key=key,
        value=value,
        type=type,
        targets=tuple(targets),
        git_branch=branch,
        comment=comment,
        on_conflict=on_conflict,
    )


def var(
    id: str,
    key: str,
    *,
    targets=("production", "preview", "development"),
    type: str = "encrypted",
    cfg: str | None = CFG,
    value: str = "ciphertext",
    branch: str | None = None,
    comment: str | None = None,
) -> EnvVar:
    return EnvVar.model_validate(
        {
            "id": id,
            "key": key,
            "target": list(targets),
            "type": type,
            "configurationId": cfg,
            "value": value,
            "gitBranch": branch,
            "comment": comment,
        }
    )


def run(desired, actual, recorded=None, hidden=None):
    fps = {d.slot: fingerprint(FPK, CFG, d.slot, d.value) for d in desired}
    return plan(
        desired,
        actual,
        configuration_id=CFG,
        recorded=recorded or {},
        fingerprint_of=fps,
        hidden=hidden,
    ), fps


def test_empty_project_gets_one_batched_create_for_all_targets() -> None:
    p, _ = run([want("A"), want("B", type="plain")], [])
    assert [s.key for _, s in p.creates] == ["A", "B"]
    assert p.creates[0][1].target == ["production", "preview", "development"]
    assert p.writes == 1


def test_recorded_fingerprint_makes_rerun_a_noop() -> None:
    d = want("A", "secret")
    p1, _fps = run(
        [d],
        [var("env_1", "A")],
        recorded={d.slot: {"id": "env_1", "fp": fingerprint(FPK, CFG, d.slot, "secret")}},
    )
    assert p1.writes == 0
    assert p1.unchanged == [d.slot]


def test_changed_value_is_patched_by_id_with_type() -> None:
    d = want("A", "new")
    old_fp = fingerprint(FPK, CFG, d.slot, "old")
    p, _ = run([d], [var("env_1", "A")], recorded={d.slot: {"id": "env_1", "fp": old_fp}})
    assert [(u.env_id, u.patch.value, u.patch.type) for u in p.updates] == [
        ("env_1", "new", "encrypted")
    ]
    assert not p.creates
    assert not p.deletes


def test_unrecorded_var_of_ours_is_patched_not_duplicated() -> None:
    # Killed after create but before recording: the list finds it, a PATCH settles the value.
    p, _ = run([want("A")], [var("env_1", "A")])
    assert not p.creates
    assert [u.env_id for u in p.updates] == ["env_1"]


def test_plain_value_visible_in_list_needs_no_record() -> None:
    p, _ = run([want("A", "x", type="plain")], [var("env_1", "A", type="plain", value="x")])
    assert p.writes == 0


def test_target_change_is_patched() -> None:
    d = want("A", targets=("production", "preview", "development"))
    fp = fingerprint(FPK, CFG, d.slot, "v")
    p, _ = run(
        [d],
        [var("env_1", "A", targets=("production",))],
        recorded={d.slot: {"id": "env_1", "fp": fp}},
    )
    assert [u.patch.target for u in p.updates] == [["production", "preview", "development"]]
    assert p.updates[0].patch.value is None


def test_comment_change_is_patched() -> None:
    d = want("A", comment="new")
    fp = fingerprint(FPK, CFG, d.slot, "v")
    p, _ = run(
        [d], [var("env_1", "A", comment="old")], recorded={d.slot: {"id": "env_1", "fp": fp}}
    )
    assert [u.patch.comment for u in p.updates] == ["new"]


def test_encrypted_to_sensitive_is_delete_then_create() -> None:
    d = want("A", type="sensitive", targets=("production", "preview"))
    p, _ = run([d], [var("env_1", "A", targets=("production", "preview"))])
    assert p.deletes == ["env_1"]
    assert [s.type for _, s in p.creates] == ["sensitive"]


def test_encrypted_to_plain_is_a_patch() -> None:
    d = want("A", type="plain")
    p, _ = run([d], [var("env_1", "A")])
    assert not p.deletes
    assert p.updates[0].patch.type == "plain"


def test_user_var_is_never_touched_and_is_reported() -> None:
    p, _ = run(
        [want("A")], [var("env_u", "A", cfg=None, targets=("production", "preview", "development"))]
    )
    assert p.writes == 0
    assert [(c.key, c.targets, c.owner) for c in p.clashes] == [
        ("A", ("development", "preview", "production"), "user")
    ]


def test_partial_clash_provisions_the_free_targets() -> None:
    p, _ = run([want("A")], [var("env_u", "A", cfg=None, targets=("production",))])
    assert [s.target for _, s in p.creates] == [["preview", "development"]]
    assert p.clashes[0].targets == ("production",)
    assert "env_u" not in p.deletes


def test_other_integrations_var_is_a_clash_too() -> None:
    p, _ = run([want("A")], [var("env_x", "A", cfg="icfg_other")])
    assert p.clashes[0].owner == "icfg_other"
    assert not p.deletes
    assert not p.updates


def test_adopt_replaces_the_user_var() -> None:
    p, _ = run([want("A", on_conflict="adopt")], [var("env_u", "A", cfg=None)])
    assert p.deletes == ["env_u"]
    assert [s.key for _, s in p.creates] == ["A"]
    assert p.adopted == ["A"]


def test_var_removed_from_spec_is_deleted_but_user_vars_stay() -> None:
    p, _ = run(
        [want("A")], [var("env_1", "A"), var("env_2", "OLD"), var("env_u", "USERS", cfg=None)]
    )
    assert p.deletes == ["env_2"]


def test_different_branch_is_not_a_clash() -> None:
    d = want("A", targets=("preview",), branch="main")
    p, _ = run([d], [var("env_u", "A", cfg=None, targets=("preview",), branch="dev")])
    assert not p.clashes
    assert len(p.creates) == 1


def test_split_sensitive_pair_matches_existing_pair() -> None:
    prod = want("K", type="sensitive", targets=("production", "preview"), part=0)
    dev = want("K", type="encrypted", targets=("development",), part=1)
    actual = [
        var("env_s", "K", type="sensitive", targets=("production", "preview")),
        var("env_d", "K", type="encrypted", targets=("development",)),
    ]
    recorded = {
        prod.slot: {"id": "env_s", "fp": fingerprint(FPK, CFG, prod.slot, "v")},
        dev.slot: {"id": "env_d", "fp": fingerprint(FPK, CFG, dev.slot, "v")},
    }
    p, _ = run([prod, dev], actual, recorded)
    assert p.writes == 0


def test_narrowing_targets_then_creating_the_rest_never_conflicts() -> None:
    # Was one encrypted var on all targets; spec now splits it (sensitive + dev).
    prod = want("K", type="sensitive", targets=("production", "preview"), part=0)
    dev = want("K", type="encrypted", targets=("development",), part=1)
    p, _ = run([prod, dev], [var("env_1", "K")])
    # The all-targets var is recreated as sensitive (type change), dev is created.
    assert p.deletes == ["env_1"]
    assert sorted(s.type for _, s in p.creates) == ["encrypted", "sensitive"]


def test_plain_value_equal_in_list_is_unchanged_even_marked_not_decrypted() -> None:
    # Vercel (and the emulator) list plain values in clear with `decrypted: false`.
    listed = var("env_1", "A", type="plain", value="x").model_copy(update={"decrypted": False})
    p, _ = run([want("A", "x", type="plain")], [listed])
    assert p.writes == 0


def test_hidden_targets_are_reported_and_only_the_free_ones_created() -> None:
    d = want("A")
    p, _ = run([d], [], hidden={d.slot: {"production"}})
    assert [s.target for _, s in p.creates] == [["preview", "development"]]
    assert [(c.key, c.targets, c.owner, c.env_id) for c in p.clashes] == [
        ("A", ("production",), "hidden", None)
    ]


def test_hidden_on_every_target_plans_no_write() -> None:
    d = want("A", targets=("production", "preview"))
    p, _ = run([d], [], hidden={d.slot: {"production", "preview", "development"}})
    assert p.writes == 0
    assert p.clashes[0].targets == ("preview", "production")


def test_hidden_never_claims_a_target_ours_holds() -> None:
    # Stale knowledge must not make us delete or shrink our own var.
    d = want("A")
    fp = fingerprint(FPK, CFG, d.slot, "v")
    p, _ = run(
        [d],
        [var("env_1", "A", targets=("production", "preview"))],
        recorded={d.slot: {"id": "env_1", "fp": fp}},
        hidden={d.slot: {"preview", "development"}},
    )
    assert not p.deletes
    assert not p.updates
    assert [c.targets for c in p.clashes] == [("development",)]
    assert p.unchanged == [d.slot]


# -- a team enforcing sensitive variables (vercel-reality.md §2.1) --------------------------

PP = ("production", "preview")


def run1(desired, actual, recorded=None, hidden=None):
    return run(desired, actual, recorded, hidden)[0]


def rec(d, env_id: str) -> dict:
    return {d.slot: {"id": env_id, "fp": fingerprint(FPK, CFG, d.slot, d.value)}}


@pytest.mark.parametrize("kind", ["plain", "encrypted"])
def test_var_promoted_to_sensitive_satisfies_the_spec(kind: str) -> None:
    d = want("A", "v1", type=kind, targets=PP)
    p = run1([d], [var("e1", "A", targets=PP, type="sensitive")], recorded=rec(d, "e1"))
    assert p.writes == 0
    assert p.unchanged == [d.slot]
    assert p.matched == {d.slot: "e1"}


def test_promoted_var_with_a_new_value_is_patched_staying_sensitive() -> None:
    old = want("A", "v1", type="plain", targets=PP)
    new = want("A", "v2", type="plain", targets=PP)
    p = run1([new], [var("e1", "A", targets=PP, type="sensitive")], recorded=rec(old, "e1"))
    assert p.deletes == []
    assert p.creates == []
    (u,) = p.updates
    assert u.env_id == "e1"
    assert u.patch.value == "v2"
    assert u.patch.type == "sensitive"  # never downgraded: Vercel would refuse it anyway


def test_promoted_var_retargeted_is_patched_without_a_type() -> None:
    d = want("A", "v1", type="encrypted", targets=("production",))
    p = run1([d], [var("e1", "A", targets=PP, type="sensitive")], recorded=rec(d, "e1"))
    (u,) = p.updates
    assert u.patch.target == ["production"]
    assert u.patch.type is None
    assert u.patch.value is None


def test_a_sensitive_development_var_is_not_taken_for_a_promotion() -> None:
    """Development is never promoted: a sensitive var there is not what we wrote."""
    d = want("A", "v1", type="encrypted", targets=("development",))
    p = run1([d], [var("e1", "A", targets=("development",), type="sensitive")], rec(d, "e1"))
    assert p.deletes == ["e1"]
    assert [s for s, _ in p.creates] == [d.slot]


def test_spec_asking_sensitive_of_a_plain_var_still_recreates() -> None:
    d = want("A", "v1", type="sensitive", targets=PP)
    p = run1([d], [var("e1", "A", targets=PP, type="plain", value="v1")], rec(d, "e1"))
    assert p.deletes == ["e1"]
    assert [spec.type for _, spec in p.creates] == ["sensitive"]


# -- ownership insurance: the id we recorded ---------------------------------------------


@pytest.mark.parametrize("listed_cfg", [None, "icfg_somebody"])
def test_a_recorded_id_is_ours_whatever_configuration_id_is_listed(
    listed_cfg: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    d = want("A", "v1", targets=PP)
    with caplog.at_level(logging.WARNING, logger="provisioning"):
        p = run1([d], [var("e1", "A", targets=PP, cfg=listed_cfg)], recorded=rec(d, "e1"))
    assert p.clashes == []
    assert p.writes == 0
    assert p.unchanged == [d.slot]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "another configurationId" in warnings[0].getMessage()
    assert getattr(warnings[0], "env_id", None) == "e1"


def test_a_recorded_id_no_longer_desired_is_deleted_as_ours() -> None:
    d = want("A", "v1", targets=PP)
    p = run1([], [var("e1", "A", targets=PP, cfg=None)], recorded=rec(d, "e1"))
    assert p.deletes == ["e1"]


def test_an_unrecorded_foreign_var_is_still_a_clash(caplog: pytest.LogCaptureFixture) -> None:
    d = want("A", "v1", targets=PP)
    with caplog.at_level(logging.WARNING, logger="provisioning"):
        p = run1([d], [var("e9", "A", targets=PP, cfg=None)], recorded=rec(d, "e1"))
    assert [c.owner for c in p.clashes] == ["user"]
    assert p.writes == 0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# -- custom environments ---------------------------------------------------------------


def custom(d, *ids: str):
    return d.model_copy(update={"custom_environment_ids": ids})


def cvar(id: str, key: str, targets, ids, **kw) -> EnvVar:
    v = var(id, key, targets=targets, **kw)
    return v.model_copy(update={"custom_environment_ids": list(ids)})


def test_custom_environment_ids_are_created_next_to_targets() -> None:
    d = custom(want("A", "v1", targets=("production",)), "env_stage")
    ((_, spec),) = run1([d], []).creates
    assert spec.target == ["production"]
    assert spec.custom_environment_ids == ["env_stage"]
    only = custom(want("B", "v1", targets=()), "env_stage")
    ((_, spec),) = run1([only], []).creates
    assert spec.target is None
    assert spec.custom_environment_ids == ["env_stage"]
    assert "target" not in spec.to_wire()


def test_custom_environment_ids_match_and_change_by_patch() -> None:
    d = custom(want("A", "v1", targets=("production",)), "env_a")
    same = run1([d], [cvar("e1", "A", ("production",), ["env_a"])], recorded=rec(d, "e1"))
    assert same.writes == 0
    moved = custom(d, "env_b")
    p = run1([moved], [cvar("e1", "A", ("production",), ["env_a"])], recorded=rec(d, "e1"))
    (u,) = p.updates
    assert u.patch.custom_environment_ids == ["env_b"]
    assert u.patch.target is None


def test_a_custom_environment_held_by_the_user_is_a_clash() -> None:
    d = custom(want("A", "v1", targets=("production",)), "env_a")
    p = run1([d], [cvar("u1", "A", (), ["env_a"], cfg=None)])
    assert [(c.owner, c.targets) for c in p.clashes] == [("user", ("custom:env_a",))]
    ((_, spec),) = p.creates
    assert spec.target == ["production"]
    assert spec.custom_environment_ids is None


def test_a_sensitive_var_we_wrote_so_is_downgraded_when_the_spec_says() -> None:
    """`t` recorded: we made it sensitive, so the spec changed (not the server)."""
    d = want("A", "v1", type="encrypted", targets=PP)
    recorded = {d.slot: {**rec(d, "e1")[d.slot], "t": "sensitive"}}
    p = run1([d], [var("e1", "A", targets=PP, type="sensitive")], recorded=recorded)
    assert p.deletes == ["e1"]
    assert [spec.type for _, spec in p.creates] == ["encrypted"]
    # ... and once the server promoted what we wrote, it stays.
    recorded = {d.slot: {**rec(d, "e2")[d.slot], "t": "encrypted"}}
    p = run1([d], [var("e2", "A", targets=PP, type="sensitive")], recorded=recorded)
    assert p.writes == 0
    assert p.types == {d.slot: "encrypted"}


def test_a_fingerprint_is_keyed_by_the_slot_as_stored_before_slots_were_typed() -> None:
    # Stored fingerprints were computed over the slot's `key|branch|part` text: a change
    # here would make every recorded value look changed and rewrite every var once.
    old = hmac.new(FPK, b"icfg_ours\x00K|feat/x|1\x00v", hashlib.sha256).hexdigest()[:32]
    assert fingerprint(FPK, CFG, Slot("K", "feat/x", 1), "v") == old
