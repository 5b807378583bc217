"""How the install flow's pages (`/install`, `/callback`) answer the failures every
function shares, mapped once in `endpoint(exception_handlers=...)`: a page a person can
act on, never a stack trace. Without settings the page has no links (it cannot know the
integration's slug)."""

from __future__ import annotations

from collections.abc import Mapping

from lib.install import InstallError
from lib.kv.client import KVError
from lib.log import get_logger
from lib.provisioning.spec import SpecError
from lib.settings import SettingsError
from lib.web.pages.install import error_page
from lib.web.wsgi import ExceptionHandler, Request, Response

__all__ = ["PAGE_ERRORS", "misconfigured_page", "storage_unavailable_page"]


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
