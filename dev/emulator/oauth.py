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

from dev.emulator.context import Context
from dev.emulator.ids import digest, new_secret
from dev.emulator.models import TokenRecord
from dev.emulator.routing import Router
from dev.emulator.wsgi import Request, Response

__all__ = ["register"]

_FIELDS = ("client_id", "client_secret", "code", "redirect_uri")


def _error(ctx: Context, status: int, error: str, description: str) -> Response:
    if ctx.config.oauth_error_style == "vercel":
        return Response.json({"error": {"code": error, "message": description}}, status)
    return Response.json({"error": error, "error_description": description}, status)


def exchange(ctx: Context, req: Request) -> Response:
    if req.content_type != "application/x-www-form-urlencoded":
        return _error(
            ctx,
            400,
            "invalid_request",
            "Invalid request: content must be application/x-www-form-urlencoded",
        )
    form = {k: v[0] for k, v in req.form().items()}
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
        if code is None or code.used or code.client_id != form["client_id"]:
            return _error(ctx, 400, "invalid_grant", "Invalid grant: authorization code is invalid")
        if ctx.clock.now() >= code.expires_at:
            return _error(
                ctx, 400, "invalid_grant", "Invalid grant: authorization code has expired"
            )
        if form["redirect_uri"] != code.redirect_uri:
            return _error(ctx, 400, "invalid_grant", "Invalid grant: `redirect_uri` is invalid")
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
