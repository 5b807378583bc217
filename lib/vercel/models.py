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

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "ENV_CONFLICT_CODES",
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
    "Project",
]

EnvTarget = Literal["production", "preview", "development"]
# `secret` is legacy: responses may still carry it, create refuses it.
EnvType = Literal["encrypted", "plain", "sensitive", "system"]

# Vercel has reported a duplicate env var with either code over the years (see
# reference/vercel-api.md §4.1); both mean "a var with this key/target/branch exists".
ENV_CONFLICT_CODES = frozenset({"ENV_CONFLICT", "ENV_ALREADY_EXISTS"})


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
    """The 201 of an env create: it can carry failures next to what was created."""

    created: Annotated[list[EnvVar], BeforeValidator(_as_list)] = []
    failed: Annotated[list[EnvCreateFailure], BeforeValidator(_as_list)] = []

    @property
    def ok(self) -> bool:
        return not self.failed


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
