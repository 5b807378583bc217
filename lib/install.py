"""The install flow: starting an external install, and completing any install at /callback.

Vercel sends the installing browser to our Redirect URL with a single-use `code`. The
ways anchors get this wrong are the test list (anchors.md §3): open redirects through
`next`, tokens in pages and logs, "invalid code" shown to a user whose install worked
(a refresh, a double click, or Vercel's re-install of an existing configuration), and
lost team ids. So:

* every parameter is validated before anything else happens;
* `next` is followed only to the dashboard's own origin, or to `https://www.vercel.com`
  (Vercel's dashboard answers on both hosts); a refused `next` is logged as a warning,
  since it leaves Vercel's install popup waiting, and every error carries the safe
  `next` so its page can offer the way back to Vercel;
* a callback with `error` instead of `code` is an install cancelled on Vercel: a page
  with the way back, and nothing written, nothing asked of Vercel;
* each code is claimed in KV before it is exchanged (`p:code:<hash>`: "pending" while
  one request exchanges it, then "done:<digest of the configurationId>" for the code's 30-minute life).
  A second request for the same code never reaches Vercel: it waits for the first one's
  outcome, or finds it recorded, and shows the install as done;
* a `state` is consumed on first sight. One presented wrongly (expired, from another
  browser) stays burned; one consumed by a request that then failed for another reason
  (Vercel down, a forged configuration id) is put back, so reloading works;
* the token must belong to the configuration the browser claims, and to its team when the
  link names one (Vercel turned personal accounts into teams, and no source pins whether
  the Redirect URL then carries `teamId`: the token's team is authoritative);
* the installation record, its owner index, its new secrets, its place in the pending
  set (provisioning clears it) and the code's "done" mark are written in one
  transaction, so a failure leaves nothing behind and an interrupted provisioning is
  resumed by the sweep.

KV round trips for a successful first callback: one transaction before the exchange
(claim the code, read the existing record, take the state) and one after it. A repeat
of a finished callback costs the first one alone, and no call to Vercel.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from lib.deadline import Deadline
from lib.kv.client import KVError
from lib.kv.records import Installation
from lib.kv.store import Gone, InstallClaim, Store
from lib.log import get_logger, register_secret
from lib.provisioning.spec import Spec
from lib.settings import Settings
from lib.vercel.client import VercelClient
from lib.vercel.errors import (
    DeadlineExceeded,
    InvalidClient,
    InvalidCode,
    OAuthError,
    RateLimited,
    VercelError,
    VercelUnavailable,
)
from lib.vercel.models import CONFIGURATION_ID, IntegrationConfiguration, OAuthToken
from lib.vercel.oauth import exchange_code
from lib.vercel.transport import call_timeout

__all__ = [
    "STATE_COOKIE",
    "STATE_TTL_S",
    "CallbackOutcome",
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
# A code "is valid for 30 minutes" (vercel-api.md §1.3): its outcome is remembered as long.
_WAIT_FOR_PEER_S = 8.0
_POLL_S = 0.1

_PATTERNS = {
    "code": re.compile(r"[A-Za-z0-9._~-]{1,512}"),
    "configurationId": CONFIGURATION_ID,
    "teamId": re.compile(r"team_[A-Za-z0-9]{1,64}"),
    "source": re.compile(r"[A-Za-z0-9_-]{1,64}"),
    "state": re.compile(r"[A-Za-z0-9_-]{16,128}"),
}
_NONCE = re.compile(r"[A-Za-z0-9_-]{32,64}")
# The claim key of a code whose link named no configuration (never a real id: Vercel's
# ids are `icfg_` and alphanumerics only).
_UNNAMED = "icfg_-unnamed"
# Vercel's dashboard also answers on www (https://www.vercel.com): a `next` there is
# Vercel's own, whatever the dashboard URL setting says.
_VERCEL_WWW = "https://www.vercel.com"
# OAuth's `error` codes (RFC 6749 §4.1.2.1): letters, digits, '_', '-', '.'.
_OAUTH_ERROR = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DEFAULT_PORTS = {"https": 443, "http": 80}
# Printable ASCII that has no business in a URL (RFC 3986): "\\" reads as "/" in
# browsers; the rest would only ever be markup.
_UNSAFE = frozenset('\\"<>`{}|^')


class InstallError(Exception):
    """A callback that cannot complete. `status` and `kind` choose the page shown; `next`
    is the link's checked `next` (None when it had none or it was refused), so the page
    can send the person back to Vercel and let Vercel's install popup close."""

    def __init__(self, status: int, kind: str, message: str, *, next: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.next = next


@dataclass(frozen=True)
class CallbackParams:
    code: str
    # None only when the link carried no `configurationId` but a state (ours, checked
    # before the exchange): the token's `installation_id` names the installation then.
    configuration_id: str | None
    team_id: str | None
    next: str | None  # already checked: None unless it points at the dashboard
    source: str | None
    state: str | None


@dataclass(frozen=True)
class InstallResult:
    """What the person sees at the end of a callback."""

    configuration_id: str
    next: str | None
    already_installed: bool = False
    projects: list[str] = field(default_factory=list)
    pending: bool = False


@dataclass(frozen=True)
class CallbackOutcome:
    """What `complete_install` did: the result to show; the installation it stored and
    the install state it consumed (both None when an earlier request with the same code
    completed the install: nothing was exchanged or written then)."""

    result: InstallResult
    installation: Installation | None = None
    state: dict[str, Any] | None = None

    @property
    def reverified(self) -> str | None:
        """The configuration a configuration page asked Vercel to vouch for, when a token
        was exchanged just now (only then does a state come back)."""
        if self.installation is None or self.state is None:
            return None
        wanted = self.state.get("configurationId")
        return None if wanted is None else str(wanted)


def safe_next(value: str | None, dashboard_url: str) -> str | None:
    """`value` when it is an absolute URL on the dashboard's exact origin, else None.

    Refused: other hosts and look-alikes (`vercel.com.evil.com`), protocol-relative and
    scheme-less forms (`//evil.com`, `https:evil.com`), userinfo (`https://vercel.com@evil.com`;
    `https://evil.com/@vercel.com` is simply another host), backslashes (browsers read
    them as slashes), whitespace, control and non-ASCII characters (browsers strip or
    rewrite them, and a header can't carry them), characters a URL never contains
    unencoded (`"<>` and the like), other ports, and every other scheme
    (`javascript:`, `data:`), including percent-encoded ones, which can't be absolute.
    Vercel sends `next` percent-encoded, so nothing legitimate is lost.
    The one other origin allowed is exactly `https://www.vercel.com` (same checks).
    """
    if not value or len(value) > 2048:
        return None
    if not all(33 <= ord(c) <= 126 and c not in _UNSAFE for c in value):
        return None
    try:
        got, want = urlsplit(value), urlsplit(dashboard_url)
        got_port = got.port or _DEFAULT_PORTS.get(got.scheme)
        want_port = want.port or _DEFAULT_PORTS.get(want.scheme)
    except ValueError:
        return None
    if "@" in got.netloc or not got.hostname or got.scheme not in _DEFAULT_PORTS:
        return None
    if got.scheme == "https" and got.hostname == "www.vercel.com" and got_port == 443:
        return value
    if got.scheme != want.scheme:
        return None
    if got.hostname != (want.hostname or "").lower() or got_port != want_port:
        return None
    return value


def _checked_next(value: str | None, settings: Settings) -> str | None:
    """`safe_next`, logging a refusal: Vercel's popup then waits for a `next` that never
    comes, so an operator needs to know (the host only: the rest may carry anything)."""
    checked = safe_next(value, settings.dashboard_url)
    if value and checked is None:
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        log.warning(
            "next refused: the install popup will not close by itself",
            extra={"next_host": (host or "?")[:100], "next_length": len(value)},
        )
    return checked


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
        if pattern is not None and not pattern.fullmatch(value):
            raise InstallError(400, "bad_request", f"The parameter '{name}' is not valid.")
        return value

    # `next` first, so that every refusal below can offer the way back to Vercel.
    following = _checked_next(one("next"), settings)  # twice: refused, no way back
    try:
        if "code" not in query and any(query.get("error", [])):
            raise _cancelled(query)
        code = one("code", required=True)
        state = one("state")
        # Vercel documents `configurationId` on the Redirect URL; should it ever be
        # missing, a link that carries our state is completed on the token's word
        # (vercel-reality.md A2). Without a state there is nothing to vouch for it.
        cfg = one("configurationId", required=state is None)
        team_id = one("teamId")
        source = one("source")
    except InstallError as exc:
        exc.next = following
        raise
    assert code is not None
    return CallbackParams(
        code=code,
        configuration_id=cfg,
        team_id=team_id,
        next=following,
        source=source,
        state=state,
    )


def _cancelled(query: dict[str, list[str]]) -> InstallError:
    """The person cancelled (or Vercel refused) the install: `error` instead of `code`
    (RFC 6749 §4.1.2.1). Logged by code only: the description is free text."""
    error = (query.get("error") or [""])[0]
    log.info(
        "install cancelled on Vercel",
        extra={"error": error if _OAUTH_ERROR.fullmatch(error) else "?"},
    )
    return InstallError(
        400, "cancelled", "The install was cancelled on Vercel. Nothing was installed."
    )


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
    if nonce is None or not _NONCE.fullmatch(nonce):
        nonce = secrets.token_urlsafe(32)
    state = secrets.token_urlsafe(24)
    payload: dict[str, Any] = {"browser": _browser_hash(nonce), "issued": int(time.time())}
    if configuration_id:
        payload["configurationId"] = configuration_id
    if not store.put_state(state, payload, STATE_TTL_S):  # pragma: no cover - 192-bit collision
        raise InstallError(503, "unavailable", "Could not start the install; please retry.")
    url = f"{settings.dashboard_url}/integrations/{slug}/new?{urlencode({'state': state})}"
    return url, nonce


def complete_install(
    params: CallbackParams,
    *,
    store: Store,
    settings: Settings,
    spec: Spec,
    nonce: str | None,
    deadline: Deadline,
    transport: Any = None,
) -> CallbackOutcome:
    """Exchange the code and store the installation."""
    named = params.configuration_id
    # A link without `configurationId` claims its code under a placeholder: the code
    # and the state are what the claim protects, and the installation is read again
    # once the token names it.
    cfg = named or _UNNAMED
    redirect_uri = settings.require("redirect_uri")
    # Atomic, not merely pipelined: see `Store.claim_install`.
    claim = store.claim_install(params.code, cfg, params.state)

    if not claim.ours:
        # A refresh, a double click, two tabs: another request has this code. Its
        # outcome is ours; this request used nothing (a state it took goes back).
        _undo(store, claim, release_code=False, restore_state=True)
        try:
            _await_peer(store, claim, deadline)
        except InstallError as exc:
            # Without a configuration id, any finished peer "mismatches" the placeholder.
            if not (named is None and exc.kind == "mismatch"):
                exc.next = exc.next or params.next
                raise
        return CallbackOutcome(InstallResult(named or "", params.next, already_installed=True))

    try:
        existing = store.claimed_installation(claim) if named else None
        state_payload = _check_state(claim.state, nonce) if params.state else None
        if claim.gone:
            raise _removed()  # uninstalled: never spend the code on it
        exchange_deadline = deadline.within(settings.vercel_timeout_s)
        token = _exchange(params, settings, redirect_uri, existing, exchange_deadline, transport)
        if token is not None and named is None:
            log.info(
                "callback without configurationId: the token's installation is used",
                extra={"configuration_id": token.installation_id},
            )
            cfg = token.installation_id
            params = replace(params, configuration_id=cfg)
            existing = store.get_installation(cfg)
        if token is None:
            # The code was used before we kept a record of it (or that record expired),
            # and the installation exists: the install worked. Nothing is written.
            _undo(store, claim, release_code=True, restore_state=True)
            return CallbackOutcome(InstallResult(cfg, params.next, already_installed=True))
        access = token.access_token.get_secret_value()
        register_secret(access)
        configuration = _read_configuration(access, token, settings, deadline, transport)
        inst = _installation(params, token, store.seal_token(cfg, access), configuration, existing)
        moved = existing is not None and existing.owner_id != inst.owner_id
        try:
            store.complete_install(
                claim,
                inst,
                secrets=spec.mint_secrets(),
                former_owner=existing.owner_id if existing is not None and moved else None,
                # Pending until the callback's provisioning finishes, so the sweep resumes
                # an interrupted one. (A configuration page's re-verification of a stored
                # installation provisions nothing; a new one is stored pending anyway.)
                pending=state_payload is None or "configurationId" not in state_payload,
            )
        except Gone:
            raise _removed() from None  # the uninstall landed during the exchange
    except InstallError as exc:
        _undo(store, claim, release_code=True, restore_state=exc.kind != "bad_state")
        exc.next = exc.next or params.next
        raise
    except BaseException:
        _undo(store, claim, release_code=True, restore_state=True)
        raise
    log.info(
        "installation stored",
        extra={
            "configuration_id": cfg,
            "team": bool(inst.team_id),
            "refreshed": existing is not None,
        },
    )
    return CallbackOutcome(
        InstallResult(cfg, params.next, already_installed=existing is not None),
        inst,
        state_payload,
    )


def _removed() -> InstallError:
    return InstallError(
        410, "removed", "This installation was removed from Vercel. Install the integration again."
    )


def _exchange(
    params: CallbackParams,
    settings: Settings,
    redirect_uri: str,
    existing: Installation | None,
    deadline: Deadline,
    transport: Any = None,
) -> OAuthToken | None:
    """The token, or None when the code was already used for an installation we have."""
    try:
        token = exchange_code(
            params.code,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            redirect_uri=redirect_uri,
            base_url=settings.vercel_api_url,
            deadline=deadline,
            transport=transport,
        )
    except InvalidCode:
        if existing is not None:
            return None  # a refresh long after a completed install: it worked
        log.info(
            "code refused as used or expired", extra={"configuration_id": params.configuration_id}
        )
        raise InstallError(
            400, "invalid_code", "This install link was already used or has expired."
        ) from None
    except InvalidClient:
        log.error("code exchange refused our client credentials: check VERCEL_CLIENT_ID/SECRET")
        raise InstallError(500, "misconfigured", "The integration is misconfigured.") from None
    except OAuthError as exc:
        log.error("code exchange refused", extra={"error": exc.code, "status": exc.status})
        raise InstallError(400, "invalid_code", "Vercel refused this install link.") from None
    except (VercelUnavailable, DeadlineExceeded, RateLimited) as exc:
        # No answer, or "wait": ours is a 503 too.
        log.warning("code exchange unanswered", extra={"error": exc.code, "status": exc.status})
        raise InstallError(503, "unavailable", "Vercel did not answer in time.") from None
    except VercelError as exc:
        # Vercel answered with an error: a bad gateway, unless it said it is unavailable.
        log.warning("code exchange failed", extra={"error": exc.code, "status": exc.status})
        status = 503 if exc.status == 503 else 502
        raise InstallError(status, "unavailable", "Vercel answered with an error.") from None
    if params.team_id is None and token.team_id is not None:
        # Vercel turned personal accounts into teams; a link without `teamId` is taken
        # on the token's word (vercel-reality.md A2), and noted.
        log.info(
            "callback without teamId: the token's team is used",
            extra={"configuration_id": params.configuration_id},
        )
    team_differs = params.team_id is not None and token.team_id != params.team_id
    named_differs = (
        params.configuration_id is not None and token.installation_id != params.configuration_id
    )
    if named_differs or team_differs:
        # Vercel spent the code on a token for another configuration or team than the
        # link names: a forged or mangled link. The token is dropped unused.
        log.warning(
            "token does not match the callback",
            extra={
                "configuration_id": params.configuration_id,
                "installation_matches": not named_differs,
                "team_matches": not team_differs,
            },
        )
        raise InstallError(400, "mismatch", "This install link does not match its installation.")
    return token


def _check_state(raw: str | None, nonce: str | None) -> dict[str, Any]:
    expired = InstallError(400, "bad_state", "This install link has expired or was already used.")
    if raw is None:
        raise expired
    try:
        payload = json.loads(raw)
        issued = float(payload["issued"])
        browser = str(payload["browser"])
    except (ValueError, TypeError, KeyError):
        raise expired from None
    if not nonce or not _NONCE.fullmatch(nonce):
        raise InstallError(400, "bad_state", "This install was started in another browser.")
    if not secrets.compare_digest(browser, _browser_hash(nonce)):
        raise InstallError(400, "bad_state", "This install was started in another browser.")
    if not issued + STATE_TTL_S > time.time():
        raise expired
    return dict(payload)


def _state_ttl_left(raw: str | None) -> int:
    """Whole seconds a taken state still had to live (0 when unreadable or expired)."""
    try:
        issued = float(json.loads(raw or "")["issued"])
    except (ValueError, TypeError, KeyError):
        return 0
    left = issued + STATE_TTL_S - time.time()
    return int(left) if left >= 1 else 0


def _undo(store: Store, claim: InstallClaim, *, release_code: bool, restore_state: bool) -> None:
    """Give back what the claim took (the code, the state).

    Best effort: it runs on the way out of a failure, often because KV itself failed, and
    must not hide that failure. What it can't undo expires: the code's claim after
    `CODE_CLAIM_TTL_S`, the state after its TTL.
    """
    ttl = _state_ttl_left(claim.state) if restore_state else 0
    with contextlib.suppress(KVError):
        store.undo_install_claim(claim, release_code=release_code, restore_state_for_s=ttl)


def _await_peer(store: Store, claim: InstallClaim, deadline: Deadline) -> None:
    """Return once the request holding this code has stored its installation."""
    waited = deadline.within(_WAIT_FOR_PEER_S)
    progress = claim.peer
    while progress == "pending" and not waited.expired:
        time.sleep(_POLL_S)
        progress = store.install_progress(claim)
    if progress == "done":
        return
    if progress == "mismatch":
        raise InstallError(400, "mismatch", "This install link does not match its installation.")
    if progress == "pending":
        raise InstallError(
            409, "in_progress", "This install is still being completed. Reload in a moment."
        )
    raise InstallError(409, "interrupted", "Another attempt with this install link did not finish.")


def _read_configuration(
    access: str, token: OAuthToken, settings: Settings, deadline: Deadline, transport: Any
) -> IntegrationConfiguration | None:
    """Scopes and project selection; optional (the install works without them)."""
    client = VercelClient(
        access,
        team_id=token.team_id,
        base_url=settings.vercel_api_url,
        deadline=deadline.within(5.0),
        timeout=call_timeout(settings.vercel_timeout_s),
        transport=transport,
    )
    try:
        return client.get_configuration(token.installation_id)
    except VercelError as exc:
        log.warning("could not read configuration", extra={"error": exc.code})
        return None


def _installation(
    params: CallbackParams,
    token: OAuthToken,
    sealed_token: str,
    configuration: IntegrationConfiguration | None,
    existing: Installation | None,
) -> Installation:
    """The record to store: the fresh token and what Vercel says now, else what we knew."""
    now = time.time()
    if configuration is not None:
        scopes = list(configuration.scopes)
        selection: Any = "all" if configuration.all_projects else "selected"
        project_ids = list(configuration.projects or [])
    else:
        scopes = existing.scopes if existing else []
        selection = existing.project_selection if existing else None
        project_ids = existing.project_ids if existing else []
    return Installation(
        configuration_id=token.installation_id,
        owner_id=token.team_id or token.user_id,
        team_id=token.team_id,
        user_id=token.user_id,
        sealed_token=sealed_token,
        scopes=scopes,
        source=params.source or (existing.source if existing else None),
        project_selection=selection,
        project_ids=project_ids,
        status="active",
        created_at=existing.created_at if existing else now,
        updated_at=now,
        # The token says who owns it now; Vercel's answer (when it gave one) is the
        # access as of now. Events created before this moment are older facts.
        owner_at=now,
        scopes_at=now if configuration is not None else (existing.scopes_at if existing else 0.0),
        projects_at=(
            now if configuration is not None else (existing.projects_at if existing else 0.0)
        ),
    )
