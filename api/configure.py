"""/configure: Vercel's Configuration URL, shown only to a person Vercel signed in.

Knowing who is looking never takes an install flow (an install on Vercel's side is a real
change to someone's account): without a session the page offers "Sign in with Vercel"
(OpenID Connect with PKCE, `lib.web.signin`), Vercel's consent page sends the browser
back here with `code` and `state`, and access is granted when the ID token's `sub` is
the user who installed the configuration or a member of the team that owns it (checked
with the installation's own token; without the Team read permission, the installer
only). The function routes on the method and the query alone: under a rewrite it sees
the original path.

POSTs (resync, rotate) need the session and a CSRF token bound to it; a refused POST gets
a page that says how to continue, never data. Every failure is a branded page.
"""

from __future__ import annotations

from dataclasses import replace

from lib.app import Services, get_services
from lib.deadline import Deadline
from lib.kv.records import Installation
from lib.log import bind, get_logger
from lib.provisioning.admin import drift, resync, rotate_secrets
from lib.provisioning.reports import status
from lib.settings import SigninConfig
from lib.vercel.errors import VercelError
from lib.vercel.models import CONFIGURATION_ID, PermissionMissing
from lib.web.pages.configure import (
    DISABLED,
    Facts,
    confirm_rotation,
    not_configured,
    render,
    signin_page,
)
from lib.web.pages.errors import CONFIGURE_ERRORS, branded
from lib.web.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_TTL_S,
    csrf_token,
    issue,
    username,
    verify,
    verify_csrf,
)
from lib.web.signin import (
    SIGNIN_COOKIE,
    SIGNIN_TTL_S,
    Pending,
    SigninError,
    authorization,
    cookie_path,
    exchange,
    read_pending,
    verify_id_token,
)
from lib.web.urls import configure_url
from lib.web.wsgi import HTTPError, Request, Response, endpoint

_BUDGET_S = 25.0
SESSION_PATH = "/configure"
# The outcome of a POST, shown once by the GET it redirects to (post/redirect/get): a
# cookie rather than `?done=` in the URL, so a reload does not show the banner again.
NOTICE_COOKIE = "vi_notice"

log = get_logger("configure")


def _handle(request: Request) -> Response:
    try:
        return _route(request)
    except HTTPError as exc:
        return _error(exc)


def _error(exc: HTTPError) -> Response:
    titles = {
        400: "This link is incomplete",
        404: "This configuration was not found",
        405: "This page can't do that",
    }
    details = {
        400: "Open the integration's configuration from your Vercel dashboard.",
        404: "It may have been removed from Vercel. Open your integrations on Vercel to "
        "see what is installed.",
    }
    response = branded(
        exc.status,
        titles.get(exc.status, "Something went wrong"),
        exc.message,
        details=[details[exc.status]] if exc.status in details else [],
    )
    response.headers.extend(exc.headers.items())
    return response


def _route(request: Request) -> Response:
    if request.method not in ("GET", "POST"):
        raise HTTPError(405, "Use GET or POST.", headers={"Allow": "GET, POST"})
    services = get_services()
    given = request.query.get("configurationId") or []
    if request.method == "GET" and not given and request.arg("state") is not None:
        return _callback(request, services)
    cfg = given[0] if len(given) == 1 else None  # a repeated one is as damaged as none
    if cfg is None or not CONFIGURATION_ID.fullmatch(cfg):
        raise HTTPError(
            400,
            "It does not say which installation to open: open the integration's "
            "configuration from your Vercel dashboard.",
        )
    bind(configuration_id=cfg)  # on this request's every line (endpoint() unbinds it all)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = verify(services.store.keyring, cookie, cfg)
    if session is None:
        if request.method == "POST":
            return _refused(cfg, "Your session has expired.")
        return _signin(request, services, cfg, expired=bool(cookie))
    if request.method == "POST":
        return _act(request, services, cfg, session)
    return _show(request, services, cfg, session)


# -- signing in -----------------------------------------------------------------------


def _signin(request: Request, services: Services, cfg: str, *, expired: bool) -> Response:
    """No session: offer Sign in with Vercel; `signin=start` leaves for Vercel."""
    config = services.settings.signin
    if config is None:
        return Response.html(not_configured(services.settings.signin_missing), 503)
    if request.arg("signin") != "start":
        return Response.html(signin_page(cfg, expired=expired), 401 if expired else 200)
    url, cookie = authorization(config, services.store.keyring, cfg)
    response = Response.redirect(url, 303)
    response.set_cookie(
        SIGNIN_COOKIE,
        cookie,
        max_age=SIGNIN_TTL_S,
        path=cookie_path(config),
        secure=not request.is_local,
    )
    return response


def _clear_signin(response: Response, request: Request, config: SigninConfig) -> Response:
    response.set_cookie(
        SIGNIN_COOKIE, "", max_age=0, path=cookie_path(config), secure=not request.is_local
    )
    return response


def _callback(request: Request, services: Services) -> Response:
    """Vercel sent the browser back: verify everything, then open a session (or refuse)."""
    config = services.settings.signin
    if config is None:
        return Response.html(not_configured(services.settings.signin_missing), 503)
    try:
        response = _signed_in(request, services, config)
    except SigninError as exc:
        log.warning(
            "audit: configure sign-in refused",
            extra={
                "event": "signin_refused",
                "reason": exc.reason,
                "configuration_id": exc.configuration_id,
                "request_id": request.request_id,
            },
        )
        response = _signin_refused(exc)
    return _clear_signin(response, request, config)


def _signin_refused(exc: SigninError) -> Response:
    if exc.reason == "access_denied":
        return branded(
            401,
            "You cancelled signing in",
            "Nothing was changed. The configuration page needs to know who you are.",
            details=["Open the integration's configuration from Vercel to sign in again."],
        )
    if exc.reason in ("not_installer", "not_member", "installer_only"):
        return branded(403, "You don't have access to this configuration", exc.message)
    if exc.reason == "unknown_configuration":
        return branded(404, "This configuration was not found", exc.message)
    if exc.reason in ("provider_unreachable", "jwks_unavailable", "membership_unavailable"):
        return branded(
            503,
            "Sign-in can't be completed right now",
            exc.message,
            details=["Nothing was stored. Wait a minute, then open the configuration again."],
            headers={"Retry-After": "30"},
        )
    return branded(
        400,
        "This sign-in could not be accepted",
        exc.message,
        details=[
            "Nothing was stored. Open the integration's configuration from Vercel and "
            "sign in again."
        ],
    )


def _signed_in(request: Request, services: Services, config: SigninConfig) -> Response:
    keyring = services.store.keyring
    pending = read_pending(keyring, request.cookies.get(SIGNIN_COOKIE), request.arg("state"))
    cfg = pending.configuration_id
    try:
        return _accept(request, services, config, pending)
    except SigninError as exc:
        exc.configuration_id = cfg
        raise


def _accept(
    request: Request, services: Services, config: SigninConfig, pending: Pending
) -> Response:
    keyring = services.store.keyring
    cfg = pending.configuration_id
    error = request.arg("error")
    if error is not None:
        if error == "access_denied":
            raise SigninError("access_denied", "You cancelled signing in.")
        raise SigninError("provider_error", "Vercel did not complete the sign-in.")
    code = request.arg("code")
    if not code:
        raise SigninError("no_code", "Vercel's answer carried no sign-in code.")
    identity = verify_id_token(config, exchange(config, code, pending.verifier), pending.nonce)
    inst = services.store.get_installation(cfg)
    if inst is None:
        raise SigninError(
            "unknown_configuration", "This installation is not known (it may have been removed)."
        )
    how = "installer"
    if identity.sub != inst.user_id:
        how = _membership(services, inst, identity.sub)
    log.info(
        "audit: configure sign-in",
        extra={
            "event": "signin",
            "configuration_id": cfg,
            "user_id": identity.sub,
            "access": how,
            "request_id": request.request_id,
        },
    )
    response = Response.redirect(configure_url(cfg), 303)
    response.set_cookie(
        SESSION_COOKIE,
        issue(keyring, cfg, username=identity.username),
        max_age=SESSION_TTL_S,
        path=SESSION_PATH,
        secure=not request.is_local,
    )
    return response


def _membership(services: Services, inst: Installation, sub: str) -> str:
    if inst.team_id is None:
        raise SigninError(
            "not_installer",
            "This configuration belongs to another Vercel account. Sign in as the person "
            "who installed it.",
        )
    try:
        client = services.provisioner.client(inst, Deadline(10.0))
        member = client.team_member(inst.team_id, sub)
    except VercelError:
        raise SigninError(
            "membership_unavailable", "Vercel did not say whether you belong to this team."
        ) from None
    if isinstance(member, PermissionMissing):
        raise SigninError(
            "installer_only",
            "Only the person who installed the integration can open this page: it was not "
            "granted Vercel's Team read permission, which is needed to check who belongs to "
            "the team.",
        )
    if member is None:
        raise SigninError(
            "not_member",
            "You are signed in to Vercel, but not as a member of the team that owns this "
            "configuration. Sign in with an account of that team.",
        )
    return "member"


# -- the page and its actions --------------------------------------------------------------


def _refused(cfg: str, why: str) -> Response:
    """403 for a POST without a valid session or form token: no data, a way back."""
    return branded(
        403,
        "Nothing was changed",
        why,
        details=["Reopen the configuration page, then try again."],
        actions=[(configure_url(cfg), "Reopen the configuration page")],
    )


def _facts(services: Services, inst: Installation, cookie: str | None) -> Facts:
    """The team's name, slug and sensitive-variable policy where the API allows."""
    settings = services.settings
    slug = settings.integration_slug
    facts = Facts(
        owner_slug=None if inst.team_id else username(services.store.keyring, cookie),
        dashboard_url=settings.dashboard_url,
        reinstall_url=f"{settings.dashboard_url}/integrations/{slug}" if slug else None,
        last_synced=inst.last_synced_at,
        last_rotated=inst.last_rotated_at,
    )
    if inst.team_id is None or inst.status == "broken":
        return facts
    try:
        team = services.provisioner.client(inst, Deadline(5.0)).get_team(inst.team_id)
    except VercelError:
        return facts  # the page still works; the name is a nicety
    if isinstance(team, PermissionMissing):
        return replace(facts, team_read_missing=True)
    return replace(
        facts,
        owner_name=team.name or team.slug,
        owner_slug=team.slug,
        sensitive_enforced=team.enforces_sensitive_env,
    )


def _show(request: Request, services: Services, cfg: str, session: str) -> Response:
    inst = services.store.get_installation(cfg)
    if inst is None:
        raise HTTPError(404, "This installation is not known (it may have been removed).")
    report = drift(services.provisioner, inst, Deadline(_BUDGET_S))
    if report.error == DISABLED and inst.status == "active":
        # Vercel just said the configuration is disabled: record it, so the status, the
        # background work and the projects all say the same thing.
        services.store.set_status(cfg, "paused", DISABLED)
        inst = services.store.get_installation(cfg) or inst
    elif inst.status == "paused" and not report.error:
        # Vercel answers again (the configuration was enabled): resume now rather than
        # at the next daily sweep, then show the result.
        services.provisioner.reconcile(cfg, Deadline(_BUDGET_S))
        log.info("configure resumed", extra={"configuration_id": cfg})
        inst = services.store.get_installation(cfg) or inst
        report = drift(services.provisioner, inst, Deadline(_BUDGET_S))
    notice = request.cookies.get(NOTICE_COOKIE)
    html = render(
        status(inst, services.store.is_pending(cfg)),
        report,
        csrf_token(services.store.keyring, session),
        notice,
        services.spec.env,
        _facts(services, inst, request.cookies.get(SESSION_COOKIE)),
    )
    response = Response.html(html)
    if notice is not None:
        response.set_cookie(
            NOTICE_COOKIE, "", max_age=0, path=SESSION_PATH, secure=not request.is_local
        )
    return response


def _act(request: Request, services: Services, cfg: str, session: str) -> Response:
    form = request.form()
    if not verify_csrf(services.store.keyring, (form.get(CSRF_FIELD) or [""])[0], session):
        return _refused(cfg, "This form has expired or did not come from this page.")
    action = (form.get("action") or [""])[0]
    if action not in ("resync", "rotate", "rotate-confirm"):
        raise HTTPError(400, "Unknown action.")
    inst = services.store.get_installation(cfg)
    if inst is None:
        raise HTTPError(404, "This installation is not known (it may have been removed).")
    if action == "rotate":
        # The first press only asks: rotation replaces values every deployment reads.
        keys = list(dict.fromkeys(e.key for e in services.spec.env if "{secret." in e.value))
        csrf = csrf_token(services.store.keyring, session)
        return Response.html(confirm_rotation(cfg, csrf, keys))
    deadline = Deadline(_BUDGET_S)
    if action == "resync":
        # A person asking is the moment to retry writes their own variables blocked:
        # they may just have deleted one (the docs tell them to, then resync).
        [report] = resync(services.provisioner, [cfg], deadline, recheck_conflicts=True)
        log.info(
            "audit: resync requested",
            extra={
                "event": "resync",
                "configuration_id": cfg,
                "outcome": report.outcome,
                "pending": report.pending,
                "request_id": request.request_id,
            },
        )
    else:
        report = rotate_secrets(services.provisioner, cfg, None, deadline)
        log.info(
            "audit: secrets rotated",
            extra={
                "event": "rotation",
                "configuration_id": cfg,
                "outcome": report.outcome,
                "pending": report.pending,
                "request_id": request.request_id,
            },
        )
        action = "rotate"
    done = action if report.outcome == "done" and not report.pending else f"{action}-partial"
    response = Response.redirect(configure_url(cfg), 303)
    response.set_cookie(
        NOTICE_COOKIE, done, max_age=120, path=SESSION_PATH, secure=not request.is_local
    )
    return response


app = endpoint(_handle, name="configure", exception_handlers=CONFIGURE_ERRORS)
