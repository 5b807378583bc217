"""The install flow: starting an external install, and completing any install at /callback.

Vercel sends the installing browser to our Redirect URL with a single-use `code`. The
ways anchors get this wrong are the test list (anchors.md §3): open redirects through
`next`, tokens in pages and logs, "invalid code" shown to a user whose install worked
(a refresh, a double click, or Vercel's re-install of an existing configuration), and
lost team ids. So:

* every parameter is validated before anything else happens;
* `next` is followed only to the dashboard's own origin;
* the code is exchanged exactly once (a per-code lock in KV), and a second request for
  the same code waits for the first one's result instead of failing;
* the token must belong to the configuration and team the browser claims;
* the installation record, its owner index and its new secrets are written in one
  transaction, so a failure leaves nothing behind;
* KV round trips for a successful callback: one pipeline before the exchange (state,
  lock, existing record) and one transaction after it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from lib.deadline import Deadline
from lib.kv import set_succeeded
from lib.log import get_logger, register_secret
from lib.models import IntegrationConfiguration, OAuthToken
from lib.settings import Settings
from lib.spec import Spec
from lib.store import Installation, Store
from lib.vercel import (
    InvalidClient,
    InvalidCode,
    OAuthError,
    VercelClient,
    VercelError,
    exchange_code,
)

__all__ = [
    "STATE_COOKIE",
    "STATE_TTL_S",
    "CallbackParams",
    "InstallError",
    "InstallResult",
    "complete_install",
    "parse_callback",
    "safe_next",
    "start_install",
]

log = get_logger("install")

STATE_TTL_S = 600
STATE_COOKIE = "vi_install"
_LOCK_TTL_S = 60
_WAIT_FOR_PEER_S = 8.0

_PATTERNS = {
    "code": re.compile(r"^[A-Za-z0-9._~-]{1,512}$"),
    "configurationId": re.compile(r"^icfg_[A-Za-z0-9]{1,64}$"),
    "teamId": re.compile(r"^team_[A-Za-z0-9]{1,64}$"),
    "source": re.compile(r"^[A-Za-z0-9_-]{1,64}$"),
    "state": re.compile(r"^[A-Za-z0-9_-]{16,128}$"),
}
_NONCE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


class InstallError(Exception):
    """A callback that cannot complete. `status` and `kind` choose the page shown."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class CallbackParams:
    code: str
    configuration_id: str
    team_id: str | None
    next: str | None  # already checked: None unless it points at the dashboard
    source: str | None
    state: str | None


@dataclass
class InstallResult:
    configuration_id: str
    next: str | None
    already_installed: bool = False
    projects: list[str] = field(default_factory=list)
    pending: bool = False


def safe_next(value: str | None, dashboard_url: str) -> str | None:
    """`value` when it is an absolute URL on the dashboard's exact origin, else None.

    Refused: other hosts and look-alikes (`vercel.com.evil.com`), protocol-relative and
    scheme-less forms (`//evil.com`), userinfo (`https://vercel.com@evil.com`,
    `https://evil.com/@vercel.com` is simply another host), backslashes (browsers read
    them as slashes), control characters and whitespace, and every other scheme
    (`javascript:`, `data:`), including percent-encoded ones, which can't be absolute.
    """
    if not value or len(value) > 2048:
        return None
    if any(c in value for c in "\\\r\n\t ") or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    try:
        got, want = urlsplit(value), urlsplit(dashboard_url)
        got_port, want_port = got.port, want.port
    except ValueError:
        return None
    if got.scheme != want.scheme or got.scheme not in ("https", "http"):
        return None
    if got.username is not None or got.password is not None or "@" in got.netloc:
        return None
    if (got.hostname or "").lower() != (want.hostname or "").lower() or got_port != want_port:
        return None
    return value


def parse_callback(query: dict[str, list[str]], settings: Settings) -> CallbackParams:
    """Validate the Redirect URL's query. Raises `InstallError(400, "bad_request", ...)`."""

    def one(name: str, *, required: bool = False) -> str | None:
        values = query.get(name, [])
        if len(values) > 1:
            raise InstallError(
                400, "bad_request", f"The parameter '{name}' appears more than once."
            )
        value = values[0] if values else None
        if not value:
            if required:
                raise InstallError(400, "bad_request", f"The parameter '{name}' is missing.")
            return None
        pattern = _PATTERNS.get(name)
        if pattern is not None and not pattern.match(value):
            raise InstallError(400, "bad_request", f"The parameter '{name}' is not valid.")
        return value

    code = one("code", required=True)
    cfg = one("configurationId", required=True)
    assert code is not None
    assert cfg is not None
    return CallbackParams(
        code=code,
        configuration_id=cfg,
        team_id=one("teamId"),
        next=safe_next(one("next"), settings.dashboard_url),
        source=one("source"),
        state=one("state"),
    )


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def _browser_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def start_install(
    store: Store, settings: Settings, *, nonce: str | None, configuration_id: str | None = None
) -> tuple[str, str]:
    """Issue a one-time state bound to this browser. Returns (redirect URL, cookie nonce).

    The browser's nonce is reused when it already has a valid one, so two tabs
    installing at once both work.
    """
    slug = settings.require("integration_slug")
    if nonce is None or not _NONCE.match(nonce):
        nonce = new_nonce()
    state = secrets.token_urlsafe(24)
    payload: dict[str, Any] = {"browser": _browser_hash(nonce), "issued": int(time.time())}
    if configuration_id:
        payload["configurationId"] = configuration_id
    if not store.put_state(state, payload, STATE_TTL_S):  # pragma: no cover - 192-bit collision
        raise InstallError(503, "unavailable", "Could not start the install; please retry.")
    url = f"{settings.dashboard_url}/integrations/{slug}/new?{urlencode({'state': state})}"
    return url, nonce


def _lock_key(store: Store, code: str) -> str:
    return store.key("lock", hashlib.sha256(code.encode()).hexdigest()[:32])


def complete_install(
    params: CallbackParams,
    *,
    store: Store,
    settings: Settings,
    spec: Spec,
    nonce: str | None,
    deadline: Deadline,
    transport: Any = None,
) -> tuple[InstallResult, Installation | None, dict[str, Any] | None]:
    """Exchange the code and store the installation. Returns the result, the stored
    installation (None when an earlier request already completed it) and the state payload."""
    cfg = params.configuration_id
    lock = _lock_key(store, params.code)
    commands: list[list[str | int | float]] = [
        ["SET", lock, "1", "NX", "EX", _LOCK_TTL_S],
        ["GET", store.key("inst", cfg)],
    ]
    if params.state:
        commands.append(["GETDEL", store.key("state", params.state)])
    replies = store.kv.pipeline(commands)
    got_lock, existing_raw = set_succeeded(replies[0]), replies[1]
    existing = store.parse_installation(existing_raw, cfg) if existing_raw else None

    state_payload: dict[str, Any] | None = None
    try:
        if params.state:
            state_payload = _check_state(replies[2], nonce)
        if not got_lock:
            # Another request holds this code (double click, two tabs): wait for its outcome.
            inst = _wait_for(store, cfg, deadline)
            if inst is None:
                raise InstallError(
                    409,
                    "in_progress",
                    "This install is still being completed. Refresh in a moment.",
                )
            return InstallResult(cfg, params.next, already_installed=True), None, state_payload
        token = _exchange(params, settings, existing, deadline, transport)
    except BaseException:
        if got_lock:
            store.kv.call("DEL", lock, idempotent=True)
        raise
    if token is None:
        store.kv.call("DEL", lock, idempotent=True)
        return InstallResult(cfg, params.next, already_installed=True), None, state_payload

    access = token.access_token.get_secret_value()
    register_secret(access)
    configuration = _read_configuration(access, token, settings, deadline, transport)
    now = time.time()
    inst = Installation(
        configuration_id=cfg,
        owner_id=token.team_id or token.user_id,
        team_id=token.team_id,
        user_id=token.user_id,
        sealed_token=store.seal_token(cfg, access),
        scopes=list(configuration.scopes)
        if configuration
        else (existing.scopes if existing else []),
        source=params.source or (existing.source if existing else None),
        project_selection=_selection(configuration, existing),
        project_ids=list(configuration.projects or [])
        if configuration
        else (existing.project_ids if existing else []),
        status="active",
        created_at=existing.created_at if existing else now,
        updated_at=now,
    )
    writes = store.installation_commands(inst)
    writes += store.secret_commands(cfg, spec.mint_secrets(), only_new=True)
    if existing is not None and existing.owner_id != inst.owner_id:
        writes.append(["SREM", store.key("owner", existing.owner_id), cfg])
    writes.append(["DEL", lock])
    store.kv.transaction(writes, idempotent=True)
    log.info(
        "installation stored",
        extra={
            "configuration_id": cfg,
            "team": bool(inst.team_id),
            "refreshed": existing is not None,
        },
    )
    return (
        InstallResult(cfg, params.next, already_installed=existing is not None),
        inst,
        state_payload,
    )


def _check_state(raw: str | None, nonce: str | None) -> dict[str, Any]:
    if raw is None:
        raise InstallError(400, "bad_state", "This install link has expired or was already used.")
    payload = json.loads(raw)
    if not isinstance(payload, dict) or not nonce or not _NONCE.match(nonce):
        raise InstallError(400, "bad_state", "This install was started in another browser.")
    if not secrets.compare_digest(str(payload.get("browser", "")), _browser_hash(nonce)):
        raise InstallError(400, "bad_state", "This install was started in another browser.")
    if int(payload.get("issued", 0)) + STATE_TTL_S < time.time():
        raise InstallError(400, "bad_state", "This install link has expired or was already used.")
    return payload


def _exchange(
    params: CallbackParams,
    settings: Settings,
    existing: Installation | None,
    deadline: Deadline,
    transport: Any,
) -> OAuthToken | None:
    """The token, or None when the code was already used for an installation we have."""
    try:
        token = exchange_code(
            params.code,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            redirect_uri=settings.require("redirect_uri"),
            base_url=settings.vercel_api_url,
            deadline=deadline,
            transport=transport,
        )
    except InvalidCode:
        if existing is not None:
            return None  # refresh or double click after a completed install: it worked
        raise InstallError(
            400, "invalid_code", "This install link was already used or has expired."
        ) from None
    except InvalidClient:
        log.error("code exchange refused our client credentials: check VERCEL_CLIENT_ID/SECRET")
        raise InstallError(500, "misconfigured", "The integration is misconfigured.") from None
    except OAuthError as exc:
        log.error("code exchange failed", extra={"code_error": exc.code, "status": exc.status})
        raise InstallError(400, "invalid_code", "Vercel refused this install link.") from None
    except VercelError as exc:
        log.warning("code exchange unavailable", extra={"error": exc.code, "status": exc.status})
        raise InstallError(503, "unavailable", "Vercel did not answer in time.") from None
    if token.installation_id != params.configuration_id:
        raise InstallError(400, "mismatch", "This install link does not match its configuration.")
    if (token.team_id or None) != (params.team_id or None):
        raise InstallError(400, "mismatch", "This install link does not match its team.")
    return token


def _read_configuration(
    access: str, token: OAuthToken, settings: Settings, deadline: Deadline, transport: Any
) -> IntegrationConfiguration | None:
    """Scopes and project selection; optional (the install works without them)."""
    client = VercelClient(
        access,
        team_id=token.team_id,
        base_url=settings.vercel_api_url,
        deadline=deadline.within(5.0),
        transport=transport,
    )
    try:
        return client.get_configuration(token.installation_id)
    except VercelError as exc:
        log.warning("could not read configuration", extra={"error": exc.code})
        return None


def _selection(
    configuration: IntegrationConfiguration | None, existing: Installation | None
) -> Any:
    if configuration is not None:
        return "all" if configuration.all_projects else "selected"
    return existing.project_selection if existing else None


def _wait_for(store: Store, configuration_id: str, deadline: Deadline) -> Installation | None:
    waited = deadline.within(_WAIT_FOR_PEER_S)
    while not waited.expired:
        inst = store.get_installation(configuration_id)
        if inst is not None and inst.updated_at > time.time() - _LOCK_TTL_S:
            return inst
        time.sleep(0.1)
    return None
