"""A typed client for the Vercel REST API, as an Integration uses it.

`VercelClient(token, team_id=..., base_url=..., deadline=...)` is bound to one
installation. `teamId` is added in one place (`_request`) to every call of a team
installation, because a forgotten `teamId` is the classic way team installs break while
personal ones work.

How calls are sent, retried and redacted: `lib.vercel.transport`; the code exchange:
`lib.vercel.oauth`; the failures: `lib.vercel.errors`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from lib.deadline import Deadline
from lib.vercel.errors import MissingScope, VercelError
from lib.vercel.models import (
    CustomEnvironment,
    EnvCreateResult,
    EnvList,
    EnvPatch,
    EnvSpec,
    EnvVar,
    IntegrationConfiguration,
    Pagination,
    PermissionMissing,
    Project,
    Team,
    TeamMember,
)
from lib.vercel.transport import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    _api_error_class,
    _base_url,
    _body,
    _Call,
    _invalid,
    _new_http_client,
    _number,
    _parse,
    _Redactor,
    _Replay,
    _segment,
    _send,
    _shared,
)

_PROJECTS_PAGE_SIZE = "100"
_MEMBERS_PAGE_SIZE = "100"  # getTeamMembers' maximum `limit`
# "Accesses team details for the account. Includes listing team members"
# (https://vercel.com/docs/integrations/install-an-integration/manage-integrations-reference).
TEAM_READ = "read:team"


class VercelClient:
    """The REST API as one installation sees it.

    Bound to the installation's token and team (None for a personal account) and to a
    `Deadline` for the unit of work it serves; `with_deadline` gives a copy with another.
    Cheap to create: the connection pool is shared per process. `transport` replaces the
    network for tests (the client then has its own pool).
    """

    def __init__(
        self,
        token: str,
        *,
        team_id: str | None,
        base_url: str,
        deadline: Deadline,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise ValueError("token is required")
        self._token = token
        self._team_id = team_id or None
        self._base_url = _base_url(base_url)
        self._deadline = deadline
        self._timeout = timeout
        self._retry = retry
        self._own_http = _new_http_client(transport) if transport is not None else None
        self._redact = _Redactor(token)

    @property
    def team_id(self) -> str | None:
        return self._team_id

    @property
    def deadline(self) -> Deadline:
        return self._deadline

    def with_deadline(self, deadline: Deadline) -> VercelClient:
        clone = object.__new__(VercelClient)
        clone.__dict__.update(self.__dict__)
        clone._deadline = deadline
        return clone

    def __repr__(self) -> str:
        return f"VercelClient(base_url={self._base_url!r}, team_id={self._team_id!r})"

    # -- projects

    def list_projects(self) -> list[Project]:
        """Every project the installation can see, following `pagination.next` to the end."""
        where = "GET /v10/projects"
        projects: dict[str, Project] = {}
        for page in self._pages("/v10/projects", "from", {"limit": _PROJECTS_PAGE_SIZE}):
            items = page if isinstance(page, list) else _items(page, "projects", where)
            for item in items:
                project = _parse(Project, item, where)
                projects.setdefault(project.id, project)
        return list(projects.values())

    def get_project(self, id_or_name: str) -> Project:
        path = f"/v9/projects/{_segment(id_or_name)}"
        return _parse(Project, self._get(path), f"GET {path}")

    # -- environment variables

    def list_env(self, project: str) -> EnvList:
        """All env vars of a project (values of encrypted vars are ciphertext)."""
        path = f"/v10/projects/{_segment(project)}/env"
        where = f"GET {path}"
        envs: dict[str, EnvVar] = {}
        hidden = 0
        for page in self._pages(path, "until", {}):
            if isinstance(page, dict) and "envs" not in page and "key" in page:
                items: list[Any] = [page]  # the spec's third shape: one env object
            else:
                items = page if isinstance(page, list) else _items(page, "envs", where)
                if isinstance(page, dict):
                    hidden = max(hidden, _int(page.get("hiddenProductionEnvCount")))
            for item in items:
                env = _parse(EnvVar, item, where)
                envs.setdefault(env.id or f"#{len(envs)}", env)
        return EnvList(envs=list(envs.values()), hidden_production_env_count=hidden)

    def create_env(
        self,
        project: str,
        items: EnvSpec | Mapping[str, Any] | Sequence[EnvSpec | Mapping[str, Any]],
        *,
        upsert: bool = False,
    ) -> EnvCreateResult:
        """Create one var (object body) or several in one call (array body).

        A 201 may still list per-var failures in `failed`; a conflict on a single-object
        body arrives as an error status and is raised as `EnvConflict`. When every item of
        an array body fails, Vercel may answer a 4xx whose body carries `failed[]` next to
        its `error` (vercel-reality.md D2): that is returned as a result with nothing
        created (`error_status` set), item by item, rather than raised.
        """
        path = f"/v10/projects/{_segment(project)}/env"
        body: Any
        if isinstance(items, (EnvSpec, Mapping)):
            body = _spec(items).to_wire()
        else:
            body = [_spec(item).to_wire() for item in items]
            if not body:
                return EnvCreateResult()
        try:
            response = self._request(
                "POST",
                path,
                params={"upsert": "true"} if upsert else None,
                json=body,
                replay=_Replay.IF_UNSENT_OR_REJECTED,
            )
        except VercelError as exc:
            result = _all_failed(exc) if isinstance(body, list) else None
            if result is None:
                raise
            return result
        return _parse(EnvCreateResult, _body(response, f"POST {path}"), f"POST {path}")

    def get_env_decrypted(self, project: str, env_id: str) -> EnvVar:
        path = f"/v1/projects/{_segment(project)}/env/{_segment(env_id)}"
        return _parse(EnvVar, self._get(path), f"GET {path}")

    def edit_env(
        self,
        project: str,
        env_id: str,
        patch: EnvPatch | Mapping[str, Any],
        *,
        current: EnvVar | None = None,
    ) -> EnvVar | None:
        """PATCH by id. Idempotent (the same fields set to the same values), so retried.
        Vercel documents the answer as nullable, hence the Optional.

        `current` is the var as listed: when it (or the patch) is `sensitive`, `key` is
        never sent, since Vercel refuses it there (see `EnvPatch.to_wire`); renaming a
        sensitive var is therefore refused here, before anything is sent."""
        path = f"/v9/projects/{_segment(project)}/env/{_segment(env_id)}"
        change = patch if isinstance(patch, EnvPatch) else EnvPatch.model_validate(patch)
        sensitive = current is not None and current.type == "sensitive"
        if (
            (sensitive or change.type == "sensitive")
            and change.key is not None
            and current is not None
            and change.key != current.key
        ):
            raise ValueError("a sensitive var cannot be renamed: remove it and create it again")
        wire = change.to_wire(sensitive=sensitive)
        body = _body(self._request("PATCH", path, json=wire), f"PATCH {path}")
        return None if body is None else _parse(EnvVar, body, f"PATCH {path}")

    def delete_env(self, project: str, env_id: str) -> None:
        """DELETE by id. Retried; a retry after a lost answer may raise `NotFound`, which
        callers should take as done."""
        self._request("DELETE", f"/v9/projects/{_segment(project)}/env/{_segment(env_id)}")

    # -- custom environments

    def list_custom_environments(self, project: str) -> list[CustomEnvironment]:
        """A project's custom environments (`GET /v9/projects/{idOrName}/custom-environments`,
        https://vercel.com/docs/rest-api/environment/retrieve-custom-environments): one
        call, `{accountLimit, environments}`. Needs the Projects read permission."""
        path = f"/v9/projects/{_segment(project)}/custom-environments"
        where = f"GET {path}"
        body = self._get(path)
        items = body if isinstance(body, list) else _items(body, "environments", where)
        return [_parse(CustomEnvironment, item, where) for item in items]

    # -- teams (the Team read permission)

    def get_team(self, team_id: str) -> Team | PermissionMissing:
        """The team (`GET /v2/teams/{teamId}`): name, slug, sensitive-variable policy.

        Needs the Team read permission, which an installation made before the integration
        asked for it may not have (Vercel asks existing users to confirm added scopes): then
        the answer is `PermissionMissing`, not an exception, so the caller degrades. Any
        other failure is raised as usual."""
        path = f"/v2/teams/{_segment(team_id)}"
        try:
            body = self._get(path)
        except MissingScope as exc:
            return _permission_missing(TEAM_READ, exc)
        return _parse(Team, body, f"GET {path}")

    def team_members(
        self, team_id: str, *, role: str | None = None, search: str | None = None
    ) -> list[TeamMember] | PermissionMissing:
        """Every member of the team (`GET /v3/teams/{teamId}/members`, getTeamMembers),
        following `pagination.next` (passed back as `until`). `role` and `search` are
        Vercel's filters. Needs the Team read permission; without it `PermissionMissing`
        (see `get_team`)."""
        found: list[TeamMember] = []
        outcome = self._members(team_id, role=role, search=search, found=found)
        return outcome if outcome is not None else found

    def team_member(self, team_id: str, uid: str) -> TeamMember | PermissionMissing | None:
        """The member whose `uid` (the code exchange's `user_id`) is `uid`, None when that
        person does not belong to the team; stops paging once found."""
        found: list[TeamMember] = []
        outcome = self._members(team_id, found=found, stop_at=uid)
        if outcome is not None:
            return outcome
        return next((m for m in found if m.uid == uid), None)

    def _members(
        self,
        team_id: str,
        *,
        found: list[TeamMember],
        role: str | None = None,
        search: str | None = None,
        stop_at: str | None = None,
    ) -> PermissionMissing | None:
        path = f"/v3/teams/{_segment(team_id)}/members"
        where = f"GET {path}"
        params = {"limit": _MEMBERS_PAGE_SIZE}
        if role:
            params["role"] = role
        if search:
            params["search"] = search
        seen: set[str] = set()
        try:
            for page in self._pages(path, "until", params):
                for item in _items(page, "members", where):
                    member = _parse(TeamMember, item, where)
                    if member.uid not in seen:
                        seen.add(member.uid)
                        found.append(member)
                    if stop_at is not None and member.uid == stop_at:
                        return None
        except MissingScope as exc:
            return _permission_missing(TEAM_READ, exc)
        return None

    # -- integration configurations

    def get_configuration(self, configuration_id: str) -> IntegrationConfiguration:
        path = f"/v1/integrations/configuration/{_segment(configuration_id)}"
        return _parse(IntegrationConfiguration, self._get(path), f"GET {path}")

    def list_configurations(self, *, view: str = "account") -> list[IntegrationConfiguration]:
        """`view` is required by Vercel: `account` or `project` (the latter hides
        configurations made for the authorization flow)."""
        path = "/v1/integrations/configurations"
        body = self._get(path, params={"view": view})
        items = body if isinstance(body, list) else _items(body, "configurations", f"GET {path}")
        return [_parse(IntegrationConfiguration, item, f"GET {path}") for item in items]

    def delete_configuration(self, configuration_id: str) -> None:
        """Uninstall from our side (204). Retried; `NotFound` on a retry means done."""
        self._request("DELETE", f"/v1/integrations/configuration/{_segment(configuration_id)}")

    # -- plumbing

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        replay: _Replay = _Replay.IDEMPOTENT,
    ) -> httpx.Response:
        """The one place a request is built: teamId and the token are added here."""
        query = dict(params or {})
        if self._team_id is not None:
            query["teamId"] = self._team_id
        call = _Call(
            method=method,
            url=self._base_url + path,
            where=f"{method} {path}",
            params=query,
            headers={"Authorization": f"Bearer {self._token}"},
            replay=replay,
            classify=_api_error_class,
            redact=self._redact,
            json=json,
        )
        http = self._own_http or _shared.get()
        return _send(http, call, deadline=self._deadline, timeout=self._timeout, policy=self._retry)

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return _body(self._request("GET", path, params=params), f"GET {path}")

    def _pages(self, path: str, cursor: str, params: Mapping[str, str]) -> Iterator[Any]:
        """Each page's body, following `pagination.next` passed back as `cursor`, until
        it is null. No page cap (the deadline bounds the loop); a cursor seen before means
        the server is looping, which is raised rather than silently truncated."""
        query = dict(params)
        seen: set[str] = set()
        while True:
            page = self._get(path, query)
            yield page
            pagination = page.get("pagination") if isinstance(page, dict) else None
            if not pagination:
                return
            next_cursor = _parse(Pagination, pagination, f"GET {path}").next
            if next_cursor is None or next_cursor == "":
                return
            token = str(next_cursor)
            if token in seen:
                raise _invalid(f"GET {path}", f"pagination repeats cursor {token!r}")
            seen.add(token)
            query[cursor] = token


def _all_failed(exc: VercelError) -> EnvCreateResult | None:
    """The per-item result an error answer of an array create carries, if it does: a 4xx
    other than 429 whose body lists `failed[]` (a 5xx or 429 says nothing about items)."""
    if not exc.failed or exc.status is None or not 400 <= exc.status < 500 or exc.status == 429:
        return None
    try:
        return EnvCreateResult.from_error(exc.status, exc.failed)
    except ValueError:  # a failed[] we cannot read: the error itself is the answer
        return None


def _permission_missing(permission: str, exc: MissingScope) -> PermissionMissing:
    return PermissionMissing(
        permission=permission, status=exc.status, code=exc.code, message=exc.message
    )


def _spec(item: EnvSpec | Mapping[str, Any]) -> EnvSpec:
    return item if isinstance(item, EnvSpec) else EnvSpec.model_validate(item)


def _items(body: Any, key: str, where: str) -> list[Any]:
    if body is None:
        return []
    if not isinstance(body, dict) or not isinstance(body.get(key, []), list):
        raise _invalid(where, f"expected a list under {key!r}")
    items: list[Any] = body.get(key, [])
    return items


def _int(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None else 0
