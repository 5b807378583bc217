"""GET /callback: Vercel's Redirect URL. Completes an install and sends the user back.

On success the browser is redirected straight to Vercel's `next` URL: that is what
Vercel's install popup waits for (it closes and the dashboard flow continues), and a
page with a "continue" button in between adds a click that, if skipped, can leave the
install unfinished on Vercel's side. What was provisioned is shown on the configuration
page. Without a usable `next`, a success page says the install is done.

GET only: the request spends a single-use code, and HEAD (link checkers, prefetchers)
must not. Provisioning runs after the installation is stored (as pending) and never turns
a completed install into an error page: what it could not finish is left to the sweep.

When KV fails after the code was spent, what the exchange returned is kept sealed in an
HttpOnly cookie of this link's own (`kept_cookie`), scoped to the Redirect URL's path;
the page's Retry reloads this very URL, which then completes the install without a new
code. The cookie is dropped once the link's outcome is final.
"""

from dataclasses import replace

from lib.app import Services, get_services
from lib.deadline import Deadline
from lib.install import (
    KEPT_COOKIE,
    KEPT_MAX,
    KEPT_TTL_S,
    STATE_COOKIE,
    CallbackParams,
    InstallError,
    InstallResult,
    Unsaved,
    complete_install,
    holds_kept,
    is_kept_cookie,
    kept_cookie,
    kept_path,
    parse_callback,
)
from lib.kv.client import KVError
from lib.kv.records import Installation, StoreError
from lib.log import get_logger
from lib.provisioning.continuation import continue_later
from lib.settings import SettingsError
from lib.web.pages.errors import PAGE_ERRORS
from lib.web.pages.install import error_page, success_page
from lib.web.wsgi import HTTPError, Request, Response, endpoint

# Vercel keeps the popup open while we work; provisioning beyond this is left to the sweep.
_BUDGET_S = 25.0
_PROVISION_BUDGET_S = 12.0

log = get_logger("callback")


def _handle(request: Request) -> Response:
    if request.method != "GET":
        raise HTTPError(405, "Use GET.", headers={"Allow": "GET"})
    deadline = Deadline(_BUDGET_S)
    services = get_services()
    kept: str | None = None
    params: CallbackParams | None = None
    try:
        params = parse_callback(request.query, services.settings)
        kept = _kept(request, services, params)
        outcome = complete_install(
            params,
            store=services.store,
            settings=services.settings,
            spec=services.spec,
            nonce=request.cookies.get(STATE_COOKIE),
            kept=kept,
            deadline=deadline,
        )
    except Unsaved as exc:
        response = error_page(exc, services.settings)
        if exc.kept and params is not None:
            name = kept_cookie(params)
            others = sorted(n for n in request.cookies if is_kept_cookie(n) and n != name)
            # Bounded. Which is oldest can't be read (the time is sealed): extras go by name.
            for other in others[: max(0, len(others) - (KEPT_MAX - 1))]:
                _drop(request, services, response, other)
            response.set_cookie(
                name,
                exc.kept,
                max_age=KEPT_TTL_S,
                path=kept_path(services.settings),
                secure=not request.is_local,
            )
        return response
    except InstallError as exc:
        log.info("install not completed", extra={"kind": exc.kind, "status": exc.status})
        page = error_page(exc, services.settings)
        # A refusal is final; a transient failure may still be retried with what is kept.
        if exc.status >= 500 or exc.status == 409:
            return page
        return _final(request, services, params, page)
    except KVError as exc:
        log.warning("storage unavailable", extra={"error": type(exc).__name__})
        # With this link's exchange kept in this browser the install is still unsaved:
        # say so again (a reload during the outage), never "still being completed".
        # Another link's kept exchange says nothing of this one.
        held = params is not None and holds_kept(services.store.keyring, params, kept)
        err = (
            Unsaved(None) if held else InstallError(503, "storage", "Our storage is not answering.")
        )
        return error_page(err, services.settings)
    except (SettingsError, StoreError) as exc:
        log.error("install failed on our side", extra={"problem": str(exc)})
        err = InstallError(500, "misconfigured", "The integration is misconfigured.")
        return error_page(err, services.settings)
    inst, result = outcome.installation, outcome.result
    if inst is not None:
        result = _provision(services, inst, deadline, result)
    if result.next:
        return _final(request, services, params, Response.redirect(result.next))
    return _final(request, services, params, success_page(result))


def _kept(request: Request, services: Services, params: CallbackParams) -> str | None:
    """The cookie keeping this link's exchange (or the single one an earlier version set,
    when it is this link's)."""
    own = request.cookies.get(kept_cookie(params))
    if own:
        return own
    legacy = request.cookies.get(KEPT_COOKIE)
    return legacy if holds_kept(services.store.keyring, params, legacy) else None


def _drop(request: Request, services: Services, response: Response, name: str) -> None:
    response.set_cookie(
        name, "", max_age=0, path=kept_path(services.settings), secure=not request.is_local
    )


def _final(
    request: Request, services: Services, params: CallbackParams | None, response: Response
) -> Response:
    """This link's outcome is settled: the exchange kept for it has served its purpose.
    (One kept for another link stays: that link may still need it.)"""
    if params is None:
        return response
    for name in (kept_cookie(params), KEPT_COOKIE):
        if holds_kept(services.store.keyring, params, request.cookies.get(name)):
            _drop(request, services, response, name)
    return response


def _provision(
    services: Services, inst: Installation, deadline: Deadline, result: InstallResult
) -> InstallResult:
    """Provision within the budget. The installation was stored as pending, so whatever
    this can't finish (out of time, Vercel or KV failing) the sweep resumes."""
    try:
        report = services.provisioner.reconcile(
            inst.configuration_id, deadline.within(_PROVISION_BUDGET_S), installation=inst
        )
    except Exception as exc:
        log.warning(
            "provisioning after install failed; left to the sweep",
            extra={"configuration_id": inst.configuration_id, "error": type(exc).__name__},
        )
        continue_later(services, inst.configuration_id)
        return replace(result, pending=True)
    continue_later(services, inst.configuration_id, report)  # the queue finishes the rest
    done = [p.name or p.project_id for p in report.projects if p.complete]
    return replace(result, projects=done, pending=report.pending)


app = endpoint(_handle, name="callback", exception_handlers=PAGE_ERRORS)
