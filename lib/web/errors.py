"""How the JSON and plain-text functions (`/provision`, `/configure`) answer the failures
every function shares, mapped once in `endpoint(exception_handlers=...)`.

The configuration is checked on the first request, not at import (see `lib.app`), so a
misconfiguration is a 500 that says so; KV not answering is a 503 with `Retry-After`, so
a cron run or a person retries. The install flow's pages have their own map in
`lib.web.pages.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping

from lib.kv.client import KVError
from lib.kv.store import Gone
from lib.provisioning.spec import SpecError
from lib.settings import SettingsError
from lib.web.wsgi import ExceptionHandler, HTTPError, Request, Response

__all__ = ["API_ERRORS", "misconfigured", "storage_unavailable", "uninstalled"]


def misconfigured(request: Request, exc: Exception) -> Response:
    raise HTTPError(500, "Integration misconfigured.")


def storage_unavailable(request: Request, exc: Exception) -> Response:
    raise HTTPError(503, "Storage unavailable; retry.", headers={"Retry-After": "10"})


def uninstalled(request: Request, exc: Exception) -> Response:
    raise HTTPError(410, "Installation was uninstalled.")


API_ERRORS: Mapping[type[Exception], ExceptionHandler] = {
    SettingsError: misconfigured,
    SpecError: misconfigured,
    KVError: storage_unavailable,
    Gone: uninstalled,
}
