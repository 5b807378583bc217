"""Pydantic models of the Vercel payloads the integration reads and writes.

Two kinds, on purpose:

* Response models (`OAuthToken`, `Project`, `EnvVar`, `EnvCreateResult`, ...) are tolerant:
  unknown fields are ignored (Vercel adds fields all the time), almost everything is
  optional, and the spec's alternative shapes are normalised (`target` as a list or a single
  string, `created` as one object or a list).
* Request models (`EnvSpec`, `EnvPatch`) are strict: unknown fields are refused and
  Vercel's documented rules (a git branch only for preview, `sensitive` never for
  development) fail here, with a message, before anything is sent.

Python attributes are snake_case; the wire names are Vercel's camelCase (both are accepted
on input). Values that may be secrets are kept out of `repr()`; the OAuth access token is a
`SecretStr`, so it cannot leak through a log line or a traceback by accident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "CONFIGURATION_ID",
    "ENV_CONFLICT_CODES",
    "BranchMatcher",
    "CustomEnvironment",
    "EnvCreateFailure",
    "EnvCreateResult",
    "EnvFailureError",
    "EnvList",
    "EnvPatch",
    "EnvSpec",
    "EnvTarget",
    "EnvType",
    "EnvVar",
    "IntegrationConfiguration",
    "OAuthToken",
    "Pagination",
    "PermissionMissing",
    "Project",
    "Team",
    "TeamMember",
    "TeamMembership",
]

# An integration configuration's id as Vercel issues it: `icfg_` and 24 alphanumerics
# (the examples in Vercel's OpenAPI, e.g. `icfg_3bwCLgxL8qt5kjRLcv2Dit7F`). The one
# pattern every entry point checks (callback, configuration page, /provision) before it
# spends a Vercel call or a KV read on an id. Match with `fullmatch`.
CONFIGURATION_ID = re.compile(r"icfg_[A-Za-z0-9]{24}")

EnvTarget = Literal["production", "preview", "development"]
# `secret` is legacy: responses may still carry it, create refuses it.
EnvType = Literal["encrypted", "plain", "sensitive", "system"]

# Vercel has reported a duplicate env var with several codes: `ENV_CONFLICT` (v10),
# `ENV_ALREADY_EXISTS` (v9), and `EXISTING_KEY_AND_TARGET`, which Vercel's CLI also knows
# (packages/cli/src/util/env/known-error.ts in github.com/vercel/vercel; Vercel's Terraform
# provider sees it lower-case for team-level shared vars). All mean "a var with this
# key/target/branch exists".
ENV_CONFLICT_CODES = frozenset(
    {"ENV_CONFLICT", "ENV_ALREADY_EXISTS", "EXISTING_KEY_AND_TARGET", "existing_key_and_target"}
)


def _one_or_many(value: Any) -> Any:
    """The spec allows one item or a list in several places; callers only see lists."""
    return [value] if isinstance(value, (str, dict)) else value


def _as_list(value: Any) -> Any:
    """Like `_one_or_many`, and an absent (null) list is an empty one."""
    return [] if value is None else _one_or_many(value)


# Response side: always a list, whatever shape arrived.
_Strings = Annotated[list[str], BeforeValidator(_as_list)]
# Request side: a single target is accepted; None stays None (not given / nothing to send).
_Targets = Annotated[list[EnvTarget] | None, BeforeValidator(_one_or_many)]


class _Response(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
        frozen=True,
        defer_build=True,
    )


class _Request(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        frozen=True,
        defer_build=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON body Vercel expects: camelCase, only the fields that were given."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class OAuthToken(BaseModel):
    """The answer of `POST /v2/oauth/access_token` (snake_case on the wire)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    access_token: SecretStr
    token_type: str | None = None
    installation_id: str
    user_id: str
    team_id: str | None = None

    @field_validator("team_id", mode="before")
    @classmethod
    def _empty_team_is_personal(cls, value: Any) -> Any:
        return value or None


class Pagination(_Response):
    """`next` is a timestamp (number) or an opaque continuation token (string)."""

    count: int | None = None
    next: int | str | None = None
    prev: int | str | None = None


class Project(_Response):
    id: str
    name: str
    account_id: str | None = None
    created_at: int | None = None
    updated_at: int | None = None


class EnvVar(_Response):
    """An env var as Vercel returns it. `value` is ciphertext unless `decrypted` is true."""

    id: str | None = None
    key: str
    value: str | None = Field(default=None, repr=False)
    type: str
    target: _Strings = []
    git_branch: str | None = None
    configuration_id: str | None = None
    comment: str | None = None
    custom_environment_ids: _Strings = []
    # `config` | `secret`, newer than `type` and absent on legacy rows (Vercel's SDK).
    visibility: str | None = None
    decrypted: bool | None = None
    system: bool | None = None
    created_at: int | None = None
    updated_at: int | None = None
    created_by: str | None = None
    updated_by: str | None = None


class EnvList(_Response):
    """`GET /v10/projects/{id}/env`, every page merged.

    `hidden_production_env_count` counts vars Vercel does not list (they exist but a
    list-then-PATCH cannot find them; see anchors.md §3 item 3).
    """

    envs: list[EnvVar] = []
    hidden_production_env_count: int = 0


class EnvFailureError(_Response):
    """One `failed[].error` of an env create. The item's `value` is deliberately not kept."""

    code: str
    message: str = ""
    key: str | None = None
    env_var_key: str | None = None
    env_var_id: str | None = None
    target: _Strings = []
    git_branch: str | None = None
    action: str | None = None
    link: str | None = None
    project: str | None = None


class EnvCreateFailure(_Response):
    error: EnvFailureError

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def key(self) -> str | None:
        return self.error.key or self.error.env_var_key

    @property
    def target(self) -> list[str]:
        return self.error.target

    @property
    def git_branch(self) -> str | None:
        return self.error.git_branch

    @property
    def is_conflict(self) -> bool:
        return self.error.code in ENV_CONFLICT_CODES


class EnvCreateResult(_Response):
    """The answer of an env create: what was created and what failed, item by item.

    Usually the 201, which can carry failures next to what was created. When every item
    of an array create fails, Vercel may instead answer an error status whose body carries
    the same `failed[]` (vercel-reality.md D2); the client turns that into a result too,
    with `created` empty and `error_status` set to the error status.
    """

    created: Annotated[list[EnvVar], BeforeValidator(_as_list)] = []
    failed: Annotated[list[EnvCreateFailure], BeforeValidator(_as_list)] = []
    # None for a 2xx; the HTTP status when the result was read from an error answer.
    # Private, so that no field of a 201 body can set it.
    _error_status: int | None = PrivateAttr(default=None)

    @classmethod
    def from_error(cls, status: int | None, failed: list[Any]) -> EnvCreateResult:
        """The result an error answer carrying `failed[]` stands for: nothing created."""
        result = cls.model_validate({"created": [], "failed": failed})
        result._error_status = status
        return result

    @property
    def error_status(self) -> int | None:
        return self._error_status

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def nothing_created(self) -> bool:
        return not self.created


class IntegrationConfiguration(_Response):
    """An installation of the integration (`icfg_...`)."""

    id: str
    integration_id: str | None = None
    slug: str | None = None
    owner_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    scopes: _Strings = []
    projects: list[str] | None = None
    project_selection: Literal["all", "selected"] | None = None
    source: str | None = None
    status: str | None = None
    installation_type: str | None = None
    created_at: int | None = None
    updated_at: int | None = None
    completed_at: int | None = None
    disabled_at: int | None = None
    disabled_reason: str | None = None
    deleted_at: int | None = None

    @property
    def all_projects(self) -> bool:
        """Access to every project of the scope: `projectSelection` when Vercel sends it,
        else the documented rule that an absent `projects` list means full access."""
        if self.project_selection is not None:
            return self.project_selection == "all"
        return self.projects is None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


class BranchMatcher(_Response):
    """Which branches deploy to a custom environment (`type`: equals, startsWith, ...)."""

    type: str | None = None
    pattern: str | None = None


class CustomEnvironment(_Response):
    """A project's custom environment (`GET /v9/projects/{idOrName}/custom-environments`,
    https://vercel.com/docs/rest-api/environment/retrieve-custom-environments). Env vars
    name it by `id` in `customEnvironmentIds`; people name it by `slug`."""

    id: str
    slug: str
    type: str | None = None  # the standard environment it derives from: preview, ...
    description: str | None = None
    branch_matcher: BranchMatcher | None = None
    created_at: int | None = None
    updated_at: int | None = None


class TeamMembership(_Response):
    """The caller's own membership on a Team object (`membership`)."""

    role: str | None = None
    confirmed: bool | None = None
    created_at: int | None = None


class Team(_Response):
    """`GET /v2/teams/{teamId}` (getTeam), the fields the integration reads.

    `sensitive_environment_variable_policy` is "default" | "on" | "off" in Vercel's SDK
    (src/models/team.ts of github.com/vercel/sdk), None when absent; kept a string so a
    value Vercel adds later does not break the read. "on" means the server promotes
    production/preview vars to `sensitive` ("Enforce Sensitive Environment Variables",
    https://vercel.com/docs/environment-variables/sensitive-environment-variables).
    """

    id: str
    slug: str
    name: str | None = None
    avatar: str | None = None
    created_at: int | None = None
    sensitive_environment_variable_policy: str | None = None
    membership: TeamMembership | None = None

    @property
    def enforces_sensitive_env(self) -> bool:
        return self.sensitive_environment_variable_policy == "on"


class TeamMember(_Response):
    """One item of `GET /v3/teams/{teamId}/members` (getTeamMembers). `uid` is the id the
    code exchange returns as `user_id`; `role` is e.g. OWNER, MEMBER, VIEWER, BILLING."""

    uid: str
    username: str | None = None
    name: str | None = None
    email: str | None = Field(default=None, repr=False)
    role: str | None = None
    confirmed: bool | None = None
    created_at: int | None = None


@dataclass(frozen=True)
class PermissionMissing:
    """The outcome of a read that needs a permission the installation was not granted (or
    whose scope change the user has not confirmed yet): Vercel answered 403 with its
    missing-permission wording. A value, not an exception, so that a caller has to decide
    how to degrade, and cannot mistake it for Vercel being down or the installation being
    blocked. `permission` names the integration permission that was needed."""

    permission: str
    status: int | None = None
    code: str | None = None
    message: str = ""


class EnvSpec(_Request):
    """One env var to create (an item of the `POST /v10/projects/{id}/env` body)."""

    key: str = Field(min_length=1)
    value: str = Field(repr=False)
    type: EnvType
    target: _Targets = None
    git_branch: str | None = Field(default=None, max_length=250)
    comment: str | None = Field(default=None, max_length=500)
    custom_environment_ids: list[str] | None = None

    @model_validator(mode="after")
    def _vercel_rules(self) -> EnvSpec:
        if not self.target and not self.custom_environment_ids:
            raise ValueError(f"{self.key}: needs a target or customEnvironmentIds")
        if self.git_branch is not None and self.target != ["preview"]:
            raise ValueError(f"{self.key}: gitBranch is only allowed with target ['preview']")
        if self.type == "sensitive" and self.target and "development" in self.target:
            raise ValueError(f"{self.key}: sensitive vars are not allowed for development")
        return self

    def to_wire(self) -> dict[str, Any]:
        # Fields given as None are left out: create has nothing to clear.
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class EnvPatch(_Request):
    """A change to one env var (`PATCH /v9/projects/{id}/env/{envId}`): only the fields
    given are sent, so `git_branch=None` explicitly clears the branch."""

    key: str | None = Field(default=None, min_length=1)
    value: str | None = Field(default=None, repr=False)
    type: EnvType | None = None
    target: _Targets = None
    git_branch: str | None = Field(default=None, max_length=250)
    comment: str | None = Field(default=None, max_length=500)
    custom_environment_ids: list[str] | None = None

    @model_validator(mode="after")
    def _vercel_rules(self) -> EnvPatch:
        if self.type == "sensitive" and self.target and "development" in self.target:
            raise ValueError("sensitive vars are not allowed for development")
        return self

    def to_wire(self, *, sensitive: bool = False) -> dict[str, Any]:
        """The body; without `key` when the var is (or becomes) sensitive: Vercel refuses a
        PATCH of a sensitive var that names its key, so its CLI leaves it out
        (github.com/vercel/vercel commit 4a5be0b, "fix `vc env update` for sensitive
        environment variables")."""
        body = super().to_wire()
        if sensitive or self.type == "sensitive":
            body.pop("key", None)
        return body
