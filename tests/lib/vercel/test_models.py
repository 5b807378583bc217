import pytest
from pydantic import ValidationError

from lib.vercel.models import (
    EnvCreateResult,
    EnvList,
    EnvPatch,
    EnvSpec,
    EnvVar,
    IntegrationConfiguration,
    OAuthToken,
    Pagination,
    Project,
)

TOKEN = "vca_secret_token_value_123"


def test_oauth_token_hides_the_access_token() -> None:
    token = OAuthToken.model_validate(
        {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "installation_id": "icfg_1",
            "user_id": "u_1",
            "team_id": None,
            "scope": "ignored-unknown-field",
        }
    )
    assert token.access_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(token)
    assert TOKEN not in str(token)
    assert TOKEN not in token.model_dump_json()
    assert token.team_id is None


def test_oauth_token_empty_team_means_personal() -> None:
    token = OAuthToken.model_validate(
        {"access_token": "t", "installation_id": "icfg_1", "user_id": "u", "team_id": ""}
    )
    assert token.team_id is None


def test_oauth_token_requires_the_installation() -> None:
    with pytest.raises(ValidationError):
        OAuthToken.model_validate({"access_token": "t", "user_id": "u"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["production", "preview"], ["production", "preview"]),
        ("production", ["production"]),
        (None, []),
        (["some-future-target"], ["some-future-target"]),
    ],
)
def test_env_var_target_accepts_list_or_single_string(raw: object, expected: list[str]) -> None:
    env = EnvVar.model_validate({"id": "e1", "key": "K", "type": "plain", "target": raw})
    assert env.target == expected


def test_env_var_tolerates_unknown_fields_and_reads_camel_case() -> None:
    env = EnvVar.model_validate(
        {
            "id": "e1",
            "key": "DATABASE_URL",
            "value": "ciphertext",
            "type": "secret",  # legacy type in responses
            "target": ["preview"],
            "gitBranch": "feature-1",
            "configurationId": "icfg_1",
            "customEnvironmentIds": None,
            "createdAt": 1700000000000,
            "vsmValue": "x",
            "contentHint": {"type": "redis-url", "storeId": "s"},
            "brandNewField": {"nested": True},
        }
    )
    assert env.git_branch == "feature-1"
    assert env.configuration_id == "icfg_1"
    assert env.custom_environment_ids == []
    assert env.created_at == 1700000000000
    assert "ciphertext" not in repr(env)


def test_env_create_result_normalises_created_and_failed() -> None:
    one = EnvCreateResult.model_validate(
        {"created": {"id": "e1", "key": "A", "type": "plain", "target": "production"}}
    )
    assert [e.key for e in one.created] == ["A"]
    assert one.failed == []
    assert one.ok

    mixed = EnvCreateResult.model_validate(
        {
            "created": [{"id": "e1", "key": "A", "type": "plain", "target": ["preview"]}],
            "failed": [
                {
                    "error": {
                        "code": "ENV_CONFLICT",
                        "message": "exists",
                        "envVarKey": "B",
                        "target": "production",
                        "gitBranch": "main",
                        "value": "a-secret-value-that-must-not-be-kept",
                    }
                },
                {"error": {"code": "BAD_REQUEST", "message": "no", "key": "C"}},
            ],
        }
    )
    assert not mixed.ok
    conflict, other = mixed.failed
    assert conflict.is_conflict
    assert (conflict.key, conflict.target, conflict.git_branch) == ("B", ["production"], "main")
    assert conflict.code == "ENV_CONFLICT"
    assert "a-secret-value" not in repr(mixed)
    assert not other.is_conflict
    assert other.key == "C"


def test_env_already_exists_is_a_conflict_too() -> None:
    result = EnvCreateResult.model_validate(
        {"created": [], "failed": [{"error": {"code": "ENV_ALREADY_EXISTS", "message": "x"}}]}
    )
    assert result.failed[0].is_conflict


def test_env_create_result_with_nothing() -> None:
    assert EnvCreateResult.model_validate({}).created == []
    assert EnvCreateResult.model_validate({"created": None, "failed": None}).failed == []


def test_env_list_defaults() -> None:
    listed = EnvList.model_validate({"envs": [], "hiddenProductionEnvCount": 2})
    assert listed.hidden_production_env_count == 2


def test_pagination_next_is_timestamp_or_token() -> None:
    assert Pagination.model_validate({"count": 20, "next": 1540095775951}).next == 1540095775951
    assert Pagination.model_validate({"count": 1, "next": "JBSWY3DPEHPK3PXP"}).next == (
        "JBSWY3DPEHPK3PXP"
    )
    assert Pagination.model_validate({"count": 0, "next": None, "prev": None}).next is None


def test_project_tolerates_the_huge_real_payload() -> None:
    project = Project.model_validate(
        {"id": "prj_1", "name": "web", "accountId": "team_1", "nodeVersion": "22.x", "env": []}
    )
    assert (project.id, project.name, project.account_id) == ("prj_1", "web", "team_1")


@pytest.mark.parametrize(
    ("payload", "all_projects"),
    [
        ({"id": "icfg_1"}, True),
        ({"id": "icfg_1", "projects": ["prj_1"]}, False),
        ({"id": "icfg_1", "projects": ["prj_1"], "projectSelection": "all"}, True),
        ({"id": "icfg_1", "projectSelection": "selected"}, False),
    ],
)
def test_configuration_project_access(payload: dict[str, object], all_projects: bool) -> None:
    assert IntegrationConfiguration.model_validate(payload).all_projects is all_projects


def test_configuration_disabled_and_scopes() -> None:
    config = IntegrationConfiguration.model_validate(
        {"id": "icfg_1", "disabledAt": 1, "scopes": None, "whatever": 1}
    )
    assert config.disabled
    assert config.scopes == []


def test_env_spec_wire_format() -> None:
    spec = EnvSpec(key="A", value="v", type="encrypted", target="production")
    assert spec.to_wire() == {
        "key": "A",
        "value": "v",
        "type": "encrypted",
        "target": ["production"],
    }
    branch = EnvSpec.model_validate(
        {"key": "B", "value": "v", "type": "plain", "target": ["preview"], "gitBranch": "f"}
    )
    assert branch.to_wire()["gitBranch"] == "f"
    assert "hunter2" not in repr(
        EnvSpec(key="K", value="hunter2", type="plain", target=["preview"])
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "plain"}, "needs a target"),
        ({"type": "plain", "target": ["production"], "git_branch": "x"}, "gitBranch"),
        ({"type": "sensitive", "target": ["preview", "development"]}, "development"),
        ({"type": "secret", "target": ["preview"]}, "type"),
        ({"type": "plain", "target": ["staging"]}, "target"),
        ({"type": "plain", "target": ["preview"], "unknown": 1}, "unknown"),
    ],
)
def test_env_spec_refuses_what_vercel_refuses(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EnvSpec.model_validate({"key": "K", "value": "v", **fields})


def test_env_spec_custom_environments_instead_of_target() -> None:
    spec = EnvSpec(key="K", value="v", type="plain", custom_environment_ids=["env_1"])
    assert spec.to_wire() == {
        "key": "K",
        "value": "v",
        "type": "plain",
        "customEnvironmentIds": ["env_1"],
    }


def test_env_patch_sends_only_what_was_given() -> None:
    assert EnvPatch(value="new").to_wire() == {"value": "new"}
    assert EnvPatch(git_branch=None, target="preview").to_wire() == {
        "gitBranch": None,
        "target": ["preview"],
    }
    with pytest.raises(ValidationError):
        EnvPatch.model_validate({"bogus": 1})
    with pytest.raises(ValidationError, match="development"):
        EnvPatch(type="sensitive", target=["development"])
