"""`POST /v2/oauth/access_token`: the code exchange (vercel-api.md §2, §1.3).

Form-encoded `client_id`, `client_secret`, `code`, `redirect_uri`; 200
`{token_type, access_token, installation_id, user_id, team_id}`. Codes live 30 minutes,
exchange once, and are bound to the client and the Redirect URL they were issued for.
While `previous_client_secret` is set (a rotation) both secrets are accepted.

Vercel documents no error bodies. The only attested text is "Invalid grant: authorization
code is invalid" for a reused code; it is verbatim the oauth2-server library's
`invalid_grant`, so by default the emulator answers in that library's shape
(`{"error": "invalid_grant", "error_description": ...}`, 400). With
`oauth_error_style="vercel"` the same errors come as `{"error": {"code", "message"}}`.
A failed exchange does not consume the code; a used one stays used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

from dev.emulator.context import Context
from dev.emulator.ids import digest, new_secret
from dev.emulator.models import TokenRecord
from dev.emulator.routing import Router
from dev.emulator.wsgi import Request, Response

__all__ = ["IssuedCode", "code_problem", "oauth_error", "read_form", "register"]

_FIELDS = ("client_id", "client_secret", "code", "redirect_uri")
_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


class IssuedCode(Protocol):
    """What every authorization code of the emulator carries (integration or sign-in)."""

    client_id: str
    redirect_uri: str
    expires_at: float
    used: bool


def oauth_error(
    status: int,
    error: str,
    description: str,
    style: Literal["oauth", "vercel"] = "oauth",
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """An RFC 6749 §5.2 error body, or Vercel's `{"error": {"code", "message"}}` shape."""
    if style == "vercel":
        body: dict[str, object] = {"error": {"code": error, "message": description}}
    else:
        body = {"error": error, "error_description": description}
    return Response.json(body, status, [*_NO_STORE, *headers])


def read_form(req: Request) -> dict[str, str] | None:
    """The form fields (first value of each), or None unless form-urlencoded."""
    if req.content_type != "application/x-www-form-urlencoded":
        return None
    return {k: v[0] for k, v in req.form().items()}


def code_problem(
    ctx: Context, code: IssuedCode | None, client_id: str, redirect_uri: str
) -> str | None:
    """Why a code cannot be redeemed (an `invalid_grant` description), or None.

    Unknown, used or another client's codes read the same; a check that fails does not
    consume the code.
    """
    if code is None or code.used or code.client_id != client_id:
        return "Invalid grant: authorization code is invalid"
    if ctx.clock.now() >= code.expires_at:
        return "Invalid grant: authorization code has expired"
    if redirect_uri != code.redirect_uri:
        return "Invalid grant: `redirect_uri` is invalid"
    return None


def _error(ctx: Context, status: int, error: str, description: str) -> Response:
    return oauth_error(status, error, description, ctx.config.oauth_error_style)


def exchange(ctx: Context, req: Request) -> Response:
    form = read_form(req)
    if form is None:
        return _error(
            ctx,
            400,
            "invalid_request",
            "Invalid request: content must be application/x-www-form-urlencoded",
        )
    for name in _FIELDS:
        if not form.get(name):
            return _error(ctx, 400, "invalid_request", f"Missing parameter: `{name}`")
    config = ctx.config
    # During a client-secret rotation the old secret still works until it is revoked.
    secrets_ok = {config.client_secret, config.previous_client_secret} - {None}
    if form["client_id"] != config.client_id or form["client_secret"] not in secrets_ok:
        return _error(ctx, 400, "invalid_client", "Invalid client: client is invalid")
    store = ctx.store
    with store.lock:
        code = store.codes.get(digest(form["code"]))
        problem = code_problem(ctx, code, form["client_id"], form["redirect_uri"])
        if problem is not None or code is None:
            return _error(ctx, 400, "invalid_grant", problem or "")
        cfg = store.configurations.get(code.configuration_id)
        if cfg is None or not cfg.active:
            return _error(ctx, 400, "invalid_grant", "Invalid grant: authorization code is invalid")
        code.used = True
        token = new_secret()
        store.tokens[digest(token)] = TokenRecord(cfg.id, ctx.clock.now_ms())
        body = {
            "token_type": "Bearer",
            "access_token": token,
            "installation_id": cfg.id,
            "user_id": cfg.user_id,
            "team_id": cfg.team_id,
        }
    return Response.json(body, headers=[("Cache-Control", "no-store")])


def register(router: Router, ctx: Context) -> None:
    router.add("POST", "/v2/oauth/access_token", lambda req, _: exchange(ctx, req))
