"""`GET /v2/teams/{teamId}`: the Team object itself, not `{team}` (getTeam excerpt).

- Needs the Team read permission ("Accesses team details for the account. Includes
  listing team members", https://vercel.com/docs/integrations/install-an-integration/manage-integrations-reference),
  modelled as the scope `read:team`; without it 403 `forbidden` "You don't have
  permission to access this resource." (auth.py).
- `teamId` in the path may be the team's id or its slug; a token works on its own
  scope only, so another team, or a personal installation asking for a team, is the
  scope error of auth.py (403 `forbidden` "Not authorized: Trying to access resource
  under scope ...").
- Carries `sensitiveEnvironmentVariablePolicy` ("default" | "on" | "off"), set through
  `PATCH /_emulator/teams/{slug or id}`, and the installer's `membership`.

`GET /v3/teams/{teamId}/members` (getTeamMembers, "List team members",
https://vercel.com/docs/rest-api/teams/list-team-members; Vercel documents `/v2/` of that
path only for POST, "Invite a user", and the emulator answers a GET there the same way): `{members: [{uid, username, email, name, role, confirmed,
createdAt, ...}], pagination: {count, hasNext, next, prev}}` under the same Team read
permission and scope rules. `uid` is the id the code exchange returns as `user_id` and
Sign in with Vercel puts in `sub` (oidc.py). `limit` pages by `createdAt` (`until` goes
on), `search` matches name, username or email, `role` filters. Members are changed with
`PUT|DELETE /_emulator/teams/{team}/members/{user}`.
"""

from __future__ import annotations

from typing import Any

from dev.emulator.auth import Caller, authenticate, require_scope
from dev.emulator.context import Context
from dev.emulator.errors import bad_request, forbidden, not_found
from dev.emulator.models import Account
from dev.emulator.routing import Router
from dev.emulator.wsgi import Request, Response

__all__ = ["register", "render_member", "render_team"]


def render_team(team: Account, installer_id: str) -> dict[str, Any]:
    """getTeam's required fields, the policy, and the fields Vercel's SDK requires."""
    return {
        "id": team.id,
        "slug": team.slug,
        "name": team.name,
        "avatar": None,
        "description": None,
        "createdAt": team.created_at,
        "updatedAt": team.created_at,
        "creatorId": installer_id,
        "stagingPrefix": team.slug,
        "sensitiveEnvironmentVariablePolicy": team.sensitive_env_policy,
        "billing": None,
        "membership": {
            "confirmed": True,
            "created": team.created_at,
            "createdAt": team.created_at,
            "role": "OWNER",
        },
    }


def _readable_team(ctx: Context, req: Request, team_id: str) -> tuple[Caller, Account]:
    """The team a token may read (scope first, then the Team read permission)."""
    caller = authenticate(ctx, req, path_team=team_id)
    team = ctx.store.account(team_id)
    if team is None or team.kind != "team":
        raise not_found("Team not found", teamId=team_id)
    if team.id != caller.account.id:
        raise forbidden(
            f'Not authorized: Trying to access resource under scope "{team.slug}". You '
            "must re-authenticate to this scope or use a token with access to this scope.",
            scope=team.slug,
            teamId=team.id,
        )
    require_scope(caller, "team", write=False)
    return caller, team


def get_team(ctx: Context, req: Request, team_id: str) -> Response:
    with ctx.store.lock:
        caller, team = _readable_team(ctx, req, team_id)
        body = render_team(team, caller.configuration.user_id)
    return Response.json(body)


def _int_param(req: Request, name: str) -> int | None:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"Invalid request: `{name}` should be a number.") from None


def render_member(user: Account, role: str, joined: int) -> dict[str, Any]:
    """The fields getTeamMembers requires of a member, and the optional `name`."""
    return {
        "uid": user.id,
        "username": user.slug,
        "email": user.email or "",
        "name": user.name,
        "role": role,
        "confirmed": True,
        "createdAt": joined,
    }


def get_team_members(ctx: Context, req: Request, team_id: str) -> Response:
    limit = _int_param(req, "limit")
    until = _int_param(req, "until")
    since = _int_param(req, "since")
    if limit is not None and not 1 <= limit <= 100:
        raise bad_request("Invalid request: `limit` should be between 1 and 100.")
    search = (req.query.get("search") or "").lower()
    role = req.query.get("role")
    with ctx.store.lock:
        _, team = _readable_team(ctx, req, team_id)
        # Vercel has no join date here; the emulator dates each member by their account
        # and keeps the list newest first, so `until` pages like the other lists.
        members = [
            render_member(user, r, max(user.created_at, team.created_at) + i)
            for i, (user, r) in enumerate(ctx.store.members_of(team.id))
        ]
    members.sort(key=lambda m: m["createdAt"], reverse=True)
    if search:
        members = [
            m
            for m in members
            if any(search in str(m[k]).lower() for k in ("name", "username", "email"))
        ]
    if role:
        members = [m for m in members if m["role"] == role]
    if until is not None:
        members = [m for m in members if m["createdAt"] < until]
    if since is not None:
        members = [m for m in members if m["createdAt"] > since]
    page = members[:limit] if limit is not None else members
    has_next = len(page) < len(members)
    pagination = {
        "count": len(page),
        "hasNext": has_next,
        "next": page[-1]["createdAt"] if has_next and page else None,
        "prev": page[0]["createdAt"] if page else None,
    }
    return Response.json({"members": page, "pagination": pagination})


def register(router: Router, ctx: Context) -> None:
    router.add("GET", "/v2/teams/{teamId}", lambda req, p: get_team(ctx, req, p["teamId"]))
    for version in ("v2", "v3"):
        router.add(
            "GET",
            f"/{version}/teams/{{teamId}}/members",
            lambda req, p: get_team_members(ctx, req, p["teamId"]),
        )
