"""How every call to Vercel is sent (shared by `lib.vercel.oauth` and `lib.vercel.client`).

Every call has connect/read/write/pool timeouts, each capped by the caller's `Deadline`.
Failures become a `VercelError` subclass carrying `.status`, `.code` and `.retryable`.

Retries (exponential backoff with full jitter, or the server's `Retry-After` / the 429
body's `limit.reset`) happen only where repeating cannot do harm:

* GET, and PATCH/DELETE of one env var or configuration by id, are idempotent: they are
  retried on transport errors, 5xx and 429.
* Creating env vars (POST) is not idempotent: after a timeout or a 502 the vars may well
  exist, and a blind second POST would fail with ENV_CONFLICT or, with `upsert`, silently
  overwrite. It is retried only when the failure proves Vercel did not act on it: the
  connection was never made (nothing was sent), or the answer was 429 (rate limiting rejects
  a request before processing it). Anything else is raised; the caller's reconcile re-lists
  and continues, which is how partial work is resumed anyway.
* The code exchange is stricter still: a code is single use, so if the request may have
  reached Vercel a retry can only fail with `invalid_grant` and hide the real outcome. It is
  retried only when the connection was never made. A 429 is raised, not waited out: the
  exchange happens while a person watches the install popup.

Waits never run past the deadline: if the next wait would, `DeadlineExceeded` is raised at
once, with the last failure attached.

Secrets stay secret: the token travels only in the Authorization header of each request
(never in the shared HTTP client's default headers, never in a URL), `repr()` of a client
does not show it, and every message derived from a response is scrubbed of the token (and,
for the exchange, of the client secret and code) before it reaches an exception or a log.

Import cost matters (every function imports this at cold start): only httpx, pydantic and
the standard library, and no I/O at import time; the shared HTTP client is created on
first use, once per process.
"""

from __future__ import annotations

import email.utils
import enum
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from lib.deadline import Deadline
from lib.log import get_logger
from lib.vercel.errors import (
    BadRequest,
    ConfigurationDisabled,
    Conflict,
    DeadlineExceeded,
    EnvConflict,
    Forbidden,
    InvalidClient,
    InvalidCode,
    MissingScope,
    NotFound,
    OAuthError,
    PaymentRequired,
    RateLimited,
    ServerError,
    Unauthorized,
    UnexpectedResponse,
    VercelError,
    VercelUnavailable,
)
from lib.vercel.models import ENV_CONFLICT_CODES

log = get_logger("vercel")

DEFAULT_TIMEOUT = httpx.Timeout(connect=3.0, read=15.0, write=10.0, pool=3.0)


def call_timeout(seconds: float) -> httpx.Timeout:
    """Per-call timeouts from one operator setting (VERCEL_TIMEOUT_SECONDS)."""
    return httpx.Timeout(seconds, connect=min(3.0, seconds), pool=min(3.0, seconds))


_USER_AGENT = "vercel-integration-python"


# --------------------------------------------------------------------------- retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long between them; the clocks are injectable for tests.

    `max_attempts` counts every send, the first included. Without a server hint, retry n
    waits `random() * min(max_backoff, backoff * 2**(n-1))` (exponential, full jitter).
    `now` is the wall clock, needed to turn an HTTP-date `Retry-After` or an epoch
    `limit.reset` into a wait. Server hints are used as given (plus up to `backoff` of
    jitter so many instances don't return at the same instant) — the deadline caps them.
    """

    max_attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)
    now: Callable[[], float] = field(default=time.time, repr=False)

    def wait(self, retry: int, hint: float | None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        if hint is not None:
            return hint + self.random() * self.backoff
        return self.random() * min(self.max_backoff, self.backoff * 2.0 ** (retry - 1))


DEFAULT_RETRY = RetryPolicy()


class _Replay(enum.Enum):
    """When a failed request may be sent again (see the module docstring)."""

    IDEMPOTENT = "idempotent"
    IF_UNSENT_OR_REJECTED = "if unsent or rate limited"
    IF_UNSENT = "if unsent"


# Failures raised before a single byte of the request left: nothing can have happened.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Our own bugs or configuration, not Vercel's weather.
_PERMANENT_TRANSPORT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError)


# --------------------------------------------------------------------------- plumbing


class _Redactor:
    """Removes known secrets from anything derived from a response."""

    def __init__(self, *secrets: str) -> None:
        self._secrets = [s for s in secrets if s]

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, "[redacted]")
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


class _SharedClient:
    """One keep-alive `httpx.Client` per process, created on first use.

    httpx.Client is thread-safe. The pid check makes a forked worker build its own pool
    instead of sharing sockets with its parent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._pid = 0
        self._transport: httpx.BaseTransport | None = None

    def get(self) -> httpx.Client:
        client, pid = self._client, os.getpid()
        if client is not None and self._pid == pid:
            return client
        with self._lock:
            if self._client is None or self._pid != pid:
                self._client, self._pid = _new_http_client(self._transport), pid
            return self._client

    def use(self, transport: httpx.BaseTransport | None) -> None:
        """Build the pool over `transport` from now on (None: the network). For
        in-process test stacks (dev/inprocess.py): only the transport differs."""
        with self._lock:
            old, self._client, self._transport = self._client, None, transport
        if old is not None:
            old.close()


def _new_http_client(transport: httpx.BaseTransport | None) -> httpx.Client:
    # No base_url and no Authorization here: one pool serves every installation, and the
    # token is given per request. trust_env=False: no proxy or netrc surprises.
    return httpx.Client(
        transport=transport,
        timeout=DEFAULT_TIMEOUT,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=30),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
    )


_shared = _SharedClient()
use_transport = _shared.use


def _base_url(url: str) -> str:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("base_url must be an absolute http(s) URL")
    return url.rstrip("/")


def _segment(value: str) -> str:
    """A path segment from a caller's id or name, unable to change the path."""
    if value in ("", ".", ".."):
        raise ValueError(f"invalid path segment {value!r}")
    return quote(value, safe="")


def _capped(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    def cap(value: float | None) -> float:
        return remaining if value is None else min(float(value), remaining)

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _retry_after(response: httpx.Response, details: Mapping[str, Any], now: float) -> float | None:
    """How long the server asked us to wait, if it said.

    `Retry-After` (seconds, or an HTTP date) comes first: as a relative delay it is immune
    to clock skew between us and Vercel. Failing that, a 429 body's `limit.resetMs` /
    `limit.reset` (epoch ms / epoch seconds, vercel-api.md §8) against our wall clock.
    """
    header = response.headers.get("retry-after", "").strip()
    if header:
        try:
            seconds = float(header)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(header).timestamp() - now
            except (TypeError, ValueError, IndexError):
                seconds = math.nan
        if math.isfinite(seconds):
            return max(0.0, seconds)
    limit = details.get("limit")
    if isinstance(limit, Mapping):
        reset_ms, reset = _number(limit.get("resetMs")), _number(limit.get("reset"))
        if reset_ms is not None:
            return max(0.0, reset_ms / 1000.0 - now)
        if reset is not None:
            return max(0.0, reset - now)
    return None


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def _error_fields(body: Any) -> tuple[str | None, str, dict[str, Any]]:
    """(code, message, other fields) from every error shape Vercel is known to use:
    `{"error": {"code", "message", ...}}`, the same under `err` (the CLI notes some APIs
    do that), a flat `{"code", "message"}`, and OAuth's `{"error", "error_description"}`."""
    if not isinstance(body, dict):
        return None, "", {}
    inner = body.get("error", body.get("err"))
    if isinstance(inner, str):
        message = body.get("error_description") or body.get("message") or ""
        rest = {k: v for k, v in body.items() if k not in ("error", "error_description")}
        return inner, str(message), rest
    fields = inner if isinstance(inner, dict) else body
    code = fields.get("code")
    rest = {k: v for k, v in fields.items() if k not in ("code", "message")}
    return (str(code) if code is not None else None), str(fields.get("message") or ""), rest


_SCOPE_CODES = frozenset(
    {"missing_scope", "insufficient_scope", "scope_missing", "team_unauthorized"}
)
# Fields by which a 403 names the one project it refuses (a project outside a
# selected-projects installation): that is not an installation-wide missing permission.
_PROJECT_FIELDS = ("projectId", "project", "projectName")


def _missing_permission(code: str | None, message: str, details: Mapping[str, Any]) -> bool:
    """A 403 saying the token lacks a permission or a team scope.

    Vercel's own wording names no scope: `{"code": "forbidden", "message": "You don't
    have permission to access this resource."}` for an integration token without a
    permission (github.com/saleor/cli PR #530), "You don't have permission to create the
    project." with `action`/`resource` for another. Older and descriptive variants say
    "scope" (a team-scope mismatch also carries a `scope` field). A refusal that names a
    project is about that project and is left a plain `Forbidden`.
    """
    if code in _SCOPE_CODES or "scope" in details:
        return True
    text = message.lower()
    if "scope" in text:
        return True
    if any(details.get(name) for name in _PROJECT_FIELDS):
        return False
    return "permission" in text


def _api_error_class(
    status: int, code: str | None, message: str, details: Mapping[str, Any]
) -> type[VercelError]:
    if code in ENV_CONFLICT_CODES:
        return EnvConflict
    if code == "integration_configuration_disabled":
        return ConfigurationDisabled
    if status == 429 or code == "rate_limited":
        return RateLimited
    if status >= 500:
        return ServerError
    if status == 401 or details.get("invalidToken") or details.get("missingToken"):
        return Unauthorized
    if status == 402 or code == "PAYMENT_REQUIRED":
        return PaymentRequired
    if status == 403:
        return MissingScope if _missing_permission(code, message, details) else Forbidden
    if status in (404, 410):
        return NotFound
    if status == 409:
        return Conflict
    return BadRequest


def _oauth_error_class(
    status: int, code: str | None, message: str, details: Mapping[str, Any]
) -> type[VercelError]:
    if status == 429 or status >= 500:
        return _api_error_class(status, code, message, details)
    key, text = (code or "").lower(), message.lower()
    if "client" in key or "secret" in key:
        return InvalidClient
    if "grant" in key or "code" in key:
        return InvalidCode
    if status == 401:
        return InvalidClient
    if "authorization code" in text or "grant" in text:
        return InvalidCode
    if "client" in text:
        return InvalidClient
    return OAuthError


_Classifier = Callable[[int, str | None, str, Mapping[str, Any]], type[VercelError]]


@dataclass(frozen=True)
class _Call:
    """One logical request; `_send` may put it on the wire more than once."""

    method: str
    url: str
    where: str  # "GET /v10/projects" for messages and logs: no query, no secrets
    params: Mapping[str, str]
    headers: Mapping[str, str]
    replay: _Replay
    classify: _Classifier
    redact: _Redactor
    json: Any = None
    data: Mapping[str, str] | None = None


def _failed_items(body: Any) -> list[Any]:
    """The top-level `failed[]` of an error body, next to its `error`: what an env create
    whose every item failed is inferred to answer (Vercel's Terraform provider reads it from
    a non-2xx response, github.com/vercel/terraform-provider-vercel commit ef1e07e)."""
    if not isinstance(body, dict) or "error" not in body:
        return []
    failed = body.get("failed")
    return [item for item in failed if isinstance(item, dict)] if isinstance(failed, list) else []


def _http_error(call: _Call, response: httpx.Response, now: float) -> VercelError:
    body = _json_body(response)
    code, message, details = _error_fields(body)
    code = call.redact.text(code) if code else None
    message = call.redact.text(message)
    details = call.redact.value(details)
    cls = call.classify(response.status_code, code, message, details)
    text = f"Vercel {call.where}: HTTP {response.status_code}"
    text += f" {code}" if code else ""
    text += f": {message}" if message else ""
    return cls(
        text,
        status=response.status_code,
        code=code,
        retry_after=_retry_after(response, details, now),
        details=details,
        failed=call.redact.value(_failed_items(body)),
    )


def _should_retry(call: _Call, error: VercelError, transport_error: Exception | None) -> bool:
    if not error.retryable:
        return False
    if call.replay is _Replay.IDEMPOTENT:
        return True
    if isinstance(transport_error, _UNSENT):
        return True
    return call.replay is _Replay.IF_UNSENT_OR_REJECTED and error.status == 429


def _send(
    http: httpx.Client,
    call: _Call,
    *,
    deadline: Deadline,
    timeout: httpx.Timeout,
    policy: RetryPolicy,
) -> httpx.Response:
    """Send `call` until it succeeds, fails for good, or the deadline says stop."""
    last: VercelError | None = None
    attempt = 0
    while True:
        attempt += 1
        if deadline.expired:
            raise DeadlineExceeded(f"Vercel {call.where}: deadline exceeded", last_error=last)
        transport_error: Exception | None = None
        try:
            response = http.request(
                call.method,
                call.url,
                params=call.params,
                headers=call.headers,
                json=call.json,
                data=call.data,
                timeout=_capped(timeout, deadline.remaining()),
            )
        except httpx.TransportError as exc:
            transport_error = exc
            error: VercelError = VercelUnavailable(
                f"Vercel {call.where}: {type(exc).__name__}: {call.redact.text(str(exc))}",
                retryable=not isinstance(exc, _PERMANENT_TRANSPORT),
            )
        else:
            if response.is_success:
                return response
            error = _http_error(call, response, policy.now())
        if transport_error is not None:
            error.__cause__ = transport_error
        last = error
        if attempt >= policy.max_attempts or not _should_retry(call, error, transport_error):
            raise error
        wait = policy.wait(attempt, error.retry_after)
        if wait >= deadline.remaining():
            raise DeadlineExceeded(
                f"Vercel {call.where}: deadline exceeded (next attempt due in {wait:.1f}s)",
                last_error=error,
            ) from error
        log.info(
            "Vercel %s: %s (status %s); retry %d of %d in %.2fs",
            call.where,
            error.code,
            error.status,
            attempt,
            policy.max_attempts - 1,
            wait,
        )
        policy.sleep(wait)


_M = TypeVar("_M", bound=BaseModel)


def _invalid(where: str, problem: str) -> UnexpectedResponse:
    return UnexpectedResponse(f"Vercel {where}: unexpected response: {problem}")


def _parse(model: type[_M], value: Any, where: str) -> _M:
    """Validate a payload; the error names fields, never values (they may be secrets)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise _invalid(where, f"{model.__name__}: {problems}") from None


def _body(response: httpx.Response, where: str) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise _invalid(where, "body is not JSON") from None
