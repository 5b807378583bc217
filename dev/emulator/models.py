"""The emulated Vercel world: accounts, projects, env vars, configurations, tokens, codes.

Plain mutable records guarded by the store's lock; the REST layer renders them into
Vercel's wire shapes, the control API into a test-friendly snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "SENSITIVE_POLICIES",
    "TARGETS",
    "TEAM_ROLES",
    "Account",
    "AuthCode",
    "Configuration",
    "CustomEnvironment",
    "EnvVar",
    "Project",
    "ProjectSelection",
    "SigninCode",
    "SigninToken",
    "TokenRecord",
]

TARGETS: tuple[str, ...] = ("production", "preview", "development")
ProjectSelection = Literal["all", "selected"]
# The team setting "Enforce Sensitive Environment Variables" (`Team` in Vercel's SDK).
SENSITIVE_POLICIES: tuple[str, ...] = ("default", "off", "on")
# A member's role in a team (`role` of getTeamMembers in Vercel's SDK).
TEAM_ROLES: tuple[str, ...] = (
    "OWNER",
    "MEMBER",
    "DEVELOPER",
    "SECURITY",
    "BILLING",
    "VIEWER",
    "VIEWER_FOR_PLUS",
    "CONTRIBUTOR",
)


@dataclass
class Account:
    """A personal account (`kind == "user"`) or a team; projects belong to one."""

    id: str
    slug: str
    name: str
    kind: Literal["user", "team"]
    email: str | None = None
    created_at: int = 0
    # Teams only: "on" makes the server store production/preview vars as `sensitive`.
    sensitive_env_policy: str = "default"

    @property
    def team_id(self) -> str | None:
        return self.id if self.kind == "team" else None

    @property
    def plan(self) -> str:
        return "pro" if self.kind == "team" else "hobby"


@dataclass
class Project:
    id: str
    name: str
    account_id: str
    created_at: int
    updated_at: int
    framework: str | None = None


@dataclass
class CustomEnvironment:
    """A project's custom environment (`env_…`), addressed by id or by slug."""

    id: str
    project_id: str
    slug: str
    description: str | None
    created_at: int
    updated_at: int


@dataclass
class EnvVar:
    id: str
    project_id: str
    key: str
    value: str
    type: str
    target: list[str]
    git_branch: str | None
    comment: str | None
    custom_environment_ids: list[str]
    configuration_id: str | None  # None: created by a person, not an integration
    created_at: int
    updated_at: int
    created_by: str | None
    updated_by: str | None = None
    # Opaque stand-in for Vercel's ciphertext; regenerated whenever the value changes.
    ciphertext: str = ""
    # Not returned by the list endpoint, yet a create conflicts with it (anchors.md §1).
    hidden: bool = False


@dataclass
class Configuration:
    """One installation of the integration on one scope (`icfg_…`)."""

    id: str
    owner_id: str  # user or team id
    team_id: str | None
    user_id: str  # the installer
    scopes: list[str]
    project_selection: ProjectSelection
    projects: list[str]  # granted project ids when selection is "selected"
    source: str
    created_at: int
    updated_at: int
    completed_at: int | None = None
    disabled_at: int | None = None
    disabled_reason: str | None = None
    deleted_at: int | None = None

    @property
    def active(self) -> bool:
        return self.deleted_at is None


@dataclass
class TokenRecord:
    """An access token from the code exchange, stored by digest, bound to one configuration."""

    configuration_id: str
    created_at: int


@dataclass
class AuthCode:
    configuration_id: str
    client_id: str
    redirect_uri: str
    expires_at: float  # epoch seconds
    used: bool = False


@dataclass
class SigninCode:
    """A Sign in with Vercel authorization code: who consented, to which App, with PKCE."""

    client_id: str
    redirect_uri: str
    expires_at: float  # epoch seconds
    user_id: str
    code_challenge: str
    scopes: list[str]
    nonce: str | None
    used: bool = False


@dataclass
class SigninToken:
    """A Sign in with Vercel access token (for userinfo), stored by digest."""

    user_id: str
    client_id: str
    scopes: list[str]
    expires_at: float  # epoch seconds
