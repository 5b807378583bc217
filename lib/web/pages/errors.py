"""Failures as pages a person can act on, never plain text or a stack trace.

`PAGE_ERRORS` is the install flow's map (`/install`, `/callback`), used in
`endpoint(exception_handlers=...)`; without settings its page has no links (it cannot know
the integration's slug). `CONFIGURE_ERRORS` and `branded` serve the configuration page:
every refusal there (404, 400, an expired session, a refused sign-in) is a branded page
with the way back to Vercel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lib.install import InstallError
from lib.kv.client import KVError
from lib.kv.store import Gone
from lib.log import get_logger
from lib.provisioning.spec import SpecError
from lib.settings import SettingsError
from lib.web.pages.install import error_page
from lib.web.pages.layout import Link, page
from lib.web.wsgi import ExceptionHandler, Request, Response

__all__ = [
    "CONFIGURE_ERRORS",
    "PAGE_ERRORS",
    "VERCEL_INTEGRATIONS",
    "branded",
    "misconfigured_page",
    "storage_unavailable_page",
]

# Where a person manages their integrations on Vercel
# (https://vercel.com/docs/integrations/install-an-integration/manage-integrations-reference).
VERCEL_INTEGRATIONS = "https://vercel.com/dashboard/integrations"


def branded(
    status: int,
    title: str,
    message: str,
    *,
    details: Sequence[str] = (),
    actions: Sequence[Link] = (),
    back: str = VERCEL_INTEGRATIONS,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error page: what happened, what to do, and always the way back to Vercel."""
    links = [*actions, (back, "Back to Vercel")]
    body = page(title, message, tone="error", details=details, actions=links)
    return Response.html(body, status, headers)


def misconfigured_page(request: Request, exc: Exception) -> Response:
    get_logger(request.function).error("configuration error", extra={"problem": str(exc)})
    return error_page(InstallError(500, "misconfigured", "Misconfigured."), None)


def storage_unavailable_page(request: Request, exc: Exception) -> Response:
    get_logger(request.function).warning("storage unavailable", extra={"error": type(exc).__name__})
    return error_page(InstallError(503, "unavailable", "Our storage is not answering."), None)


PAGE_ERRORS: Mapping[type[Exception], ExceptionHandler] = {
    SettingsError: misconfigured_page,
    SpecError: misconfigured_page,
    KVError: storage_unavailable_page,
}


def _configure_misconfigured(request: Request, exc: Exception) -> Response:
    get_logger(request.function).error("configuration error", extra={"problem": str(exc)})
    return branded(
        500,
        "The integration is misconfigured",
        "This page cannot be shown until the integration's operator fixes its settings.",
        details=["Nothing was changed. The operator has been told; please try again later."],
    )


def _configure_storage(request: Request, exc: Exception) -> Response:
    get_logger(request.function).warning("storage unavailable", extra={"error": type(exc).__name__})
    return branded(
        503,
        "This page can't be shown right now",
        "Our storage is not answering.",
        details=["Nothing was lost. Wait a minute, then reload this page."],
        headers={"Retry-After": "10"},
    )


def _configure_removed(request: Request, exc: Exception) -> Response:
    # Uninstalled while this request worked on it (the store refused the write).
    return branded(
        410,
        "This integration was removed",
        "It was uninstalled from Vercel while we were working on it.",
        details=["Nothing more will be changed in your projects. You can install it again."],
    )


CONFIGURE_ERRORS: Mapping[type[Exception], ExceptionHandler] = {
    SettingsError: _configure_misconfigured,
    SpecError: _configure_misconfigured,
    KVError: _configure_storage,
    Gone: _configure_removed,
}
