"""The emulator as one WSGI callable, and its Python control surface.

Three faces share one state:
- the REST API (`/v…`), wrapped in call counting, latency, rate limits and faults;
- the pages a person clicks (`/`, `/integrations/<slug>/…`, the dashboard);
- the control API (`/_emulator/…`), a thin JSON skin over the methods below, which
  in-process tests call directly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from dev.emulator import (
    control,
    dashboard,
    install,
    oauth,
    oidc,
    rest_configurations,
    rest_env,
    rest_projects,
    rest_teams,
)
from dev.emulator.actions import ActionError, Actions, Outcome
from dev.emulator.config import EmulatorConfig
from dev.emulator.context import Context
from dev.emulator.envs import EnvInput, parse_input
from dev.emulator.errors import ApiError, not_found
from dev.emulator.faults import FaultRule
from dev.emulator.ids import digest
from dev.emulator.limits import BucketRule
from dev.emulator.models import TEAM_ROLES, Account, ProjectSelection
from dev.emulator.routing import Match, MethodNotAllowed, Router
from dev.emulator.state import Store
from dev.emulator.webhooks import Delivery
from dev.emulator.wsgi import Disconnect, Request, Response, StartResponse, abort_connection

__all__ = ["Emulator", "create_app"]

log = logging.getLogger("dev.emulator")
# The REST API, and Sign in with Vercel's token endpoints (api.vercel.com/login/oauth/...).
_API_PATH = re.compile(r"^/(v\d+|login/oauth)/")
DEFAULT_DEPLOYMENT_EVENTS = ("deployment.created", "deployment.ready", "deployment.succeeded")


class Emulator:
    """A local Vercel: `emulator(environ, start_response)` serves it (dev/serve.py)."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self._ctx = Context(config or EmulatorConfig())
        self._actions = Actions(self._ctx)
        self._api = Router()
        rest_projects.register(self._api, self._ctx)
        rest_env.register(self._api, self._ctx)
        rest_configurations.register(self._api, self._ctx, self._actions)
        rest_teams.register(self._api, self._ctx)
        oauth.register(self._api, self._ctx)
        self._pages = Router()
        install.register(self._pages, self._ctx, self._actions)
        dashboard.register(self._pages, self._ctx, self._actions)
        oidc.register(self._pages, self._api, self._ctx)
        self._control = Router()
        control.register(self._control, self)

    # -- WSGI

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        req = Request(environ)
        try:
            if req.path.startswith("/_emulator/"):
                response = self._dispatch(self._control, req, api=False)
            elif _API_PATH.match(req.path):
                response = self._serve_api(req)
            else:
                response = self._dispatch(self._pages, req, api=False)
        except Disconnect as cut:
            abort_connection(environ, cut.reset)
        return response.send(start_response)

    def _dispatch(self, router: Router, req: Request, api: bool) -> Response:
        try:
            match = router.match(req.method, req.path)
        except MethodNotAllowed as exc:
            return ApiError(
                405,
                "method_unknown",
                f"This endpoint only responds to {', '.join(exc.allowed)}",
                headers=[("Allow", ", ".join(exc.allowed))],
            ).response()
        if match is None:
            if api or req.path.startswith("/_emulator/"):
                return not_found("The requested path was not found").response()
            return install.not_found_page(self._ctx, "There is no page at this address.")
        return self._run(match, req)

    def _run(self, match: Match, req: Request) -> Response:
        try:
            return match.handler(req, match.params)
        except ApiError as error:
            return error.response()
        except ActionError as error:
            code = {404: "not_found", 409: "conflict"}.get(error.status, "bad_request")
            return ApiError(error.status, code, error.message).response()
        except Exception:
            log.exception("emulator handler failed: %s", match.key)
            return ApiError(
                500, "internal_server_error", "An unexpected internal error occurred"
            ).response()

    def _serve_api(self, req: Request) -> Response:
        """Count, delay, rate-limit, maybe fault, then handle (vercel-api.md §7, §8)."""
        ctx = self._ctx
        try:
            match = self._api.match(req.method, req.path)
        except MethodNotAllowed as exc:
            match = None
            key = f"{req.method} {exc.template}"
        else:
            key = match.key if match else f"{req.method} (unknown)"
        method_path = f"{req.method} {req.path}"
        outcome: int | str = "disconnect"
        try:
            ctx.faults.delay()
            bearer = req.bearer
            limited, limit_headers = ctx.limits.take(
                key, method_path, digest(bearer) if bearer else "anonymous"
            )
            if limited is not None:
                response = limited.response()
            else:
                fault = ctx.faults.decide(key, method_path)
                if fault is not None and fault.rule.when == "before":
                    response = ctx.faults.strike(fault, key, ctx.clock.now())
                else:
                    response = self._dispatch(self._api, req, api=True)
                    if fault is not None:
                        response = ctx.faults.strike(fault, key, ctx.clock.now())
                if ctx.config.rate_limit_headers:
                    response.headers.extend(limit_headers)
            outcome = response.status
            return response
        finally:
            ctx.calls.record(key, outcome)

    # -- configuration

    @property
    def config(self) -> EmulatorConfig:
        return self._ctx.config

    def configure(self, **changes: Any) -> None:
        """Change settings at run time (e.g. `public_url` once the port is known)."""
        updated = self._ctx.config.updated(**changes)
        updated.validate()
        self._ctx.config = updated
        self._ctx.clock.set_source(updated.clock)

    def close(self) -> None:
        """Stop the webhook workers and release parked fault timeouts."""
        self._ctx.faults.close()
        self._ctx.sender.close()

    # -- state

    def reset(self, seed: bool = True) -> None:
        """Back to a fresh world; knobs (faults, latency, limits, counts, log, clock offset)
        cleared too. Settings stay: change them with `configure`."""
        self._ctx.sender.reset()
        self._ctx.clock.reset()
        self._ctx.store.reset(seed=seed)
        self._ctx.faults.reset()
        self._ctx.limits.configure([])
        self._ctx.calls.reset()

    def state(self) -> dict[str, Any]:
        return self._ctx.store.snapshot()

    def advance_clock(self, seconds: float) -> None:
        self._ctx.clock.advance(seconds)

    def _finish(self, outcome: Outcome, sync: bool) -> dict[str, Any]:
        if sync:
            self._wait(outcome.deliveries)
        return outcome.to_json()

    def _wait(self, deliveries: Sequence[Delivery]) -> None:
        self._ctx.sender.wait_first_attempts(deliveries, self.config.webhook_timeout_s + 5)

    # -- the world

    def create_team(self, slug: str, name: str | None = None) -> dict[str, Any]:
        return self._actions.create_team(slug, name).to_json()

    def signed_in_user(self) -> dict[str, Any]:
        with self._ctx.store.lock:
            return _person(self._ctx.store.user, self._ctx.store)

    def sign_in(self, username: str) -> dict[str, Any]:
        """Who is signed in on the emulator's pages (install, consent, dashboard)."""
        store = self._ctx.store
        with store.lock:
            try:
                user = store.sign_in(username)
            except ValueError as exc:
                raise ActionError(404, str(exc)) from None
            return _person(user, store)

    def rotate_signing_key(self, *, retain_previous: bool = False) -> dict[str, Any]:
        """A new Sign in with Vercel signing key; later ID tokens carry its `kid`."""
        kid = self._ctx.keys.rotate(retain_previous=retain_previous)
        return {"kid": kid, "kids": self._ctx.keys.kids()}

    def create_user(
        self, username: str, name: str | None = None, email: str | None = None
    ) -> dict[str, Any]:
        store = self._ctx.store
        with store.lock:
            try:
                user = store.add_user(username, name, email)
            except ValueError as exc:
                raise ActionError(400, str(exc)) from None
            return _person(user, store)

    def set_team_member(self, team: str, user: str, role: str | None) -> dict[str, Any]:
        """Add `user` to `team` with `role` (Vercel's team roles), or remove them (None)."""
        store = self._ctx.store
        with store.lock:
            account = store.account(team)
            person = store.find_user(user)
            if account is None or account.kind != "team":
                raise ActionError(404, f"no team {team!r}")
            if person is None:
                raise ActionError(404, f"no user {user!r}")
            if role is not None and role not in TEAM_ROLES:
                raise ActionError(400, f"role must be one of {', '.join(TEAM_ROLES)}")
            store.set_member(account.id, person.id, role)
            return {
                "team": account.slug,
                "members": [
                    {"id": u.id, "username": u.slug, "role": r}
                    for u, r in store.members_of(account.id)
                ],
            }

    def set_team(
        self, team: str, *, policy: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """Team settings, e.g. `policy="on"`: "Enforce Sensitive Environment Variables"."""
        return self._actions.set_team(team, policy, name).to_json()

    def add_custom_environment(
        self,
        project: str,
        slug: str,
        *,
        owner: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        return self._actions.add_custom_environment(project, slug, owner, description).to_json()

    def create_project(
        self, owner: str, name: str, framework: str | None = None, *, sync: bool = False
    ) -> dict[str, Any]:
        return self._finish(self._actions.create_project(owner, name, framework), sync)

    def remove_project(
        self, project: str, owner: str | None = None, *, sync: bool = False
    ) -> dict[str, Any]:
        return self._finish(self._actions.remove_project(project, owner), sync)

    def rename_project(
        self, project: str, name: str, owner: str | None = None, *, sync: bool = False
    ) -> dict[str, Any]:
        return self._finish(self._actions.rename_project(project, name, owner), sync)

    def add_user_env(
        self,
        project: str,
        key: str,
        value: str,
        *,
        target: Sequence[str] = ("production", "preview", "development"),
        type: str = "encrypted",
        git_branch: str | None = None,
        comment: str | None = None,
        hidden: bool = False,
        owner: str | None = None,
    ) -> dict[str, Any]:
        """A var created by a person (no `configurationId`); `hidden` keeps it out of lists."""
        raw: dict[str, Any] = {"key": key, "value": value, "type": type, "target": list(target)}
        if git_branch is not None:
            raw["gitBranch"] = git_branch
        if comment is not None:
            raw["comment"] = comment
        item: EnvInput = parse_input(raw)
        return self._actions.add_user_env(project, item, owner=owner, hidden=hidden).to_json()

    def remove_env(self, env_id: str) -> bool:
        """A person deletes a var on the dashboard (any owner); False if it did not exist."""
        store = self._ctx.store
        with store.lock:
            return store.envs.pop(env_id, None) is not None

    def deploy(
        self,
        project: str,
        events: Sequence[str] = DEFAULT_DEPLOYMENT_EVENTS,
        target: str | None = "production",
        owner: str | None = None,
        *,
        sync: bool = False,
    ) -> dict[str, Any]:
        return self._finish(self._actions.deploy(project, list(events), target, owner), sync)

    # -- installations

    def install(
        self,
        scope: str,
        project_selection: ProjectSelection = "all",
        projects: Sequence[str] = (),
        source: str = "external",
    ) -> dict[str, Any]:
        """Install on a scope as the install page would (no code); existing one reused."""
        cfg, created = self._actions.install(scope, project_selection, list(projects), source)
        return {"configurationId": cfg.id, "teamId": cfg.team_id, "created": created}

    def mint_code(
        self,
        configuration_id: str | None = None,
        *,
        scope: str | None = None,
        project_selection: ProjectSelection = "all",
        projects: Sequence[str] = (),
        source: str = "external",
        state: str | None = None,
        redirect_uri: str | None = None,
    ) -> dict[str, Any]:
        """A code for a configuration, or for `scope` (installing it first if needed),
        plus the Redirect URL the install page would have sent the browser to."""
        created = False
        if configuration_id is None:
            if scope is None:
                raise ActionError(400, "pass configurationId or scope")
            cfg, created = self._actions.install(scope, project_selection, list(projects), source)
            configuration_id = cfg.id
        with self._ctx.store.lock:
            code = self._actions.mint_code(configuration_id, redirect_uri)
            cfg = self._actions.configuration(configuration_id)
            return {
                "code": code,
                "configurationId": cfg.id,
                "teamId": cfg.team_id,
                "next": self._actions.next_url(cfg),
                "redirectUrl": self._actions.callback_url(cfg, code, source, state),
                "created": created,
            }

    def set_project_access(
        self,
        configuration_id: str,
        project_selection: ProjectSelection,
        projects: Sequence[str] = (),
        *,
        sync: bool = False,
    ) -> dict[str, Any]:
        outcome = self._actions.set_project_access(
            configuration_id, project_selection, list(projects)
        )
        return self._finish(outcome, sync)

    def disable_configuration(
        self, configuration_id: str, reason: str = "disabled-by-owner"
    ) -> dict[str, Any]:
        return self._actions.disable(configuration_id, reason).to_json()

    def enable_configuration(self, configuration_id: str) -> dict[str, Any]:
        return self._actions.enable(configuration_id).to_json()

    def delete_configuration(self, configuration_id: str, *, sync: bool = False) -> dict[str, Any]:
        return self._finish(self._actions.delete_configuration(configuration_id), sync)

    def confirm_scope_change(
        self, configuration_id: str, scopes: Sequence[str], *, sync: bool = False
    ) -> dict[str, Any]:
        return self._finish(
            self._actions.confirm_scope_change(configuration_id, list(scopes)), sync
        )

    def remove_scopes(self, configuration_id: str, scopes: Sequence[str]) -> dict[str, Any]:
        return self._actions.remove_scopes(configuration_id, list(scopes)).to_json()

    def transfer_configuration(
        self, configuration_id: str, team: str, *, sync: bool = False
    ) -> dict[str, Any]:
        return self._finish(self._actions.transfer(configuration_id, team), sync)

    # -- knobs

    def set_faults(self, rules: Sequence[FaultRule | dict[str, Any]], seed: int = 0) -> None:
        self._ctx.faults.configure([_fault_rule(r) for r in rules], seed)

    def clear_faults(self) -> None:
        self._ctx.faults.configure([], 0)

    def set_latency(self, ms: float) -> None:
        if ms < 0:
            raise ValueError("latency must be >= 0")
        self._ctx.faults.latency_ms = float(ms)

    def faults(self) -> dict[str, Any]:
        return self._ctx.faults.to_json()

    def set_rate_limits(self, rules: Sequence[BucketRule | dict[str, Any]]) -> None:
        self._ctx.limits.configure([_bucket_rule(r) for r in rules])

    def rate_limits(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self._ctx.limits.rules()]

    def call_counts(self) -> dict[str, Any]:
        return self._ctx.calls.to_json()

    def reset_calls(self) -> None:
        self._ctx.calls.reset()

    # -- webhooks

    def deliveries(self) -> list[dict[str, Any]]:
        return self._ctx.sender.deliveries()

    def drain(self, timeout: float = 10.0) -> bool:
        """True once no delivery is queued, in flight or waiting to retry."""
        return self._ctx.sender.drain(timeout)

    def pending_deliveries(self) -> int:
        """Deliveries queued, in flight or waiting to retry (held ones not counted)."""
        return self._ctx.sender.pending()

    def redeliver(self, delivery_id: str, *, sync: bool = False) -> dict[str, Any]:
        try:
            delivery = self._ctx.sender.redeliver(delivery_id)
        except KeyError:
            raise ActionError(404, f"no delivery {delivery_id!r}") from None
        return self._finish(Outcome({}, [delivery]), sync)


def _fault_rule(raw: FaultRule | dict[str, Any]) -> FaultRule:
    if isinstance(raw, FaultRule):
        return raw
    kinds = raw.get("kinds")
    if isinstance(kinds, list):
        kinds = dict.fromkeys((str(k) for k in kinds), 1.0)
    elif isinstance(kinds, dict):
        kinds = {str(k): float(v) for k, v in kinds.items()}
    args: dict[str, Any] = {
        "route": str(raw.get("route", "*")),
        "probability": float(raw.get("probability", 0.0)),
        "when": raw.get("when", "before"),
        "timeout_s": float(raw.get("timeoutS", raw.get("timeout_s", 35.0))),
        "retry_after": raw.get("retryAfter", raw.get("retry_after", 1)),
    }
    if kinds is not None:
        args["kinds"] = kinds
    return FaultRule(**args)


def _bucket_rule(raw: BucketRule | dict[str, Any]) -> BucketRule:
    if isinstance(raw, BucketRule):
        return raw
    return BucketRule(
        route=str(raw.get("route", "*")),
        capacity=int(raw.get("capacity", 60)),
        window_s=float(raw.get("windowS", raw.get("window_s", 60.0))),
    )


def _person(user: Account, store: Store) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.slug,
        "name": user.name,
        "email": user.email,
        "teams": [t.slug for t in store.teams_of(user.id)],
    }


def create_app(config: EmulatorConfig | None = None) -> Emulator:
    """A seeded emulator (unless `config.seed` is off), ready to be served."""
    return Emulator(config)
