"""What people do on the Vercel dashboard, and the webhooks each action fires.

Both the control API and the install pages call these; each returns an `Outcome`
carrying the deliveries it queued so a caller can wait for them (`?sync=1`).
Delivery routing follows vercel-api.md §3.1: `project.*` only to all-projects
configurations of the project's scope, `deployment.*` to configurations that can reach
the project, `integration-configuration.*` to the configuration concerned; a disabled
configuration still gets `project.created|removed` and `.removed`, the rest is held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dev.emulator import events
from dev.emulator.context import Context
from dev.emulator.envs import EnvInput, create_env, render_env
from dev.emulator.ids import digest, new_id, new_secret
from dev.emulator.models import (
    SENSITIVE_POLICIES,
    Account,
    AuthCode,
    Configuration,
    Project,
    ProjectSelection,
)
from dev.emulator.state import PROJECT_NAME
from dev.emulator.webhooks import Delivery

__all__ = [
    "ActionError",
    "Actions",
    "Outcome",
]

CONFIG_SOURCES = (
    "marketplace",
    "deploy-button",
    "external",
    "v0",
    "resource-claims",
    "cli",
    "oauth",
    "backoffice",
)


class ActionError(Exception):
    """A control request that cannot be carried out (unknown id, invalid name, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Outcome:
    result: dict[str, Any]
    deliveries: list[Delivery] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.result, "deliveries": [d.to_json() for d in self.deliveries]}


def render_project(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "accountId": project.account_id,
        "createdAt": project.created_at,
        "updatedAt": project.updated_at,
    }


def render_team_summary(team: Account) -> dict[str, Any]:
    return {
        "id": team.id,
        "slug": team.slug,
        "name": team.name,
        "sensitiveEnvironmentVariablePolicy": team.sensitive_env_policy,
    }


class Actions:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # -- lookups (raise ActionError)

    def account(self, id_or_slug: str) -> Account:
        found = self._ctx.store.account(id_or_slug)
        if found is None:
            raise ActionError(404, f"no account or team {id_or_slug!r}")
        return found

    def project(self, id_or_name: str, owner: str | None = None) -> Project:
        store = self._ctx.store
        if owner is not None:
            found = store.find_project(self.account(owner).id, id_or_name)
        else:
            found = store.projects.get(id_or_name)
            if found is None:
                named = [p for p in store.projects.values() if p.name == id_or_name]
                if len(named) > 1:
                    raise ActionError(409, f"{id_or_name!r} is ambiguous: pass owner")
                found = named[0] if named else None
        if found is None:
            raise ActionError(404, f"no project {id_or_name!r}")
        return found

    def configuration(self, configuration_id: str) -> Configuration:
        cfg = self._ctx.store.configurations.get(configuration_id)
        if cfg is None or not cfg.active:
            raise ActionError(404, f"no live configuration {configuration_id!r}")
        return cfg

    # -- delivery routing

    def _fire(self, cfg: Configuration, event_type: str, payload: dict[str, Any]) -> Delivery:
        paused = cfg.disabled_at is not None and event_type not in events.PAUSE_EXEMPT
        return self._ctx.sender.enqueue(event_type, payload, cfg.id, paused=paused)

    def _fire_project_event(
        self, project: Project, event_type: str, previous_name: str | None = None
    ) -> list[Delivery]:
        store = self._ctx.store
        cfg = store.configuration_for(project.account_id)
        if cfg is None or cfg.project_selection != "all":
            return []
        account = store.accounts[project.account_id]
        payload = events.project_payload(project, account, store.user_id, previous_name)
        return [self._fire(cfg, event_type, payload)]

    # -- install and OAuth codes (vercel-api.md §1)

    def install(
        self,
        scope: str,
        selection: ProjectSelection = "all",
        project_ids: list[str] | None = None,
        source: str = "external",
    ) -> tuple[Configuration, bool]:
        """The configuration for `scope`, created if the scope has none (then True).

        "An integration can be installed only once per scope": an existing configuration
        is returned unchanged (DOC-INSTALL).
        """
        ctx = self._ctx
        with ctx.store.lock:
            account = self.account(scope)
            existing = ctx.store.configuration_for(account.id)
            if existing is not None:
                return existing, False
            if source not in CONFIG_SOURCES:
                raise ActionError(400, f"source must be one of {', '.join(CONFIG_SOURCES)}")
            granted = self._checked_projects(account, selection, project_ids or [])
            now = ctx.clock.tick_ms()
            cfg = Configuration(
                id=new_id("icfg_"),
                owner_id=account.id,
                team_id=account.team_id,
                user_id=ctx.store.user_id,
                scopes=list(ctx.config.scopes),
                project_selection=selection,
                projects=granted,
                source=source,
                created_at=now,
                updated_at=now,
            )
            ctx.store.configurations[cfg.id] = cfg
            return cfg, True

    def _checked_projects(
        self, account: Account, selection: ProjectSelection, project_ids: list[str]
    ) -> list[str]:
        if selection not in ("all", "selected"):
            raise ActionError(400, "projectSelection must be 'all' or 'selected'")
        if selection == "all":
            return []
        owned = {p.id for p in self._ctx.store.projects_of(account.id)}
        chosen = list(dict.fromkeys(project_ids))
        strays = [p for p in chosen if p not in owned]
        if strays:
            raise ActionError(400, f"project {strays[0]!r} is not in scope {account.slug!r}")
        if not chosen:
            raise ActionError(400, "select at least one project")
        return chosen

    def mint_code(self, configuration_id: str, redirect_uri: str | None = None) -> str:
        """A fresh one-shot code for a configuration, valid `code_ttl_s` (30 min)."""
        ctx = self._ctx
        with ctx.store.lock:
            cfg = self.configuration(configuration_id)
            code = new_secret()
            ctx.store.codes[digest(code)] = AuthCode(
                configuration_id=cfg.id,
                client_id=ctx.config.client_id,
                redirect_uri=redirect_uri or ctx.config.redirect_uri,
                expires_at=ctx.clock.now() + ctx.config.code_ttl_s,
            )
            return code

    def next_url(self, cfg: Configuration) -> str:
        """The `next` URL: this emulator's "dashboard" page that completes the install, or
        the same path on `next_origin` (e.g. https://www.vercel.com: no public sample shows
        which host Vercel's real `next` uses, vercel-reality.md A5)."""
        path = self.dashboard_path(cfg) + "/installed"
        origin = self._ctx.config.next_origin or self._ctx.config.public_url
        return origin + path

    def dashboard_path(self, cfg: Configuration, absolute: bool = False) -> str:
        """`/<scope-slug>/~/integrations/<slug>/<icfg>`, shaped like Vercel's dashboard."""
        ctx = self._ctx
        owner = ctx.store.accounts[cfg.owner_id]
        path = f"/{owner.slug}/~/integrations/{ctx.config.slug}/{cfg.id}"
        return ctx.config.public_url + path if absolute else path

    def callback_url(self, cfg: Configuration, code: str, source: str, state: str | None) -> str:
        """The Redirect URL with Vercel's parameters (§1.1; `teamId` only for teams).

        Variants: `callback_omit_team_id` (Vercel turned personal accounts into hobby
        teams and no source pins whether the query still carries `teamId` then,
        vercel-reality.md A2) and `callback_omit_configuration_id` (never observed; the
        external flow with `state` is the case other integrations treat as optional)."""
        config = self._ctx.config
        params = [("code", code)]
        if not config.callback_omit_configuration_id:
            params.append(("configurationId", cfg.id))
        if cfg.team_id and not config.callback_omit_team_id:
            params.append(("teamId", cfg.team_id))
        params += [("next", self.next_url(cfg)), ("source", source)]
        if state is not None:
            params.append(("state", state))
        parts = urlsplit(self._ctx.config.redirect_uri)
        query = parse_qsl(parts.query, keep_blank_values=True) + params
        return urlunsplit(parts._replace(query=urlencode(query)))

    def complete(self, configuration_id: str) -> Configuration:
        with self._ctx.store.lock:
            cfg = self.configuration(configuration_id)
            if cfg.completed_at is None:
                cfg.completed_at = self._ctx.clock.tick_ms()
                cfg.updated_at = cfg.completed_at
            return cfg

    # -- projects

    def create_team(self, slug: str, name: str | None = None) -> Outcome:
        with self._ctx.store.lock:
            try:
                team = self._ctx.store.add_team(slug, name)
            except ValueError as exc:
                raise ActionError(400, str(exc)) from exc
            return Outcome({"team": render_team_summary(team)})

    def set_team(self, team: str, policy: str | None = None, name: str | None = None) -> Outcome:
        """Team settings a person changes on the dashboard (`PATCH /_emulator/teams/{team}`)."""
        with self._ctx.store.lock:
            account = self.account(team)
            if account.kind != "team":
                raise ActionError(400, f"{team!r} is a personal account, not a team")
            if policy is not None:
                if policy not in SENSITIVE_POLICIES:
                    raise ActionError(
                        400,
                        "sensitiveEnvironmentVariablePolicy must be one of "
                        + ", ".join(SENSITIVE_POLICIES),
                    )
                account.sensitive_env_policy = policy
            if name is not None:
                account.name = name
            return Outcome({"team": render_team_summary(account)})

    def add_custom_environment(
        self, project: str, slug: str, owner: str | None = None, description: str | None = None
    ) -> Outcome:
        store = self._ctx.store
        with store.lock:
            found = self.project(project, owner)
            try:
                custom = store.add_custom_environment(found, slug, description)
            except ValueError as exc:
                raise ActionError(400, str(exc)) from exc
            return Outcome(
                {"customEnvironment": {"id": custom.id, "slug": custom.slug, "projectId": found.id}}
            )

    def create_project(self, owner: str, name: str, framework: str | None = None) -> Outcome:
        store = self._ctx.store
        with store.lock:
            account = self.account(owner)
            try:
                project = store.add_project(account.id, name, framework)
            except ValueError as exc:
                raise ActionError(400, str(exc)) from exc
            fired = self._fire_project_event(project, events.PROJECT_CREATED)
            return Outcome({"project": render_project(project)}, fired)

    def remove_project(self, id_or_name: str, owner: str | None = None) -> Outcome:
        store = self._ctx.store
        with store.lock:
            project = self.project(id_or_name, owner)
            fired = self._fire_project_event(project, events.PROJECT_REMOVED)
            del store.projects[project.id]
            for env in store.project_envs(project.id):
                del store.envs[env.id]
            for custom in store.project_custom_environments(project.id):
                del store.custom_environments[custom.id]
            for cfg in store.configurations.values():
                if project.id in cfg.projects:
                    cfg.projects.remove(project.id)
            return Outcome({"project": render_project(project)}, fired)

    def rename_project(self, id_or_name: str, name: str, owner: str | None = None) -> Outcome:
        store = self._ctx.store
        with store.lock:
            project = self.project(id_or_name, owner)
            if store.find_project(project.account_id, name) not in (None, project):
                raise ActionError(400, f"a project named {name!r} already exists")
            if not PROJECT_NAME.match(name):
                raise ActionError(400, f"invalid project name {name!r}")
            previous, project.name = project.name, name
            project.updated_at = self._ctx.clock.tick_ms()
            fired = self._fire_project_event(project, events.PROJECT_RENAMED, previous)
            return Outcome({"project": render_project(project), "previousName": previous}, fired)

    def add_user_env(
        self,
        project_id_or_name: str,
        item: EnvInput,
        *,
        owner: str | None = None,
        hidden: bool = False,
    ) -> Outcome:
        """A var a person created on the dashboard: no `configurationId`, no webhook.

        `hidden` makes it invisible to the list endpoint while still conflicting with a
        create (anchors.md §1, §3 pains 3 and 9).
        """
        ctx = self._ctx
        with ctx.store.lock:
            project = self.project(project_id_or_name, owner)
            env = create_env(
                ctx.store,
                ctx.config,
                project,
                item,
                configuration_id=None,
                actor=ctx.store.user_id,
                upsert=False,
                hidden=hidden,
            )
            return Outcome({"env": {**render_env(env, decrypted=True), "hidden": env.hidden}})

    # -- configurations

    def set_project_access(
        self, configuration_id: str, selection: ProjectSelection, project_ids: list[str]
    ) -> Outcome:
        """The user changed project access: `permission-upgraded` with added/removed ids."""
        store = self._ctx.store
        with store.lock:
            cfg = self.configuration(configuration_id)
            account = store.accounts[cfg.owner_id]
            chosen = self._checked_projects(account, selection, project_ids)
            before = store.granted_project_ids(cfg)
            cfg.project_selection, cfg.projects = selection, chosen
            cfg.updated_at = self._ctx.clock.tick_ms()
            after = store.granted_project_ids(cfg)
            added = [p for p in after if p not in before]
            removed = [p for p in before if p not in after]
            payload = events.configuration_payload(
                cfg, store.user_id, after, added=added, removed=removed
            )
            fired = [self._fire(cfg, events.PERMISSION_UPGRADED, payload)]
            result = {"configurationId": cfg.id, "added": added, "removed": removed}
            return Outcome(result, fired)

    def disable(self, configuration_id: str, reason: str = "disabled-by-owner") -> Outcome:
        with self._ctx.store.lock:
            cfg = self.configuration(configuration_id)
            cfg.disabled_at = self._ctx.clock.tick_ms()
            cfg.disabled_reason = reason
            return Outcome({"configurationId": cfg.id, "disabledAt": cfg.disabled_at})

    def enable(self, configuration_id: str) -> Outcome:
        with self._ctx.store.lock:
            cfg = self.configuration(configuration_id)
            cfg.disabled_at = cfg.disabled_reason = None
        self._ctx.sender.resume(cfg.id)
        return Outcome({"configurationId": cfg.id})

    def delete_configuration(self, configuration_id: str, *, notify: bool = True) -> Outcome:
        """Uninstall: the configuration, its tokens, codes and env vars go (DOC-DELCONFIG)."""
        store = self._ctx.store
        with store.lock:
            cfg = self.configuration(configuration_id)
            payload = events.configuration_payload(
                cfg, store.user_id, store.granted_project_ids(cfg)
            )
            cfg.deleted_at = self._ctx.clock.tick_ms()
            for key in [k for k, t in store.tokens.items() if t.configuration_id == cfg.id]:
                del store.tokens[key]
            for key in [k for k, c in store.codes.items() if c.configuration_id == cfg.id]:
                del store.codes[key]
            removed_envs = [e.id for e in store.envs.values() if e.configuration_id == cfg.id]
            for env_id in removed_envs:
                del store.envs[env_id]
            self._ctx.sender.drop_paused(cfg.id)
            fired = [self._fire(cfg, events.CONFIG_REMOVED, payload)] if notify else []
            return Outcome({"configurationId": cfg.id, "removedEnvs": removed_envs}, fired)

    def confirm_scope_change(self, configuration_id: str, scopes: list[str]) -> Outcome:
        """The owner confirmed new scopes (§9.3): they apply, and the integration hears so."""
        store = self._ctx.store
        with store.lock:
            cfg = self.configuration(configuration_id)
            cfg.scopes = list(dict.fromkeys(scopes))
            cfg.updated_at = self._ctx.clock.tick_ms()
            payload = events.scope_change_payload(cfg, store.user_id)
            fired = [self._fire(cfg, events.SCOPE_CHANGE_CONFIRMED, payload)]
            return Outcome({"configurationId": cfg.id, "scopes": list(cfg.scopes)}, fired)

    def remove_scopes(self, configuration_id: str, scopes: list[str]) -> Outcome:
        """Removals and downgrades apply at once, without a webhook (§9.3)."""
        with self._ctx.store.lock:
            cfg = self.configuration(configuration_id)
            cfg.scopes = [s for s in cfg.scopes if s not in scopes]
            cfg.updated_at = self._ctx.clock.tick_ms()
            return Outcome({"configurationId": cfg.id, "scopes": list(cfg.scopes)})

    def transfer(self, configuration_id: str, team: str) -> Outcome:
        """Move an installation to another team: `integration-configuration.transferred`.

        The old scope's project grants mean nothing in the new team, so a
        selected-projects configuration keeps no projects until the user picks some.
        """
        store = self._ctx.store
        with store.lock:
            cfg = self.configuration(configuration_id)
            target = self.account(team)
            if target.kind != "team" or target.id == cfg.owner_id:
                raise ActionError(400, "transfer needs another team")
            if store.configuration_for(target.id) is not None:
                raise ActionError(409, f"team {target.slug!r} already has this integration")
            previous = cfg.team_id
            cfg.owner_id, cfg.team_id, cfg.projects = target.id, target.id, []
            cfg.updated_at = self._ctx.clock.tick_ms()
            payload = events.transferred_payload(cfg, previous)
            fired = [self._fire(cfg, events.TRANSFERRED, payload)]
            result = {"configurationId": cfg.id, "previousTeamId": previous, "newTeamId": target.id}
            return Outcome(result, fired)

    def deploy(
        self,
        id_or_name: str,
        event_types: list[str],
        target: str | None = "production",
        owner: str | None = None,
    ) -> Outcome:
        """Fire `deployment.*` events for one new deployment of a project."""
        unknown = [t for t in event_types if t not in events.DEPLOYMENT_EVENTS]
        if unknown or not event_types:
            raise ActionError(400, f"events must be among {', '.join(events.DEPLOYMENT_EVENTS)}")
        store = self._ctx.store
        with store.lock:
            project = self.project(id_or_name, owner)
            account = store.accounts[project.account_id]
            deployment_id = new_id("dpl_")
            cfg = store.configuration_for(project.account_id)
            reaches = cfg is not None and (
                cfg.project_selection == "all" or project.id in cfg.projects
            )
            fired: list[Delivery] = []
            for event_type in event_types:
                payload = events.deployment_payload(
                    event_type,
                    deployment_id,
                    project,
                    account,
                    store.user_id,
                    target,
                    self._ctx.dashboard_url(),
                )
                if cfg is not None and reaches:
                    fired.append(self._fire(cfg, event_type, payload))
            return Outcome({"deploymentId": deployment_id, "projectId": project.id}, fired)
