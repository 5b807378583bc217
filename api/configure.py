"""/configure: Vercel's Configuration URL, shown only to a user Vercel just vouched for.

Without a session for the requested configuration the browser goes through `/install`
with the configuration id in its state; Vercel issues a code for the existing
configuration, `/callback` checks the token belongs to it and sets the session. POSTs
(resync, rotate) need the session and a CSRF token bound to it; a refused POST gets a
page that says how to continue, never data.
"""

from lib.app import Services, get_services
from lib.deadline import Deadline
from lib.provisioning.admin import drift, rotate_secrets
from lib.provisioning.reports import status
from lib.vercel.models import CONFIGURATION_ID
from lib.web.errors import API_ERRORS
from lib.web.pages.configure import NOTICES, render
from lib.web.pages.layout import page
from lib.web.session import CSRF_FIELD, SESSION_COOKIE, csrf_token, verify, verify_csrf
from lib.web.urls import configure_url, reverify_url
from lib.web.wsgi import HTTPError, Request, Response, endpoint

_BUDGET_S = 25.0


def _handle(request: Request) -> Response:
    if request.method not in ("GET", "POST"):
        raise HTTPError(405, "Use GET or POST.", headers={"Allow": "GET, POST"})
    cfg = request.arg("configurationId")
    if cfg is None or not CONFIGURATION_ID.fullmatch(cfg):
        raise HTTPError(400, "The parameter 'configurationId' is missing or not valid.")
    services = get_services()
    session = verify(services.store.keyring, request.cookies.get(SESSION_COOKIE), cfg)
    if session is None:
        if request.method == "POST":
            return _refused(cfg, "Your session has expired.")
        return Response.redirect(reverify_url(cfg))
    if request.method == "POST":
        return _act(request, services, cfg, session)
    return _show(request, services, cfg, session)


def _refused(cfg: str, why: str) -> Response:
    """403 for a POST without a valid session or form token: no data, a way back."""
    html = page(
        "Nothing was changed",
        why,
        tone="error",
        details=["Reopen the configuration page, then try again."],
        actions=[(configure_url(cfg), "Reopen the configuration page")],
    )
    return Response.html(html, 403)


def _show(request: Request, services: Services, cfg: str, session: str) -> Response:
    inst = services.store.get_installation(cfg)
    if inst is None:
        raise HTTPError(404, "This installation is not known (it may have been removed).")
    report = drift(services.provisioner, inst, Deadline(_BUDGET_S))
    html = render(
        status(inst, services.store.is_pending(cfg)),
        report,
        csrf_token(services.store.keyring, session),
        NOTICES.get(request.arg("done") or ""),
        services.spec.env,
    )
    return Response.html(html)


def _act(request: Request, services: Services, cfg: str, session: str) -> Response:
    form = request.form()
    if not verify_csrf(services.store.keyring, (form.get(CSRF_FIELD) or [""])[0], session):
        return _refused(cfg, "This form has expired or did not come from this page.")
    action = (form.get("action") or [""])[0]
    if action not in ("resync", "rotate"):
        raise HTTPError(400, "Unknown action.")
    if services.store.get_installation(cfg) is None:
        raise HTTPError(404, "This installation is not known (it may have been removed).")
    deadline = Deadline(_BUDGET_S)
    if action == "resync":
        # A person asking is the moment to retry writes their own variables blocked:
        # they may just have deleted one (the docs tell them to, then resync).
        report = services.provisioner.reconcile(cfg, deadline, recheck_conflicts=True)
    else:
        report = rotate_secrets(services.provisioner, cfg, None, deadline)
    done = action if report.outcome == "done" and not report.pending else f"{action}-partial"
    return Response.redirect(configure_url(cfg, done=done), 303)


app = endpoint(_handle, name="configure", exception_handlers=API_ERRORS)
