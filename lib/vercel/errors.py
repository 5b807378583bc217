"""The failures of the Vercel REST API: every one a `VercelError` subclass carrying
`.status`, `.code` and `.retryable`, so callers branch on types, not on strings.

Vercel's error body is `{"error": {"code", "message"}}`:
https://vercel.com/docs/rest-api/reference/welcome#errors
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class VercelError(Exception):
    """Base of every failure this module raises.

    `status` is the HTTP status (None when no answer arrived), `code` Vercel's error code
    (or one of ours: `network_error`, `deadline_exceeded`, `unexpected_response`), and
    `retryable` says whether the same request may succeed later — exactly the failures the
    client itself retries for requests that are safe to repeat. `details` holds the other
    fields of Vercel's error object; `failed` the per-item failures an error body carried
    next to it (`{"error": ..., "failed": [...]}`, an env create whose every item failed).
    Nothing here ever contains the token.
    """

    default_code = "error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
        retryable: bool | None = None,
        failed: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or self.default_code
        self.retry_after = retry_after
        self.details: dict[str, Any] = dict(details or {})
        self.failed: list[Any] = list(failed or [])
        if retryable is not None:
            self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r})"
        )


class VercelUnavailable(VercelError):
    """No answer: connection refused or reset, timeout, broken response."""

    default_code = "network_error"
    retryable = True


class DeadlineExceeded(VercelError):
    """The caller's deadline ran out (or would have, during the next wait) before an
    answer. `last_error` is the failure that was being retried, if any."""

    default_code = "deadline_exceeded"
    retryable = True

    def __init__(self, message: str, *, last_error: VercelError | None = None) -> None:
        super().__init__(
            message,
            status=last_error.status if last_error else None,
            retry_after=last_error.retry_after if last_error else None,
        )
        self.last_error = last_error


class UnexpectedResponse(VercelError):
    """A success status whose body is not what Vercel documents, or a pagination loop."""

    default_code = "unexpected_response"


class BadRequest(VercelError):
    """400 and any other 4xx without a more specific meaning."""

    default_code = "bad_request"


class Unauthorized(VercelError):
    """The token is invalid or revoked: 401, or 403 with `invalidToken`/`missingToken`."""

    default_code = "unauthorized"


class PaymentRequired(VercelError):
    default_code = "payment_required"


class Forbidden(VercelError):
    default_code = "forbidden"


class MissingScope(Forbidden):
    """The token lacks a permission (integration scope) or team scope for this call.

    Vercel words a missing integration permission as 403 `forbidden` "You don't have
    permission to access this resource." (no scope named: github.com/saleor/cli PR #530);
    a team-scope mismatch as "Not authorized: Trying to access resource under scope ..."
    with a `scope` field. A 403 that names one project (`projectId`), such as a project
    outside a selected-projects installation, stays a plain `Forbidden`: it is that
    project's problem, not the installation's.
    """


class ConfigurationDisabled(Forbidden):
    """403 `integration_configuration_disabled`: every call fails until re-enabled."""

    default_code = "integration_configuration_disabled"


class NotFound(VercelError):
    """404, and 410 Gone."""

    default_code = "not_found"


class Conflict(VercelError):
    """409 other than an env conflict (e.g. the project is being transferred)."""

    default_code = "conflict"


class EnvConflict(VercelError):
    """An env var with this key, target and branch already exists (`ENV_CONFLICT` /
    `ENV_ALREADY_EXISTS` / `EXISTING_KEY_AND_TARGET`, seen on 400, 403 and 409)."""

    default_code = "ENV_CONFLICT"

    @property
    def key(self) -> str | None:
        value = self.details.get("key") or self.details.get("envVarKey")
        return str(value) if value else None

    @property
    def target(self) -> list[str]:
        value = self.details.get("target")
        if isinstance(value, str):
            return [value]
        return [str(t) for t in value] if isinstance(value, list) else []

    @property
    def git_branch(self) -> str | None:
        value = self.details.get("gitBranch")
        return str(value) if value else None

    @property
    def env_var_id(self) -> str | None:
        value = self.details.get("envVarId")
        return str(value) if value else None


class RateLimited(VercelError):
    """429. `retry_after` is how long Vercel asked us to wait, when it said."""

    default_code = "rate_limited"
    retryable = True


class ServerError(VercelError):
    default_code = "server_error"
    retryable = True


class OAuthError(VercelError):
    """The code exchange was refused for a reason that is neither of the two below."""

    default_code = "oauth_error"


class InvalidCode(OAuthError):
    """The code is unknown, expired, already used, or was issued for another redirect URI:
    the user has to start the install again (or it already succeeded on a first try)."""

    default_code = "invalid_grant"


class InvalidClient(OAuthError):
    """Our client id or secret was refused: a deployment misconfiguration."""

    default_code = "invalid_client"
