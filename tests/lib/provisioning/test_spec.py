from pathlib import Path

import pytest

from lib.provisioning.spec import Slot, SpecError, TemplateContext, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]


def parse(text_env: list[dict], secrets: dict | None = None, env: dict | None = None):
    data: dict = {"env": text_env}
    if secrets is not None:
        data["secrets"] = secrets
    return parse_spec(data, source="integration.toml", env=env or {})


def ctx(**over: object) -> TemplateContext:
    base: dict = {
        "configuration_id": "icfg_1",
        "team_id": "team_1",
        "user_id": "user_1",
        "project_id": "prj_1",
        "project_name": "web",
        "secrets": {"api": "sk_123"},
    }
    base.update(over)
    return TemplateContext(**base)


def test_shipped_example_spec_loads_and_renders() -> None:
    spec = load_spec(ROOT / "integration.toml", env={})
    desired = spec.desired(ctx(secrets={"api_key": "sk_live_x"}))
    by_key = {(d.key, d.targets): d for d in desired}
    assert by_key[("ACME_API_KEY", ("production", "preview"))].type == "sensitive"
    assert by_key[("ACME_API_KEY", ("development",))].type == "encrypted"
    assert by_key[("ACME_API_KEY", ("development",))].value == "sk_live_x"
    url = by_key[("ACME_DASHBOARD_URL", ("production", "preview"))].value
    assert url == "https://dashboard.acme.example/team_1/web"
    assert by_key[("ACME_DASHBOARD_URL", ("development",))].value == url


def test_defaults_cover_every_target() -> None:
    spec = parse([{"key": "A", "value": "x"}])
    assert [e.targets for e in spec.env] == [("production", "preview"), ("development",)]
    assert {e.type for e in spec.env} == {"encrypted"}


@pytest.mark.parametrize("kind", ["plain", "encrypted"])
def test_non_sensitive_with_development_is_split_keeping_its_type(kind: str) -> None:
    """A team enforcing sensitive vars promotes production/preview; what it does with a
    var that also targets development is undocumented, so it is never asked."""
    spec = parse([{"key": "A", "value": "x", "type": kind, "targets": ["development", "preview"]}])
    assert [(e.type, e.targets) for e in spec.env] == [
        (kind, ("preview",)),
        (kind, ("development",)),
    ]
    slots = [str(d.slot) for d in spec.desired(ctx())]
    assert slots == ["A||0", "A||1"]


def test_development_only_is_not_split() -> None:
    spec = parse([{"key": "A", "value": "x", "type": "plain", "targets": ["development"]}])
    assert [(e.type, e.targets) for e in spec.env] == [("plain", ("development",))]


def test_custom_environment_slugs_are_targets() -> None:
    spec = parse(
        [
            {"key": "A", "value": "x", "targets": ["production", "staging"]},
            {"key": "B", "value": "y", "targets": ["qa-2"], "type": "sensitive"},
        ]
    )
    assert spec.custom_environments == frozenset({"staging", "qa-2"})
    desired = {d.key: d for d in spec.desired(ctx())}
    assert desired["A"].targets == ("production",)
    assert desired["A"].custom_environments == ("staging",)
    assert desired["B"].targets == ()
    assert desired["B"].custom_environments == ("qa-2",)


def test_no_custom_environment_means_no_lookup() -> None:
    assert parse([{"key": "A", "value": "x"}]).custom_environments == frozenset()


@pytest.mark.parametrize("slug", ["Staging", "stag ing", "-qa", "qa-", "prod!", "x" * 65, ""])
def test_bad_custom_environment_slug_is_refused_with_its_name(slug: str) -> None:
    with pytest.raises(SpecError) as info:
        parse([{"key": "A", "value": "x", "targets": ["production", slug]}])
    message = str(info.value)
    assert "#1 (A)" in message
    assert "field 'targets'" in message
    assert "custom environment slug" in message
    assert repr(slug) in message


def test_sensitive_with_development_is_split() -> None:
    spec = parse([{"key": "A", "value": "x", "type": "sensitive"}])
    assert [(e.type, e.targets) for e in spec.env] == [
        ("sensitive", ("production", "preview")),
        ("encrypted", ("development",)),
    ]
    slots = {d.slot for d in spec.desired(ctx())}
    assert len(slots) == 2


def test_sensitive_development_only_becomes_encrypted() -> None:
    spec = parse([{"key": "A", "value": "x", "type": "sensitive", "targets": ["development"]}])
    assert [(e.type, e.targets) for e in spec.env] == [("encrypted", ("development",))]


def test_placeholders_render() -> None:
    spec = parse(
        [
            {
                "key": "A",
                "value": "{installation_id}/{configuration_id}/{team_id}/{user_id}/{owner_id}/"
                "{project_id}/{project_name}/{secret.api}/{env.REGION}/{{literal}}",
                "targets": ["production"],
            }
        ],
        secrets={"api": {}},
        env={"REGION": "eu"},
    )
    (d,) = spec.desired(ctx())
    assert d.value == "icfg_1/icfg_1/team_1/user_1/team_1/prj_1/web/sk_123/eu/{literal}"


def test_value_rendering_empty_is_left_out_not_sent_empty() -> None:
    spec = parse([{"key": "TEAM", "value": "{team_id}"}, {"key": "OWNER", "value": "{owner_id}"}])
    assert [d.key for d in spec.desired(ctx(team_id=None))] == ["OWNER"] * 2
    assert [d.key for d in spec.desired(ctx())] == ["TEAM", "TEAM", "OWNER", "OWNER"]


def test_personal_install_owner_is_user() -> None:
    spec = parse([{"key": "A", "value": "{owner_id}:{team_id}", "targets": ["preview"]}])
    (d,) = spec.desired(ctx(team_id=None))
    assert d.value == "user_1:"


@pytest.mark.parametrize(
    ("entry", "secrets", "message"),
    [
        ({"key": "1A", "value": "x"}, None, "#1 (1A): field 'key'"),
        ({"key": "VERCEL_URL", "value": "x"}, None, "reserved by Vercel"),
        ({"key": "A", "value": ""}, None, "field 'value': must not be empty"),
        ({"key": "A", "value": "x", "type": "secret"}, None, "field 'type'"),
        ({"key": "A", "value": "x", "targets": ["Prod"]}, None, "field 'targets'"),
        ({"key": "A", "value": "x", "targets": []}, None, "field 'targets'"),
        ({"key": "A", "value": "x", "targets": ["preview", "preview"]}, None, "listed twice"),
        ({"key": "A", "value": "x", "git_branch": "main"}, None, "field 'git_branch'"),
        ({"key": "A", "value": "x", "targets": ["preview"], "git_branch": "a b"}, None, "branch"),
        ({"key": "A", "value": "{secret.nope}"}, {}, "[secrets.nope] is not declared"),
        ({"key": "A", "value": "{env.MISSING}"}, None, "MISSING is not set"),
        ({"key": "A", "value": "{bogus}"}, None, "unknown placeholder {bogus}"),
        ({"key": "A", "value": "x", "colour": "red"}, None, "field 'colour'"),
        ({"key": "A", "value": "x", "comment": "c" * 501}, None, "field 'comment'"),
        ({"key": "A", "value": "x", "on_conflict": "overwrite"}, None, "field 'on_conflict'"),
    ],
)
def test_invalid_entries_name_entry_and_field(
    entry: dict, secrets: dict | None, message: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse([entry], secrets=secrets)
    assert message in str(info.value)
    assert str(info.value).startswith("integration.toml: ")


def test_duplicate_key_for_same_target_is_refused() -> None:
    with pytest.raises(SpecError, match="declared twice for target preview"):
        parse([{"key": "A", "value": "x"}, {"key": "A", "value": "y", "targets": ["preview"]}])


def test_same_key_on_disjoint_targets_is_fine_and_slots_are_distinct() -> None:
    spec = parse(
        [
            {"key": "A", "value": "x", "targets": ["production"]},
            {"key": "A", "value": "y", "targets": ["preview"]},
        ]
    )
    assert len({d.slot for d in spec.desired(ctx())}) == 2


def test_secret_entries_validate_and_mint() -> None:
    spec = parse(
        [{"key": "A", "value": "{secret.s}"}],
        secrets={"s": {"bytes": 16, "prefix": "p_", "encoding": "hex"}},
    )
    minted = spec.mint_secrets()
    assert minted["s"].startswith("p_")
    assert len(minted["s"]) == 2 + 32
    assert spec.mint_secrets()["s"] != minted["s"]
    with pytest.raises(SpecError, match=r"\[secrets.s\]: field 'bytes'"):
        parse([{"key": "A", "value": "x"}], secrets={"s": {"bytes": 4}})


def test_empty_or_unknown_top_level_is_refused() -> None:
    with pytest.raises(SpecError, match="at least one"):
        parse_spec({}, source="s.toml", env={})
    with pytest.raises(SpecError, match="unknown top-level"):
        parse_spec({"env": [{"key": "A", "value": "x"}], "extra": {}}, source="s.toml", env={})


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[env]\nkey=")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)


@pytest.mark.parametrize(
    "stored", ["A||0", "A||1", "A|main|0", "A|feat/x|2", "A|odd|branch|3", "A|a b|10"]
)
def test_a_slot_reads_back_from_its_stored_form(stored: str) -> None:
    # The stored form is the field name of a var's entry in the project record: records
    # written by any earlier version must read back to the same slot.
    slot = Slot.parse(stored)
    assert str(slot) == stored
    assert slot.key == "A"
    assert slot.part == int(stored.rsplit("|", 1)[1])


def test_branch_entries_get_their_own_slot() -> None:
    spec = parse(
        [
            {"key": "A", "value": "x", "targets": ["preview"]},
            {"key": "A", "value": "y", "targets": ["preview"], "git_branch": "main"},
        ]
    )
    assert [d.slot for d in spec.desired(ctx())] == [Slot("A", None, 0), Slot("A", "main", 0)]
