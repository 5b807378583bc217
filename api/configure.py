"""/configure: Vercel's Configuration URL, shown only to a user Vercel just vouched for.

Without a session for the requested configuration the browser goes through `/install`
with the configuration id in its state; Vercel issues a code for the existing
configuration, `/callback` checks the token belongs to it and sets the session. POSTs
(resync, rotate) need the session and a CSRF token bound to it.
"""

import re
from urllib.parse import quote

from lib.configure_page import render
from lib.deadline import Deadline
from lib.http import HTTPError, Request, Response, endpoint
from lib.kv import KVError
from lib.operations import drift, rotate_secrets, status
from lib.services import Services, get_services
from lib.session import CSRF_FIELD, SESSION_COOKIE, csrf_token, verify, verify_csrf
from lib.settings import SettingsError
from lib.spec import SpecError

_CFG = re.compile(r"^icfg_[A-Za-z0-9]{1,64}$")
_BUDGET_S = 25.0
_NOTICES = {"resync": "Resync finished.", "rotate": "Secrets rotated and pushed to your projects."}


def _handle(request: Request) -> Response:
    if request.method not in ("GET", "POST"):
        raise HTTPError(405, "Use GET or POST.", headers={"Allow": "GET, POST"})
    cfg = request.arg("configurationId")
    if cfg is None or not _CFG.match(cfg):
        raise HTTPError(400, "The parameter 'configurationId' is missing or not valid.")
    try:
        services = get_services()
    except (SettingsError, SpecError):
        raise HTTPError(500, "Integration misconfigured.") from None
    session = verify(services.store.keyring, request.cookies.get(SESSION_COOKIE), cfg)
    if session is None:
        if request.method == "POST":
            raise HTTPError(403, "Your session expired; reopen the configuration page from Vercel.")
        return Response.redirect(f"/install?configurationId={quote(cfg)}")
    try:
        if request.method == "POST":
            return _act(request, services, cfg, session)
        return _show(request, services, cfg, session)
    except KVError:
        raise HTTPError(503, "Storage unavailable; retry.", headers={"Retry-After": "10"}) from None


def _show(request: Request, services: Services, cfg: str, session: str) -> Response:
    inst = services.store.get_installation(cfg)
    if inst is None:
        raise HTTPError(404, "This installation is not known (it may have been removed).")
    pending = cfg in services.store.pending(10_000)
    report = drift(services.provisioner, inst, Deadline(_BUDGET_S))
    notice = _NOTICES.get(request.arg("done") or "")
    html = render(
        status(inst, pending), report, csrf_token(services.store.keyring, session), notice
    )
    return Response.html(html)


def _act(request: Request, services: Services, cfg: str, session: str) -> Response:
    form = request.form()
    if not verify_csrf(services.store.keyring, (form.get(CSRF_FIELD) or [""])[0], session):
        raise HTTPError(403, "This form has expired; reload the page and try again.")
    action = (form.get("action") or [""])[0]
    if services.store.get_installation(cfg) is None:
        raise HTTPError(404, "This installation is not known (it may have been removed).")
    deadline = Deadline(_BUDGET_S)
    if action == "resync":
        services.provisioner.reconcile(cfg, deadline)
    elif action == "rotate":
        rotate_secrets(services.provisioner, cfg, None, deadline)
    else:
        raise HTTPError(400, "Unknown action.")
    return Response.redirect(f"/configure?configurationId={quote(cfg)}&done={action}", 303)


app = endpoint(_handle, name="configure")
