"""GET /callback: Vercel's Redirect URL. Completes an install and sends the user back.

On success the browser is redirected straight to Vercel's `next` URL: that is what
Vercel's install popup waits for (it closes and the dashboard flow continues), and a
page with a "continue" button in between adds a click that, if skipped, can leave the
install unfinished on Vercel's side. What was provisioned is shown on the configuration
page. Without a usable `next`, a success page says the install is done.
"""

from urllib.parse import quote

from lib import session
from lib.deadline import Deadline
from lib.http import HTTPError, Request, Response, endpoint
from lib.install import STATE_COOKIE, InstallError, complete_install, parse_callback
from lib.install_pages import error_page, success_page
from lib.kv import KVError
from lib.log import get_logger
from lib.services import Services, get_services
from lib.session import SESSION_COOKIE, SESSION_TTL_S
from lib.settings import SettingsError
from lib.spec import SpecError

# Vercel keeps the popup open while we work; provisioning beyond this is left to the sweep.
_BUDGET_S = 25.0
_PROVISION_BUDGET_S = 12.0

log = get_logger("callback")


def _handle(request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        raise HTTPError(405, "Use GET.", headers={"Allow": "GET"})
    deadline = Deadline(_BUDGET_S)
    try:
        services = get_services()
    except (SettingsError, SpecError) as exc:
        log.error("configuration error", extra={"problem": str(exc)})
        return error_page(InstallError(500, "misconfigured", "Misconfigured."), None)
    try:
        params = parse_callback(request.query, services.settings)
        result, inst, state = complete_install(
            params,
            store=services.store,
            settings=services.settings,
            spec=services.spec,
            nonce=request.cookies.get(STATE_COOKIE),
            deadline=deadline,
        )
    except InstallError as exc:
        return error_page(exc, services.settings)
    except KVError:
        return error_page(
            InstallError(503, "unavailable", "Storage unavailable."), services.settings
        )
    if state is not None and "configurationId" in state:
        # A session only when a token was exchanged just now: Vercel vouched for this user.
        got = inst.configuration_id if inst is not None else None
        return _verified(request, services, got, state["configurationId"])
    if inst is not None:
        report = services.provisioner.reconcile(
            inst.configuration_id, deadline.within(_PROVISION_BUDGET_S), installation=inst
        )
        result.projects = [p.name or p.project_id for p in report.projects if p.complete]
        result.pending = report.pending
    if result.next:
        return Response.redirect(result.next)
    return success_page(result)


def _verified(request: Request, services: Services, got: str | None, wanted: str) -> Response:
    """The configuration page's re-verification came back: open a session if it matches."""
    if got is None:
        err = InstallError(409, "in_progress", "Please open the configuration page again.")
        return error_page(err, services.settings)
    if got != wanted:
        err = InstallError(403, "mismatch", "You signed in to a different installation.")
        return error_page(err, services.settings)
    response = Response.redirect(f"/configure?configurationId={quote(wanted)}")
    response.set_cookie(
        SESSION_COOKIE,
        session.issue(services.store.keyring, wanted),
        max_age=SESSION_TTL_S,
        secure=not request.is_local,
    )
    return response


app = endpoint(_handle, name="callback")
