"""Sign in with Vercel: the emulator as Vercel's OAuth 2.0 / OpenID Connect provider.

What Vercel publishes, and what the emulator serves at its own base URL instead:
- Metadata (https://vercel.com/.well-known/oauth-authorization-server, also named
  `/.well-known/openid-configuration` by
  https://vercel.com/docs/sign-in-with-vercel/authorization-server-api): issuer
  "https://vercel.com", RS256 ID tokens, `code_challenge_methods_supported` ["S256"],
  `token_endpoint_auth_methods_supported` client_secret_basic and client_secret_post.
  Here the issuer is the emulator's `public_url` and every endpoint is on it.
- `GET /oauth/authorize` (Vercel: https://vercel.com/oauth/authorize): `client_id`,
  `redirect_uri`, `response_type=code` and `code_challenge` are required, `scope`,
  `state`, `nonce` optional; scopes the App is not configured for are filtered out and no
  `scope` means all of the App's. A missing or unknown `client_id`, or a `redirect_uri`
  that is not one of the App's Authorization Callback URLs, shows an error page; other
  mistakes redirect back with `error=invalid_request` and Vercel's wording
  ("Parameter 'response_type'. Required", https://vercel.com/docs/sign-in-with-vercel/troubleshooting).
  Otherwise a consent page names who is signed in (`PUT /_emulator/signed-in-user`) and
  the App; "Allow" redirects with `code`, `state` and `iss` (RFC 9207), "Cancel" with
  `error=access_denied`. Vercel skips consent for an App already authorised; the
  emulator always asks, so a test can press either button.
- `POST /login/oauth/token` (Vercel: https://api.vercel.com/login/oauth/token): form
  `grant_type=authorization_code`, `code`, `redirect_uri`, `code_verifier`, the App's
  credentials in the form or as HTTP Basic. The code lives 10 minutes, is single-use and
  bound to the App and redirect_uri (the same checks as the integration's exchange,
  oauth.py); the verifier must hash (S256) to the challenge. The answer carries
  `access_token` (1 hour, https://vercel.com/docs/sign-in-with-vercel/tokens),
  `token_type`, `expires_in`, `scope`, and with `openid` an `id_token`: RS256, signed
  with a key of `/.well-known/jwks`, claims `iss sub aud exp iat nbf jti` plus `nonce`,
  `email` (email scope) and `name preferred_username picture` (profile scope), as in the
  payload example of the tokens page. Errors are RFC 6749 §5.2 bodies; refresh tokens
  and the other grants are not emulated (`unsupported_grant_type`).
- `GET|POST /login/oauth/userinfo` with the access token; `POST /login/oauth/token/revoke`.

`sub` is the Vercel user id here, the same id as the integration code exchange's
`user_id`. Vercel's docs show `sub` only as an example value ("345e869043f1e55f8bdc837c",
24 characters like Vercel's user ids) and do not say in words that it equals that
`user_id`: a product should treat the equality as an assumption to confirm.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode

from dev.emulator.context import Context
from dev.emulator.ids import digest, new_secret
from dev.emulator.layout import esc, page
from dev.emulator.models import Account, SigninCode, SigninToken
from dev.emulator.oauth import code_problem, oauth_error, read_form
from dev.emulator.routing import Router
from dev.emulator.signing import b64url
from dev.emulator.wsgi import Request, Response

__all__ = ["discovery", "register"]

_PKCE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1 (and §4.2 for S256)
_SCOPE_TEXT = {
    "openid": "Confirm who you are (your Vercel user ID)",
    "email": "See your email address",
    "profile": "See your name, username and avatar",
    "offline_access": "Stay signed in while you are away",
}
_BASIC = 'Basic realm="Sign in with Vercel (emulator)"'


def discovery(ctx: Context) -> dict[str, Any]:
    """Vercel's authorization-server metadata, with the emulator's URLs."""
    base = ctx.config.public_url
    return {
        "issuer": base,
        "jwks_uri": f"{base}/.well-known/jwks",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/login/oauth/token",
        "userinfo_endpoint": f"{base}/login/oauth/userinfo",
        "revocation_endpoint": f"{base}/login/oauth/token/revoke",
        "subject_types_supported": ["public"],
        "response_types_supported": ["code"],
        "claims_supported": [
            "sub",
            "aud",
            "exp",
            "iat",
            "iss",
            "jti",
            "nbf",
            "nonce",
            "preferred_username",
            "email",
            "picture",
            "name",
        ],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": list(ctx.config.app_scopes),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
        "grant_types_supported": ["authorization_code"],
        "authorization_response_iss_parameter_supported": True,
    }


def _same(given: str, expected: str) -> bool:
    """Constant-time equality that also takes non-ASCII input (str compare_digest raises)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _append_query(url: str, params: dict[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


@dataclass(frozen=True)
class _Authorize:
    """A checked authorization request."""

    redirect_uri: str
    state: str | None
    nonce: str | None
    code_challenge: str
    scopes: list[str]


class Provider:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # -- metadata

    def metadata(self, req: Request) -> Response:
        return Response.json(discovery(self._ctx))

    def jwks(self, req: Request) -> Response:
        return Response.json(self._ctx.keys.jwks(), headers=[("Cache-Control", "max-age=60")])

    def avatar(self, req: Request, user_id: str) -> Response:
        user = self._ctx.store.find_user(user_id)
        letter = esc((user.name if user else "?")[:1].upper())
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" role="img" '
            f'aria-label="Avatar"><circle cx="32" cy="32" r="32" fill="#444"/>'
            f'<text x="32" y="42" font-size="28" text-anchor="middle" fill="#fff" '
            f'font-family="sans-serif">{letter}</text></svg>'
        )
        return Response(200, svg.encode(), [("Content-Type", "image/svg+xml")])

    # -- the authorization endpoint

    def _page(self, title: str, body: str, status: int = 200) -> Response:
        with self._ctx.store.lock:
            user = self._ctx.store.user.name
        return Response.html(page(title, body, user=user), status)

    def _error_page(self, message: str) -> Response:
        body = (
            "<h1>Sign in with Vercel: this request cannot be completed</h1>"
            f'<p class="error" role="alert">{esc(message)}</p>'
            '<p>Go back to the application and try again. <a href="/">Emulator home</a></p>'
        )
        return self._page("Sign in with Vercel", body, 400)

    def _redirect_error(
        self, redirect_uri: str, state: str | None, error: str, description: str
    ) -> Response:
        params = {"error": error, "error_description": description}
        if state is not None:
            params["state"] = state
        params["iss"] = self._ctx.config.public_url
        return Response.redirect(_append_query(redirect_uri, params), 302)

    def _check(self, params: dict[str, str]) -> _Authorize | Response:
        config = self._ctx.config
        client_id = params.get("client_id", "")
        if not client_id or not _same(client_id, config.app_client_id):
            return self._error_page("The client_id is missing or names no Vercel App.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in config.app_redirect_uris:
            return self._error_page(
                "The redirect_uri is missing or is not one of the App's Authorization "
                "Callback URLs."
            )
        state = params.get("state") if "state" in params else None

        def refuse(description: str) -> Response:
            return self._redirect_error(redirect_uri, state, "invalid_request", description)

        response_type = params.get("response_type")
        if not response_type:
            return refuse("Parameter 'response_type'. Required")
        if response_type != "code":
            return refuse(
                "Parameter 'response_type'. Invalid enum value. "
                f"Expected 'code', received '{response_type}'"
            )
        challenge = params.get("code_challenge")
        if not challenge:
            return refuse("Parameter 'code_challenge'. Required")
        if not _PKCE.match(challenge):
            return refuse("Parameter 'code_challenge'. Must be between 43 and 128 characters")
        method = params.get("code_challenge_method")
        if method != "S256":
            return refuse(
                "Parameter 'code_challenge_method'. Invalid enum value. "
                f"Expected 'S256', received '{method or ''}'"
            )
        requested = params.get("scope")
        if requested is None:
            scopes = list(config.app_scopes)
        else:
            wanted = requested.split()
            scopes = [s for s in config.app_scopes if s in wanted]
            if not scopes:
                return self._redirect_error(
                    redirect_uri, state, "invalid_scope", "No requested scope is allowed"
                )
        nonce = params.get("nonce") or None
        return _Authorize(redirect_uri, state, nonce, challenge, scopes)

    def authorize(self, req: Request) -> Response:
        params = {k: v for k, v in req.query.items()}
        checked = self._check(params)
        if isinstance(checked, Response):
            return checked
        ctx = self._ctx
        with ctx.store.lock:
            user = ctx.store.user
            teams = ", ".join(t.name for t in ctx.store.teams_of(user.id)) or "none"
        hidden = "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
            for k, v in params.items()
            if k
            in (
                "client_id",
                "redirect_uri",
                "response_type",
                "code_challenge",
                "code_challenge_method",
                "scope",
                "state",
                "nonce",
            )
        )
        asks = "".join(f"<li>{esc(_SCOPE_TEXT.get(s, s))}</li>" for s in checked.scopes)
        app = esc(ctx.config.app_name)
        body = (
            f"<h1>Sign in to {app}</h1>"
            f"<p>{app} wants to use your Vercel account to sign you in.</p>"
            "<dl>"
            f"<dt>Signed in as</dt><dd>{esc(user.name)} "
            f'<span class="muted">(@{esc(user.slug)}, {esc(user.email or "")})</span></dd>'
            f"<dt>Your teams</dt><dd>{esc(teams)}</dd>"
            f"<dt>Returns to</dt><dd>{esc(checked.redirect_uri)}</dd>"
            "</dl>"
            f"<h2>{app} will be able to</h2><ul>{asks}</ul>"
            f'<form method="post" action="/oauth/authorize">{hidden}'
            '<div class="actions">'
            '<button type="submit" name="decision" value="allow">Allow</button>'
            '<button type="submit" name="decision" value="cancel" class="secondary">'
            "Cancel</button></div></form>"
        )
        return self._page(f"Sign in to {ctx.config.app_name}", body)

    def decide(self, req: Request) -> Response:
        form = {k: v[0] for k, v in req.form().items()}
        checked = self._check(form)
        if isinstance(checked, Response):
            return checked
        if form.get("decision") != "allow":
            return self._redirect_error(
                checked.redirect_uri, checked.state, "access_denied", "The user denied access"
            )
        ctx = self._ctx
        code = new_secret()
        with ctx.store.lock:
            ctx.store.signin_codes[digest(code)] = SigninCode(
                client_id=ctx.config.app_client_id,
                redirect_uri=checked.redirect_uri,
                expires_at=ctx.clock.now() + ctx.config.signin_code_ttl_s,
                user_id=ctx.store.user_id,
                code_challenge=checked.code_challenge,
                scopes=checked.scopes,
                nonce=checked.nonce,
            )
        params = {"code": code}
        if checked.state is not None:
            params["state"] = checked.state
        params["iss"] = ctx.config.public_url
        return Response.redirect(_append_query(checked.redirect_uri, params), 303)

    # -- the token endpoint

    def _client(self, req: Request, form: dict[str, str]) -> tuple[str, str] | Response:
        """The App's credentials: HTTP Basic or the form, never both (RFC 6749 §2.3)."""
        header = req.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic":
            if "client_secret" in form:
                return oauth_error(
                    400, "invalid_request", "Use one client authentication method, not two"
                )
            try:
                raw = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except ValueError:
                return oauth_error(401, "invalid_client", "Malformed Basic credentials")
            name, sep, secret = raw.partition(":")
            if not sep:
                return oauth_error(401, "invalid_client", "Malformed Basic credentials")
            # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
            client_id, client_secret = unquote_plus(name), unquote_plus(secret)
            if form.get("client_id", client_id) != client_id:
                return oauth_error(400, "invalid_request", "client_id does not match")
            return client_id, client_secret
        return form.get("client_id", ""), form.get("client_secret", "")

    def token(self, req: Request) -> Response:
        form = read_form(req)
        if form is None:
            return oauth_error(
                400, "invalid_request", "Content must be application/x-www-form-urlencoded"
            )
        client = self._client(req, form)
        if isinstance(client, Response):
            return client
        client_id, client_secret = client
        config = self._ctx.config
        if not (
            _same(client_id, config.app_client_id)
            and _same(client_secret, config.app_client_secret)
        ):
            return oauth_error(
                401,
                "invalid_client",
                "Client authentication failed",
                headers=[("WWW-Authenticate", _BASIC)],
            )
        grant_type = form.get("grant_type")
        if not grant_type:
            return oauth_error(400, "invalid_request", "Missing parameter: grant_type")
        if grant_type != "authorization_code":
            return oauth_error(
                400, "unsupported_grant_type", f"Unsupported grant_type: {grant_type}"
            )
        for name in ("code", "redirect_uri", "code_verifier"):
            if not form.get(name):
                return oauth_error(400, "invalid_request", f"Missing parameter: {name}")
        verifier = form["code_verifier"]
        if not _PKCE.match(verifier):
            return oauth_error(400, "invalid_request", "code_verifier must be 43-128 characters")
        return self._redeem(form["code"], client_id, form["redirect_uri"], verifier)

    def _redeem(self, raw_code: str, client_id: str, redirect_uri: str, verifier: str) -> Response:
        ctx = self._ctx
        store = ctx.store
        with store.lock:
            code = store.signin_codes.get(digest(raw_code))
            problem = code_problem(ctx, code, client_id, redirect_uri)
            if problem is not None or code is None:
                return oauth_error(400, "invalid_grant", problem or "")
            computed = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
            if not _same(computed, code.code_challenge):
                return oauth_error(
                    400, "invalid_grant", "Invalid grant: code_verifier does not match"
                )
            user = store.accounts.get(code.user_id)
            if user is None:
                return oauth_error(400, "invalid_grant", "Invalid grant: the user is gone")
            code.used = True
            now = ctx.clock.now()
            access = new_secret()
            store.signin_tokens[digest(access)] = SigninToken(
                user.id, client_id, list(code.scopes), now + ctx.config.signin_token_ttl_s
            )
            body: dict[str, Any] = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": int(ctx.config.signin_token_ttl_s),
                "scope": " ".join(code.scopes),
            }
            if "openid" in code.scopes:
                body["id_token"] = ctx.keys.sign(self._id_claims(user, code, int(now)))
        return Response.json(body, headers=[("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    def _profile(self, user: Account, scopes: list[str]) -> dict[str, Any]:
        claims: dict[str, Any] = {}
        if "profile" in scopes:
            claims["name"] = user.name
            claims["preferred_username"] = user.slug
            claims["picture"] = f"{self._ctx.config.public_url}/www/avatar/{user.id}"
        if "email" in scopes:
            claims["email"] = user.email
        return claims

    def _id_claims(self, user: Account, code: SigninCode, now: int) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self._ctx.config.public_url,
            "sub": user.id,
            "aud": code.client_id,
            "exp": now + int(self._ctx.config.id_token_ttl_s),
            "iat": now,
            "nbf": now,
            "jti": str(uuid.uuid4()),
            **self._profile(user, code.scopes),
        }
        if code.nonce is not None:
            claims["nonce"] = code.nonce
        return claims

    # -- userinfo and revocation

    def userinfo(self, req: Request) -> Response:
        ctx = self._ctx
        token = req.bearer
        with ctx.store.lock:
            record = ctx.store.signin_tokens.get(digest(token)) if token else None
            user = ctx.store.accounts.get(record.user_id) if record else None
            if record is None or user is None or ctx.clock.now() >= record.expires_at:
                return oauth_error(
                    401,
                    "invalid_token",
                    "The access token is missing, expired or revoked",
                    headers=[("WWW-Authenticate", 'Bearer error="invalid_token"')],
                )
            body = {"sub": user.id, **self._profile(user, record.scopes)}
        return Response.json(body, headers=[("Cache-Control", "no-store")])

    def revoke(self, req: Request) -> Response:
        """RFC 7009: 200 whether or not the token existed; only the App's own tokens go."""
        form = read_form(req)
        if form is None or not form.get("token"):
            return oauth_error(400, "invalid_request", "Missing parameter: token")
        client = self._client(req, {k: v for k, v in form.items() if k != "token"})
        if isinstance(client, Response):
            return client
        config = self._ctx.config
        client_id, client_secret = client
        if not (
            _same(client_id, config.app_client_id)
            and _same(client_secret, config.app_client_secret)
        ):
            return oauth_error(
                401,
                "invalid_client",
                "Client authentication failed",
                headers=[("WWW-Authenticate", _BASIC)],
            )
        store = self._ctx.store
        with store.lock:
            key = digest(form["token"])
            record = store.signin_tokens.get(key)
            if record is not None and record.client_id == config.app_client_id:
                del store.signin_tokens[key]
        return Response.empty(200)


def register(pages: Router, api: Router, ctx: Context) -> None:
    """Pages and metadata on the site; the token endpoints with the REST API (so faults,
    latency and call counts apply to them as to Vercel's api.vercel.com)."""
    provider = Provider(ctx)
    pages.add("GET", "/.well-known/oauth-authorization-server", lambda r, _: provider.metadata(r))
    pages.add("GET", "/.well-known/openid-configuration", lambda r, _: provider.metadata(r))
    pages.add("GET", "/.well-known/jwks", lambda r, _: provider.jwks(r))
    pages.add("GET", "/oauth/authorize", lambda r, _: provider.authorize(r))
    pages.add("POST", "/oauth/authorize", lambda r, _: provider.decide(r))
    pages.add("GET", "/www/avatar/{id}", lambda r, p: provider.avatar(r, p["id"]))
    api.add("POST", "/login/oauth/token", lambda r, _: provider.token(r))
    api.add("GET", "/login/oauth/userinfo", lambda r, _: provider.userinfo(r))
    api.add("POST", "/login/oauth/userinfo", lambda r, _: provider.userinfo(r))
    api.add("POST", "/login/oauth/token/revoke", lambda r, _: provider.revoke(r))
