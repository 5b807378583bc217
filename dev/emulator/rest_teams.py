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
"""

from __future__ import annotations

from typing import Any

from dev.emulator.auth import authenticate, require_scope
from dev.emulator.context import Context
from dev.emulator.errors import forbidden, not_found
from dev.emulator.models import Account
from dev.emulator.routing import Router
from dev.emulator.wsgi import Request, Response

__all__ = ["register", "render_team"]


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


def get_team(ctx: Context, req: Request, team_id: str) -> Response:
    with ctx.store.lock:
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
        body = render_team(team, caller.configuration.user_id)
    return Response.json(body)


def register(router: Router, ctx: Context) -> None:
    router.add("GET", "/v2/teams/{teamId}", lambda req, p: get_team(ctx, req, p["teamId"]))
