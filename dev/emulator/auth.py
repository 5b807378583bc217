"""Who is calling, on which scope, with which permissions (vercel-api.md §7, §9.3, §4.6).

- A token from the code exchange is bound to one configuration, hence one scope. The
  scope of a request is `teamId` (or `slug`), else the installer's personal account; a
  team token without `teamId` therefore asks for the person's scope and gets 403
  `forbidden` "Not authorized: Trying to access resource under scope ..." (the observed
  body, VPU-170 / TF-39).
- Missing or unknown token, and the token of a deleted configuration: 401
  `unauthorized` by default (the 2026 OpenAPI responses), or 403 `forbidden` with the
  CLI's `invalidToken` / `missingToken` markers (`invalid_token_status=403`). Both carry
  the marker.
- A disabled configuration: 403 `integration_configuration_disabled` on every call
  (DOC-VAPI-MIRROR); its message is undocumented.
- Integration scopes ("read:project", "read-write:project-env-vars", "read:team",
  ...): a missing one is 403 `forbidden` "You don't have permission to access this
  resource." — the body observed for an integration token without a scope
  (github.com/saleor/cli PR #530); it names no scope, so neither does the emulator
  (`permission_error_style="descriptive"` restores the old message naming the scope).
- `project-env-vars` sees only the integration's own vars; `global-project-env-vars`
  sees everyone's (DOC-PERMS).
- A selected-projects configuration gets 403 on the other projects of its scope
  (status UNVERIFIED: Vercel does not document it).
"""

from __future__ import annotations

from dataclasses import dataclass

from dev.emulator.config import EmulatorConfig
from dev.emulator.context import Context
from dev.emulator.errors import ApiError, forbidden, not_found
from dev.emulator.ids import digest
from dev.emulator.models import Account, Configuration, EnvVar, Project
from dev.emulator.wsgi import Request

__all__ = [
    "MISSING_PERMISSION",
    "Caller",
    "authenticate",
    "has_scope",
    "require_scope",
    "resolve_project",
]

MISSING_PERMISSION = "You don't have permission to access this resource."


@dataclass(frozen=True)
class Caller:
    configuration: Configuration
    account: Account  # the scope the token works on (the configuration's owner)
    identity: str  # the token's digest: rate-limit buckets are per caller
    settings: EmulatorConfig

    def sees_all_envs(self, write: bool) -> bool:
        return has_scope(self.configuration, "global-project-env-vars", write)

    def can_access(self, project: Project) -> bool:
        cfg = self.configuration
        if project.account_id != cfg.owner_id:
            return False
        return cfg.project_selection == "all" or project.id in cfg.projects

    def sees_env(self, env: EnvVar) -> bool:
        if env.hidden:
            return False
        return self.sees_all_envs(False) or env.configuration_id == self.configuration.id

    def may_modify_env(self, env: EnvVar) -> bool:
        if env.hidden:
            return False
        return self.sees_all_envs(True) or env.configuration_id == self.configuration.id


def _token_error(ctx: Context, missing: bool) -> ApiError:
    if ctx.config.invalid_token_status == 403:
        if missing:
            message = "The request is missing an authentication token"
            return ApiError(403, "forbidden", message, missingToken=True)
        return ApiError(403, "forbidden", "Not authorized", invalidToken=True)
    if missing:
        return ApiError(401, "unauthorized", "The request is not authorized.", missingToken=True)
    return ApiError(401, "unauthorized", "The request is not authorized.", invalidToken=True)


def _scope_error(scope: str, team_id: str | None) -> ApiError:
    return forbidden(
        f'Not authorized: Trying to access resource under scope "{scope}". You must '
        "re-authenticate to this scope or use a token with access to this scope.",
        scope=scope,
        teamId=team_id,
    )


def authenticate(ctx: Context, req: Request, path_team: str | None = None) -> Caller:
    """The caller of a REST request, or the ApiError Vercel would answer. Under the lock.

    `path_team` is a team named by the path (`/v2/teams/{teamId}`), which sets the scope
    when the query names none."""
    token = req.bearer
    if token is None:
        raise _token_error(ctx, missing=True)
    store = ctx.store
    record = store.tokens.get(digest(token))
    cfg = store.configurations.get(record.configuration_id) if record else None
    if cfg is None or not cfg.active:
        raise _token_error(ctx, missing=False)
    if cfg.disabled_at is not None:
        raise ApiError(
            403,
            "integration_configuration_disabled",
            "This integration configuration is disabled.",
        )
    team_id = req.query.get("teamId") or None
    slug = req.query.get("slug") or None
    if team_id is None and slug is None and path_team is not None:
        named = store.account(path_team)
        team_id = named.id if named is not None else path_team
    if team_id is not None:
        wanted = store.accounts.get(team_id)
        label = wanted.slug if wanted else team_id
    elif slug is not None:
        wanted = store.account(slug)
        label = slug
    else:
        wanted = store.accounts.get(cfg.user_id)
        label = wanted.slug if wanted else cfg.user_id
    if wanted is None or wanted.id != cfg.owner_id:
        raise _scope_error(label, team_id)
    return Caller(configuration=cfg, account=wanted, identity=digest(token), settings=ctx.config)


def has_scope(cfg: Configuration, resource: str, write: bool) -> bool:
    for scope in cfg.scopes:
        access, _, name = scope.partition(":")
        if name == resource and (access == "read-write" or (access == "read" and not write)):
            return True
    return False


def require_scope(caller: Caller, *resources: str, write: bool) -> None:
    """At least one of `resources` with the needed access, else 403."""
    if any(has_scope(caller.configuration, r, write) for r in resources):
        return
    if caller.settings.permission_error_style == "descriptive":
        needed = " or ".join(f"{'read-write' if write else 'read'}:{r}" for r in resources)
        raise forbidden(f"Not authorized: the integration is missing the scope {needed}.")
    raise forbidden(MISSING_PERMISSION)


def resolve_project(ctx: Context, caller: Caller, id_or_name: str) -> Project:
    project = ctx.store.find_project(caller.account.id, id_or_name)
    if project is None:
        raise not_found("Project not found", projectId=id_or_name)
    if not caller.can_access(project):
        raise forbidden(
            "Not authorized: this integration configuration has no access to the project.",
            projectId=project.id,
        )
    return project
