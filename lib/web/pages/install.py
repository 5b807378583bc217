"""What the person installing sees: one page per outcome of the callback, each saying
what happened and what to do next. Never a token, never a stack trace."""

from __future__ import annotations

from lib.install import InstallError, InstallResult
from lib.settings import Settings
from lib.web.pages.layout import Link, page
from lib.web.urls import configure_url
from lib.web.wsgi import Response

__all__ = ["error_page", "success_page"]

_TITLES = {
    "bad_request": "This install link is incomplete",
    "bad_state": "This install link can't be used",
    "invalid_code": "This install link has expired",
    "mismatch": "This install link doesn't match",
    "misconfigured": "The integration is misconfigured",
    "unavailable": "The install can't be completed right now",
    "in_progress": "Your install is still being completed",
    "interrupted": "Your install was interrupted",
    "cancelled": "The install was cancelled",
    "removed": "This installation was removed",
    "storage": "The install can't be completed right now",
    "unsaved": "Your install is not saved yet",
}

_ADVICE = {
    "bad_request": "Start the install again from Vercel.",
    "bad_state": "Start the install again from this browser; install links work once, "
    "for ten minutes.",
    "invalid_code": "Install links work once, for 30 minutes. Start the install again "
    "from Vercel; if you already finished it, nothing else is needed.",
    "mismatch": "Start the install again from Vercel.",
    "misconfigured": "Nothing was installed. The operator of this integration has been "
    "told; please try again later.",
    "unavailable": "Nothing was lost. Wait a minute, then reload this page or start the "
    "install again from Vercel.",
    "in_progress": "Reload this page in a few seconds.",
    "interrupted": "Reload this page to try again. If that does not work, start the "
    "install again from Vercel.",
    "cancelled": "Nothing was installed and nothing was stored. You can install it again "
    "from Vercel whenever you like.",
    "removed": "It was uninstalled on Vercel, so nothing more was stored. Install the "
    "integration again from Vercel to start over.",
    # Before anything was spent at Vercel (a failure after it is "unsaved").
    "storage": "Nothing was lost. Wait a minute, then press Retry.",
    # Said plainly: the code is spent. What Vercel returned is kept, sealed, in this
    # browser (15 minutes), so Retry finishes the install; past that, Vercel issues a
    # fresh code for the same configuration.
    "unsaved": "This browser keeps what Vercel returned for 15 minutes: wait a minute, "
    "then press Retry to finish the install. If that does not work, start the install "
    "again from Vercel. Your projects were not changed.",
}
# Kinds a reload of the same link can finish: the page offers Retry.
_RETRY = frozenset({"storage", "unsaved"})


def _restart_link(kind: str, settings: Settings | None) -> list[Link]:
    if settings is None:
        return []
    if kind == "bad_state":
        # The install began on our site (it carried a state): begin it there again,
        # which gives this browser a fresh state.
        return [("/install", "Start again")]
    if settings.integration_slug:
        return [
            (
                f"{settings.dashboard_url}/integrations/{settings.integration_slug}/new",
                "Start again on Vercel",
            )
        ]
    return [(f"{settings.dashboard_url}/dashboard/integrations", "Open your Vercel integrations")]


def error_page(error: InstallError, settings: Settings | None) -> Response:
    actions = [] if error.kind == "in_progress" else _restart_link(error.kind, settings)
    if error.kind in _RETRY:
        # An empty href is this very URL (RFC 3986 §5.2): the link is not echoed.
        actions = [("", "Retry"), *actions]
    elif error.next:
        # Vercel's install popup waits for its `next`: going there lets it close.
        actions = [(error.next, "Back to Vercel"), *actions]
    body = page(
        _TITLES.get(error.kind, "The install could not be completed"),
        error.message,
        tone="error",
        details=[_ADVICE.get(error.kind, "Start the install again from Vercel.")],
        actions=actions,
    )
    headers = {"Retry-After": "30"} if error.status in (502, 503) else None
    return Response.html(body, error.status, headers)


def success_page(result: InstallResult) -> Response:
    if result.already_installed and not result.projects:
        message = "The integration is installed. You can close this window."
    else:
        message = "The integration is installed and your projects are being set up."
    details = [f"Provisioned: {name}" for name in result.projects[:50]]
    if result.pending:
        details.append("Some projects are still being set up; this finishes in the background.")
    return Response.html(
        page(
            "Installed",
            message,
            tone="success",
            details=details,
            # A repeat of a link that named no configuration does not know which one.
            actions=(
                [(configure_url(result.configuration_id), "View configuration")]
                if result.configuration_id
                else []
            ),
        )
    )
