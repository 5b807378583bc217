"""The control API under `/_emulator/`: JSON over the Emulator's Python methods.

Local test tooling, so no auth; never subject to injected faults, latency or rate
limits. Actions that fire webhooks return at once (delivery is in the background)
unless called with `?sync=1`, which waits for each fired delivery's first attempt;
`POST /_emulator/webhooks/drain?timeout=S` waits until nothing is left to deliver.

Beyond the world and the knobs, `PATCH /_emulator/config` selects Vercel's variants
(config.py lists them) and `PATCH /_emulator/teams/{slug or id}` changes a team's
settings: `{"sensitiveEnvironmentVariablePolicy": "on"}` makes the server promote
production/preview vars to sensitive (envs.py). `POST /_emulator/projects/{project}/
custom-environments` `{"slug", "owner"?, "description"?}` adds a custom environment.

People: `PUT /_emulator/signed-in-user` `{"username": "outsider"}` chooses who is signed in
on the emulator's pages (install, Sign in with Vercel consent, dashboard), `GET` says who
is; `POST /_emulator/users` `{"username", "name"?, "email"?}` adds a person and
`PUT|DELETE /_emulator/teams/{team}/members/{user}` `{"role": "MEMBER"}` changes who
belongs to a team (what `GET /v3/teams/{teamId}/members` lists). Sign in with Vercel:
`POST /_emulator/oidc/rotate-key` `{"retainPrevious": false}` replaces the signing key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from dev.emulator.errors import bad_request
from dev.emulator.models import ProjectSelection
from dev.emulator.routing import Router
from dev.emulator.wsgi import Request, Response

if TYPE_CHECKING:
    from dev.emulator.app import Emulator

__all__ = ["register"]

_Params = dict[str, str]


def _body(req: Request) -> dict[str, Any]:
    if not req.body.strip():
        return {}
    try:
        data = req.json()
    except ValueError:
        raise bad_request("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("the body should be a JSON object")
    return data


def _str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request(f"`{name}` is required and must be a string")
    return value


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"`{name}` must be a string")
    return value


def _strs(body: dict[str, Any], name: str, default: list[str] | None = None) -> list[str]:
    value = body.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"`{name}` must be an array of strings")
    return value


def _selection(body: dict[str, Any]) -> ProjectSelection:
    value = body.get("projectSelection", "all")
    if value not in ("all", "selected"):
        raise bad_request("`projectSelection` must be 'all' or 'selected'")
    return cast(ProjectSelection, value)


def _sync(req: Request) -> bool:
    return req.query.get("sync", "") in ("1", "true", "yes")


def _ok(data: Any, status: int = 200) -> Response:
    return Response.json(data, status)


class Control:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    # -- state

    def state(self, req: Request, _: _Params) -> Response:
        return _ok(self.emu.state())

    def reset(self, req: Request, _: _Params) -> Response:
        seed = _body(req).get("seed", True)
        self.emu.reset(seed=bool(seed))
        return _ok(self.emu.state())

    def get_config(self, req: Request, _: _Params) -> Response:
        return _ok(self.emu.config.public())

    def patch_config(self, req: Request, _: _Params) -> Response:
        changes = _body(req)
        if "clock" in changes:
            raise bad_request("the clock is advanced with POST /_emulator/clock/advance")
        for name in ("scopes", "app_scopes", "app_redirect_uris"):
            if name in changes:
                changes[name] = tuple(_strs(changes, name))
        try:
            self.emu.configure(**changes)
        except (TypeError, ValueError) as exc:
            raise bad_request(str(exc)) from None
        return _ok(self.emu.config.public())

    def advance_clock(self, req: Request, _: _Params) -> Response:
        seconds = _body(req).get("seconds")
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise bad_request("`seconds` must be a number >= 0")
        self.emu.advance_clock(float(seconds))
        return _ok({"advancedS": seconds})

    # -- the world

    def create_team(self, req: Request, _: _Params) -> Response:
        body = _body(req)
        return _ok(self.emu.create_team(_str(body, "slug"), _opt_str(body, "name")), 201)

    def patch_team(self, req: Request, p: _Params) -> Response:
        body = _body(req)
        unknown = sorted(set(body) - {"sensitiveEnvironmentVariablePolicy", "name"})
        if unknown:
            raise bad_request(f"unknown team settings: {', '.join(unknown)}")
        result = self.emu.set_team(
            p["team"],
            policy=_opt_str(body, "sensitiveEnvironmentVariablePolicy"),
            name=_opt_str(body, "name"),
        )
        return _ok(result)

    def get_signed_in_user(self, req: Request, _: _Params) -> Response:
        return _ok(self.emu.signed_in_user())

    def put_signed_in_user(self, req: Request, _: _Params) -> Response:
        return _ok(self.emu.sign_in(_str(_body(req), "username")))

    def create_user(self, req: Request, _: _Params) -> Response:
        body = _body(req)
        result = self.emu.create_user(
            _str(body, "username"), _opt_str(body, "name"), _opt_str(body, "email")
        )
        return _ok(result, 201)

    def put_member(self, req: Request, p: _Params) -> Response:
        role = _opt_str(_body(req), "role") or "MEMBER"
        return _ok(self.emu.set_team_member(p["team"], p["user"], role))

    def delete_member(self, req: Request, p: _Params) -> Response:
        return _ok(self.emu.set_team_member(p["team"], p["user"], None))

    def rotate_key(self, req: Request, _: _Params) -> Response:
        retain = _body(req).get("retainPrevious", False)
        if not isinstance(retain, bool):
            raise bad_request("`retainPrevious` must be a boolean")
        return _ok(self.emu.rotate_signing_key(retain_previous=retain))

    def add_custom_environment(self, req: Request, p: _Params) -> Response:
        body = _body(req)
        result = self.emu.add_custom_environment(
            p["project"],
            _str(body, "slug"),
            owner=_opt_str(body, "owner"),
            description=_opt_str(body, "description"),
        )
        return _ok(result, 201)

    def create_project(self, req: Request, _: _Params) -> Response:
        body = _body(req)
        result = self.emu.create_project(
            _str(body, "owner"), _str(body, "name"), _opt_str(body, "framework"), sync=_sync(req)
        )
        return _ok(result, 201)

    def remove_project(self, req: Request, p: _Params) -> Response:
        return _ok(self.emu.remove_project(p["project"], req.query.get("owner"), sync=_sync(req)))

    def rename_project(self, req: Request, p: _Params) -> Response:
        body = _body(req)
        result = self.emu.rename_project(
            p["project"], _str(body, "name"), _opt_str(body, "owner"), sync=_sync(req)
        )
        return _ok(result)

    def add_env(self, req: Request, p: _Params) -> Response:
        body = _body(req)
        result = self.emu.add_user_env(
            p["project"],
            _str(body, "key"),
            _opt_str(body, "value") or "",
            target=_strs(body, "target", ["production", "preview", "development"]),
            type=_opt_str(body, "type") or "encrypted",
            git_branch=_opt_str(body, "gitBranch"),
            comment=_opt_str(body, "comment"),
            hidden=bool(body.get("hidden", False)),
            owner=_opt_str(body, "owner"),
        )
        return _ok(result, 201)

    def remove_env(self, req: Request, p: _Params) -> Response:
        if not self.emu.remove_env(p["id"]):
            raise bad_request(f"no env var {p['id']}")
        return _ok({"removed": p["id"]})

    def deploy(self, req: Request, p: _Params) -> Response:
        body = _body(req)
        events = _strs(
            body, "events", ["deployment.created", "deployment.ready", "deployment.succeeded"]
        )
        target = body.get("target", "production")
        if target is not None and not isinstance(target, str):
            raise bad_request("`target` must be a string or null")
        result = self.emu.deploy(
            p["project"], events, target, _opt_str(body, "owner"), sync=_sync(req)
        )
        return _ok(result)

    # -- installations

    def install(self, req: Request, _: _Params) -> Response:
        body = _body(req)
        result = self.emu.install(
            _str(body, "scope"),
            _selection(body),
            _strs(body, "projects", []),
            _opt_str(body, "source") or "external",
        )
        return _ok(result, 201 if result["created"] else 200)

    def mint_code(self, req: Request, _: _Params) -> Response:
        body = _body(req)
        result = self.emu.mint_code(
            _opt_str(body, "configurationId"),
            scope=_opt_str(body, "scope"),
            project_selection=_selection(body),
            projects=_strs(body, "projects", []),
            source=_opt_str(body, "source") or "external",
            state=_opt_str(body, "state"),
            redirect_uri=_opt_str(body, "redirectUri"),
        )
        return _ok(result, 201)

    def set_access(self, req: Request, p: _Params) -> Response:
        body = _body(req)
        result = self.emu.set_project_access(
            p["id"], _selection(body), _strs(body, "projects", []), sync=_sync(req)
        )
        return _ok(result)

    def disable(self, req: Request, p: _Params) -> Response:
        reason = _opt_str(_body(req), "reason") or "disabled-by-owner"
        return _ok(self.emu.disable_configuration(p["id"], reason))

    def enable(self, req: Request, p: _Params) -> Response:
        return _ok(self.emu.enable_configuration(p["id"]))

    def delete(self, req: Request, p: _Params) -> Response:
        return _ok(self.emu.delete_configuration(p["id"], sync=_sync(req)))

    def confirm_scopes(self, req: Request, p: _Params) -> Response:
        scopes = _strs(_body(req), "scopes")
        return _ok(self.emu.confirm_scope_change(p["id"], scopes, sync=_sync(req)))

    def remove_scopes(self, req: Request, p: _Params) -> Response:
        return _ok(self.emu.remove_scopes(p["id"], _strs(_body(req), "scopes")))

    def transfer(self, req: Request, p: _Params) -> Response:
        team = _str(_body(req), "team")
        return _ok(self.emu.transfer_configuration(p["id"], team, sync=_sync(req)))

    # -- knobs

    def get_faults(self, req: Request, _: _Params) -> Response:
        return _ok(self.emu.faults())

    def put_faults(self, req: Request, _: _Params) -> Response:
        body = _body(req)
        rules = body.get("rules", [])
        seed = body.get("seed", 0)
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise bad_request("`rules` must be an array of objects")
        if not isinstance(seed, int):
            raise bad_request("`seed` must be an integer")
        try:
            self.emu.set_faults(rules, seed)
            if "latencyMs" in body:
                self.emu.set_latency(float(body["latencyMs"]))
        except (TypeError, ValueError) as exc:
            raise bad_request(str(exc)) from None
        return _ok(self.emu.faults())

    def clear_faults(self, req: Request, _: _Params) -> Response:
        self.emu.clear_faults()
        self.emu.set_latency(0)
        return _ok(self.emu.faults())

    def put_latency(self, req: Request, _: _Params) -> Response:
        ms = _body(req).get("ms")
        if not isinstance(ms, (int, float)) or ms < 0:
            raise bad_request("`ms` must be a number >= 0")
        self.emu.set_latency(float(ms))
        return _ok(self.emu.faults())

    def get_limits(self, req: Request, _: _Params) -> Response:
        return _ok({"rules": self.emu.rate_limits()})

    def put_limits(self, req: Request, _: _Params) -> Response:
        rules = _body(req).get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise bad_request("`rules` must be an array of objects")
        try:
            self.emu.set_rate_limits(rules)
        except (TypeError, ValueError) as exc:
            raise bad_request(str(exc)) from None
        return _ok({"rules": self.emu.rate_limits()})

    def clear_limits(self, req: Request, _: _Params) -> Response:
        self.emu.set_rate_limits([])
        return _ok({"rules": []})

    def calls(self, req: Request, _: _Params) -> Response:
        return _ok(self.emu.call_counts())

    def reset_calls(self, req: Request, _: _Params) -> Response:
        self.emu.reset_calls()
        return _ok(self.emu.call_counts())

    # -- webhooks

    def deliveries(self, req: Request, _: _Params) -> Response:
        return _ok({"deliveries": self.emu.deliveries()})

    def drain(self, req: Request, _: _Params) -> Response:
        try:
            timeout = float(req.query.get("timeout", "10"))
        except ValueError:
            raise bad_request("`timeout` must be a number of seconds") from None
        idle = self.emu.drain(min(max(timeout, 0.0), 300.0))
        pending = self.emu.pending_deliveries()
        return _ok({"idle": idle, "pending": pending})

    def redeliver(self, req: Request, p: _Params) -> Response:
        return _ok(self.emu.redeliver(p["id"], sync=_sync(req)), 201)


def register(router: Router, emulator: Emulator) -> None:
    c = Control(emulator)
    routes: list[tuple[str, str, Callable[[Request, _Params], Response]]] = [
        ("GET", "/state", c.state),
        ("POST", "/reset", c.reset),
        ("GET", "/config", c.get_config),
        ("PATCH", "/config", c.patch_config),
        ("POST", "/clock/advance", c.advance_clock),
        ("POST", "/teams", c.create_team),
        ("PATCH", "/teams/{team}", c.patch_team),
        ("PUT", "/teams/{team}/members/{user}", c.put_member),
        ("DELETE", "/teams/{team}/members/{user}", c.delete_member),
        ("GET", "/signed-in-user", c.get_signed_in_user),
        ("PUT", "/signed-in-user", c.put_signed_in_user),
        ("POST", "/users", c.create_user),
        ("POST", "/oidc/rotate-key", c.rotate_key),
        ("POST", "/projects/{project}/custom-environments", c.add_custom_environment),
        ("POST", "/projects", c.create_project),
        ("DELETE", "/projects/{project}", c.remove_project),
        ("POST", "/projects/{project}/rename", c.rename_project),
        ("POST", "/projects/{project}/env", c.add_env),
        ("POST", "/projects/{project}/deployments", c.deploy),
        ("DELETE", "/env/{id}", c.remove_env),
        ("POST", "/installations", c.install),
        ("POST", "/oauth/code", c.mint_code),
        ("PUT", "/configurations/{id}/projects", c.set_access),
        ("POST", "/configurations/{id}/disable", c.disable),
        ("POST", "/configurations/{id}/enable", c.enable),
        ("DELETE", "/configurations/{id}", c.delete),
        ("POST", "/configurations/{id}/scopes/confirm", c.confirm_scopes),
        ("POST", "/configurations/{id}/scopes/remove", c.remove_scopes),
        ("POST", "/configurations/{id}/transfer", c.transfer),
        ("GET", "/faults", c.get_faults),
        ("PUT", "/faults", c.put_faults),
        ("DELETE", "/faults", c.clear_faults),
        ("PUT", "/latency", c.put_latency),
        ("GET", "/rate-limits", c.get_limits),
        ("PUT", "/rate-limits", c.put_limits),
        ("DELETE", "/rate-limits", c.clear_limits),
        ("GET", "/calls", c.calls),
        ("DELETE", "/calls", c.reset_calls),
        ("GET", "/webhooks/deliveries", c.deliveries),
        ("POST", "/webhooks/drain", c.drain),
        ("POST", "/webhooks/deliveries/{id}/redeliver", c.redeliver),
    ]
    for method, path, handler in routes:
        router.add(method, "/_emulator" + path, handler)
