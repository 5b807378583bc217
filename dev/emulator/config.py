"""What the emulated integration looks like, and which of Vercel's variants it speaks.

Where Vercel's behaviour is documented in more than one way (vercel-api.md "CONFLICT" and
"UNVERIFIED" notes), the emulator can produce each variant; the defaults are the ones the
reference notes recommend, so tests run against the likeliest wire behaviour and can
switch to the others to prove a client tolerates them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field, fields, replace
from typing import Any, Literal

__all__ = [
    "DEFAULT_APP_CLIENT_ID",
    "DEFAULT_APP_CLIENT_SECRET",
    "DEFAULT_APP_SCOPES",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_SCOPES",
    "DEFAULT_SLUG",
    "ENV_CONFLICT_CODES",
    "EmulatorConfig",
]

DEFAULT_CLIENT_ID = "oac_devclient0000000000000000"
DEFAULT_CLIENT_SECRET = "dev-client-secret-change-me"  # noqa: S105 - a public dev default
DEFAULT_SLUG = "my-integration"
# Least privilege for an env-provisioning integration (vercel-api.md §9.3, §4.6):
# `project-env-vars` sees only the integration's own vars, not the user's.
# Duplicate-variable codes: v10's documented one, v9's, and the one Vercel's CLI also
# knows (`packages/cli/src/util/env/known-error.ts` in github.com/vercel/vercel).
ENV_CONFLICT_CODES: tuple[str, ...] = (
    "ENV_CONFLICT",
    "ENV_ALREADY_EXISTS",
    "EXISTING_KEY_AND_TARGET",
)
DEFAULT_SCOPES: tuple[str, ...] = (
    "read:project",
    "read-write:project-env-vars",
    # Read is what the product asks for (README's least-privilege list, the landing page):
    # it reads configurations and never changes one.
    "read:integration-configuration",
    # Team read: "Accesses team details for the account. Includes listing team members"
    # (https://vercel.com/docs/integrations/install-an-integration/manage-integrations-reference);
    # the configuration page checks that a signed-in visitor belongs to the owning team.
    "read:team",
)
# The Vercel App behind Sign in with Vercel: its own client, not the integration's `oac_`
# one. Vercel's App ids look like "cl_be6c3c8b9f340d4a20feefab2862a49a" (the `aud` of the
# ID token example, https://vercel.com/docs/sign-in-with-vercel/tokens).
DEFAULT_APP_CLIENT_ID = "cl_devapp00000000000000000000000"
DEFAULT_APP_CLIENT_SECRET = "dev-app-client-secret-change-me"  # noqa: S105 - a public dev default
# The scopes an App can be given (https://vercel.com/docs/sign-in-with-vercel/authorization-server-api).
DEFAULT_APP_SCOPES: tuple[str, ...] = ("openid", "email", "profile", "offline_access")


@dataclass
class EmulatorConfig:
    """One integration (OAuth client) registered with the emulated Vercel.

    `integration_slug` is accepted as an alias of `slug` (dev/stack.py spells it so).
    """

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    # A client-secret rotation in the Integration Console: the old secret, and which one
    # signs webhooks meanwhile (vercel-reality.md C1: whether Vercel dual-signs is unknown).
    previous_client_secret: str | None = field(default=None, repr=False)
    webhook_signer: Literal["current", "previous"] = "current"
    slug: str = DEFAULT_SLUG
    name: str = "My Integration"
    # Integration Console URLs: where Vercel sends the browser and the webhooks.
    redirect_uri: str = "http://127.0.0.1:3000/callback"
    webhook_url: str | None = None
    configuration_url: str | None = None
    # The emulator's own base URL (install pages and `next` point here).
    public_url: str = "http://127.0.0.1:4000"
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    seed: bool = True

    # -- Sign in with Vercel: the Vercel App registered with the emulated provider (oidc.py)
    app_client_id: str = DEFAULT_APP_CLIENT_ID
    app_client_secret: str = field(default=DEFAULT_APP_CLIENT_SECRET, repr=False)
    app_name: str = "My Integration"
    # The App's "Authorization Callback URLs": redirect_uri must be one of them, exactly.
    app_redirect_uris: tuple[str, ...] = ("http://127.0.0.1:3000/configure",)
    # The scopes configured on the App; a request's others are filtered out.
    app_scopes: tuple[str, ...] = DEFAULT_APP_SCOPES
    signin_code_ttl_s: float = 10 * 60
    # "Access tokens are valid for 1 hour" (https://vercel.com/docs/sign-in-with-vercel/tokens).
    signin_token_ttl_s: float = 60 * 60
    id_token_ttl_s: float = 60 * 60

    # -- time
    # Multiplies webhook retry delays only (tests use e.g. 0.001); timeouts are not scaled.
    time_scale: float = 1.0
    # Injectable wall clock (epoch seconds); the control API can also advance it.
    clock: Callable[[], float] = field(default=time.time, repr=False)
    code_ttl_s: float = 30 * 60  # "valid for 30 minutes" (vercel-api.md §1.3)

    # -- variants (vercel-api.md §4.1, §7, §2)
    env_conflict_status: Literal[400, 403] = 400
    env_conflict_code: str = "ENV_CONFLICT"
    invalid_token_status: Literal[401, 403] = 401
    oauth_error_style: Literal["oauth", "vercel"] = "oauth"
    # `decrypt=true` on the env list is deprecated and reported not to work (§4.2).
    honour_list_decrypt: bool = False
    # §10: undocumented whether an API-initiated delete also fires the removal webhook.
    webhook_on_api_delete: bool = True
    # X-RateLimit-* headers are UNVERIFIED for Vercel (§8); off unless asked for.
    rate_limit_headers: bool = False
    # An array create whose every item fails: 201 `{created: [], failed}` (today's
    # behaviour) or an error status whose body is `{error, failed}` (inferred from
    # Vercel's Terraform provider, vercel-reality.md D2).
    env_all_failed: Literal["created", "error"] = "created"
    # A missing permission: Vercel's observed wording, which names no scope ("vercel"),
    # or the emulator's former message naming the missing scope ("descriptive").
    permission_error_style: Literal["vercel", "descriptive"] = "vercel"
    # `PATCH` of a sensitive var that names `key`: Vercel's CLI stopped sending it
    # (github.com/vercel/vercel commit 4a5be0b, "fix `vc env update` for sensitive
    # environment variables"), so the API refuses it ("reject") or tolerates it ("allow").
    sensitive_patch_key: Literal["reject", "allow"] = "reject"
    # Under a team's "on" sensitive policy, what the server does with a plain/encrypted
    # var that targets development too (undocumented, vercel-reality.md D7): "reject" it
    # (400), "split" it (sensitive production/preview + encrypted development), "keep"
    # it as sent, or "promote_all" (sensitive, development included).
    sensitive_mixed_targets: Literal["reject", "split", "keep", "promote_all"] = "reject"

    # -- install redirect (vercel-reality.md A2, A5)
    callback_omit_team_id: bool = False
    callback_omit_configuration_id: bool = False
    # None: `next` is on this emulator; e.g. "https://www.vercel.com" puts it there.
    next_origin: str | None = None

    # -- paging
    projects_page_size: int = 20
    projects_max_limit: int = 100
    # "timestamp": `pagination.next` is the last project's `updatedAt` (a number);
    # "token": an opaque Base32 continuation string, the other shape getProjects documents.
    projects_pagination: Literal["timestamp", "token"] = "timestamp"
    # None: the env list is one page unless the caller passes `limit` (§4.2, Q5).
    env_list_page_size: int | None = None

    # -- webhooks (vercel-api.md §3.5)
    webhook_timeout_s: float = 30.0
    webhook_retry_base_s: float = 60.0
    webhook_retry_window_s: float = 24 * 60 * 60
    webhook_concurrency: int = 4
    region: str | None = "iad1"

    integration_slug: InitVar[str | None] = None

    def __post_init__(self, integration_slug: str | None) -> None:
        if integration_slug:
            self.slug = integration_slug
        self.validate()

    def validate(self) -> None:
        """Fail at configuration time, not in the middle of a request."""
        if self.env_conflict_status not in (400, 403):
            raise ValueError("env_conflict_status must be 400 or 403")
        if self.invalid_token_status not in (401, 403):
            raise ValueError("invalid_token_status must be 401 or 403")
        if self.env_conflict_code not in ENV_CONFLICT_CODES:
            raise ValueError("env_conflict_code must be one of " + ", ".join(ENV_CONFLICT_CODES))
        choices = {
            "env_all_failed": ("created", "error"),
            "permission_error_style": ("vercel", "descriptive"),
            "sensitive_patch_key": ("reject", "allow"),
            "sensitive_mixed_targets": ("reject", "split", "keep", "promote_all"),
            "projects_pagination": ("timestamp", "token"),
            "webhook_signer": ("current", "previous"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if self.webhook_signer == "previous" and not self.previous_client_secret:
            raise ValueError("webhook_signer 'previous' needs previous_client_secret")
        if self.next_origin is not None:
            if not self.next_origin.startswith(("http://", "https://")):
                raise ValueError("next_origin must be an http(s) origin")
            self.next_origin = self.next_origin.rstrip("/")
        if self.oauth_error_style not in ("oauth", "vercel"):
            raise ValueError("oauth_error_style must be 'oauth' or 'vercel'")
        if self.time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        if self.projects_page_size < 1 or self.projects_max_limit < 1:
            raise ValueError("page sizes must be >= 1")
        if self.env_list_page_size is not None and self.env_list_page_size < 1:
            raise ValueError("env_list_page_size must be >= 1 or None")
        if self.webhook_concurrency < 1:
            raise ValueError("webhook_concurrency must be >= 1")
        self.public_url = self.public_url.rstrip("/")
        self.scopes = tuple(dict.fromkeys(self.scopes))
        self.app_redirect_uris = tuple(self.app_redirect_uris)
        self.app_scopes = tuple(self.app_scopes)
        if not self.app_client_id or not self.app_client_secret:
            raise ValueError("app_client_id and app_client_secret must be set")
        if min(self.signin_code_ttl_s, self.signin_token_ttl_s, self.id_token_ttl_s) <= 0:
            raise ValueError("Sign in with Vercel lifetimes must be > 0")

    def updated(self, **changes: Any) -> EmulatorConfig:
        """A copy with `changes` applied (unknown names raise TypeError)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown emulator settings: {', '.join(unknown)}")
        return replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """The settings as JSON, without the client secrets or the clock."""
        hidden = {"client_secret", "previous_client_secret", "app_client_secret", "clock"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
