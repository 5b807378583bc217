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
* the `state` of an install we started (`/install`) costs nothing to issue: it is signed,
  not stored (`v1.<expiry>.<id>.<browser>.<mac>`, HMAC-SHA256 under a key derived from
  the encryption key; `browser` is a digest of the random nonce in this browser's
  HttpOnly cookie). A forged one is refused before KV is asked. It is marked used in
  the transaction that claims the code (for the rest of its ten minutes); one presented
  wrongly (expired, from another browser) stays used; one used by a request that then
  failed for another reason (Vercel down, a forged configuration id) is given back, so
  reloading works;
* the token must belong to the configuration the browser claims, and to its team when the
  link names one (Vercel turned personal accounts into teams, and no source pins whether
  the Redirect URL then carries `teamId`: the token's team is authoritative);
* the installation record, its owner index, its new secrets, its place in the pending
  set (provisioning clears it) and the code's "done" mark are written in one
  transaction, so a failure leaves nothing behind and an interrupted provisioning is
  resumed by the sweep;
* a completed install is never lost to a KV failure after the code was spent: what the
  exchange returned, and when, is sealed (AES-GCM, bound to the link's configuration id
  and code, 15 minutes) into an HttpOnly cookie of that link's own (`kept_cookie`),
  scoped to the Redirect URL's path, so a retry of the same link stores the installation
  without a new code (`Unsaved`). A retry passes the same checks as an exchange (the
  link's team), and stores nothing over an installation a newer exchange stored meanwhile
  (the person started again from Vercel while this link waited).

KV round trips for a successful first callback: one transaction before the exchange
(claim the code, read the existing record, mark the state used) and one after it. A
repeat of a finished callback costs the first one alone, and no call to Vercel.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from lib.crypto import CryptoError, Keyring
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
    "KEPT_COOKIE",
    "KEPT_MAX",
    "KEPT_TTL_S",
    "STATE_COOKIE",
    "STATE_TTL_S",
    "CallbackOutcome",
    "CallbackParams",
    "InstallError",
    "InstallResult",
    "Unsaved",
    "complete_install",
    "holds_kept",
    "is_kept_cookie",
    "kept_cookie",
    "kept_path",
    "parse_callback",
    "safe_next",
    "start_install",
]

log = get_logger("install")

STATE_TTL_S = 600
STATE_COOKIE = "vi_install"
# What an exchange returned, kept sealed in the browser while KV could not store it: one
# cookie per link (`kept_cookie`), so two unsaved installs in one browser both finish. The
# bare name is an earlier version's single cookie, still read.
KEPT_COOKIE = "vi_kept"
KEPT_TTL_S = 15 * 60
# At most this many kept exchanges per browser (each is ~0.5 KB of every /callback request).
KEPT_MAX = 4
_KEPT_NAME = re.compile(r"vi_kept(?:_[0-9a-f]{8})?")
# A cookie `Path` we set from the Redirect URL: nothing that could end the attribute.
_COOKIE_PATH = re.compile(r"/[A-Za-z0-9._~/-]{0,200}")
# A code "is valid for 30 minutes" (vercel-api.md §1.3): its outcome is remembered as long.
_WAIT_FOR_PEER_S = 8.0
_POLL_S = 0.1

_PATTERNS = {
    "code": re.compile(r"[A-Za-z0-9._~-]{1,512}"),
    "configurationId": CONFIGURATION_ID,
    "teamId": re.compile(r"team_[A-Za-z0-9]{1,64}"),
    "source": re.compile(r"[A-Za-z0-9_-]{1,64}"),
    # Loose on purpose: a state of another form (an earlier version's) is refused as
    # "expired" with the way to start again, not as a broken link.
    "state": re.compile(r"[A-Za-z0-9._-]{16,160}"),
}
# What the parameters are, in the words of a refusal page.
_WORDS = {
    "code": "install code",
    "configurationId": "configuration",
    "teamId": "team",
    "source": "source",
    "state": "install state",
    "next": "return address",
}
_NONCE = re.compile(r"[A-Za-z0-9_-]{32,64}")
_STATE = re.compile(
    r"v1\.(?P<exp>[0-9]{1,12})\.[A-Za-z0-9_-]{16}\.(?P<browser>[A-Za-z0-9_-]{22})\.(?P<mac>[A-Za-z0-9_-]{43})"
)
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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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


class Unsaved(InstallError):
    """The code was spent at Vercel but KV failed before the installation was stored.

    `kept` is what the exchange returned, sealed, for the `KEPT_COOKIE` (None when the
    browser already has it: a retry that failed again). Never logged or shown: it leaves
    only as that cookie."""

    def __init__(self, kept: str | None, *, next: str | None = None) -> None:
        super().__init__(
            503,
            "unsaved",
            "Vercel completed the install, but we could not save it yet.",
            next=next,
        )
        self.kept = kept

    def __repr__(self) -> str:  # the sealed value stays out of every log line
        return f"Unsaved(kept={'…' if self.kept else None})"


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

    configuration_id: str | None  # None: a repeat of a link that named none
    next: str | None
    already_installed: bool = False
    projects: list[str] = field(default_factory=list)
    pending: bool = False


@dataclass(frozen=True)
class CallbackOutcome:
    """What `complete_install` did: the result to show, and the installation it stored
    (None when an earlier request with the same code completed the install: nothing was
    exchanged or written then)."""

    result: InstallResult
    installation: Installation | None = None


@dataclass(frozen=True)
class _State:
    """A signed install state whose MAC verified: when it expires, whose browser it is."""

    expires: int
    browser: str


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
            host = urlsplit(value).hostname or "?"
        except ValueError:
            host = "?"
        log.warning(
            "next refused: the install popup will not close by itself",
            extra={"next_host": host[:100], "next_length": len(value)},
        )
    return checked


def parse_callback(query: dict[str, list[str]], settings: Settings) -> CallbackParams:
    """Validate the Redirect URL's query. Raises `InstallError(400, "bad_request", ...)`."""

    def refuse(name: str, problem: str) -> InstallError:
        # The person reads words; the operator's log names the parameter.
        log.info("callback link refused", extra={"parameter": name, "problem": problem})
        return InstallError(
            400,
            "bad_request",
            f"This install link is incomplete or damaged: its {_WORDS[name]} is {problem}.",
        )

    def one(name: str, *, required: bool = False) -> str | None:
        values = query.get(name, [])
        if len(values) > 1:
            raise refuse(name, "given twice")
        value = values[0] if values else None
        if not value:
            if required:
                raise refuse(name, "missing")
            return None
        pattern = _PATTERNS.get(name)
        if pattern is not None and not pattern.fullmatch(value):
            raise refuse(name, "not valid")
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
    error = query["error"][0]  # present: it is why this was called
    log.info(
        "install cancelled on Vercel",
        extra={"error": error if _OAUTH_ERROR.fullmatch(error) else "?"},
    )
    return InstallError(
        400, "cancelled", "The install was cancelled on Vercel. Nothing was installed."
    )


def _state_key(keyring: Keyring) -> bytes:
    return keyring.derive("install-state")


def _browser(nonce: str) -> str:
    """What a state says of its browser: a digest of the cookie's nonce, not the nonce."""
    return _b64(hashlib.sha256(b"install-browser:" + nonce.encode()).digest()[:16])


def _state_mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def issue_state(keyring: Keyring, nonce: str, *, now: float | None = None) -> str:
    """A state for one external install: `v1.<expiry>.<id>.<browser>.<mac>`. The random id
    keeps two tabs' states (same cookie, same second) apart, so each is used once."""
    expires = int(time.time() if now is None else now) + STATE_TTL_S
    body = f"v1.{expires}.{_b64(secrets.token_bytes(12))}.{_browser(nonce)}"
    return f"{body}.{_state_mac(_state_key(keyring), body)}"


def _signed_state(keyring: Keyring, raw: str) -> _State:
    """The state if we signed it (any age, any browser: those are checked once the code
    is ours, so a reload of a finished link is still answered as done). A forged or
    unreadable one is refused here, before KV or Vercel is asked."""
    match = _STATE.fullmatch(raw)
    body = raw.rpartition(".")[0]
    if match is None or not hmac.compare_digest(
        _state_mac(_state_key(keyring), body).encode(), match["mac"].encode()
    ):
        raise InstallError(400, "bad_state", "This install link has expired or is not valid.")
    return _State(int(match["exp"]), match["browser"])


def _state_life(state: _State | None) -> int:
    """Whole seconds the state has left (0: none, or expired)."""
    if state is None:
        return 0
    return max(0, state.expires - int(time.time()))


def _check_state(state: _State, claim: InstallClaim, nonce: str | None) -> None:
    """This browser began the install, within ten minutes, and the state was not used."""
    if not nonce or not _NONCE.fullmatch(nonce):
        raise InstallError(400, "bad_state", "This install was started in another browser.")
    if not hmac.compare_digest(state.browser.encode(), _browser(nonce).encode()):
        raise InstallError(400, "bad_state", "This install was started in another browser.")
    if not state.expires > time.time() or not claim.state_fresh:
        raise InstallError(400, "bad_state", "This install link has expired or was already used.")


def start_install(keyring: Keyring, settings: Settings, *, nonce: str | None) -> tuple[str, str]:
    """A signed state bound to this browser. Returns (redirect URL, cookie nonce). Writes
    nothing: anonymous traffic costs no KV (issue 11, invariant 7).

    The browser's nonce is reused when it already has a valid one, so two tabs
    installing at once both work.
    """
    slug = settings.require("integration_slug")
    if nonce is None or not _NONCE.fullmatch(nonce):
        nonce = secrets.token_urlsafe(32)
    state = issue_state(keyring, nonce)
    url = f"{settings.dashboard_url}/integrations/{slug}/new?{urlencode({'state': state})}"
    return url, nonce


def kept_cookie(params: CallbackParams) -> str:
    """The name of the cookie that keeps this link's exchange: one per link (by a digest
    of its code), so another link's unsaved install never takes its place."""
    return f"{KEPT_COOKIE}_{hashlib.sha256(b'kept-cookie:' + params.code.encode()).hexdigest()[:8]}"


def is_kept_cookie(name: str) -> bool:
    """Whether a cookie of that name keeps an exchange (any link's, or the older single one)."""
    return _KEPT_NAME.fullmatch(name) is not None


def kept_path(settings: Settings) -> str:
    """The kept cookie's `Path`: the Redirect URL's, so the cookie comes back to the
    callback wherever the operator registered it (`/callback`, `/api/callback`)."""
    if not settings.redirect_uri:
        return "/callback"
    path = urlsplit(settings.redirect_uri).path
    return path if _COOKIE_PATH.fullmatch(path) else "/"


def _kept_aad(params: CallbackParams) -> str:
    """Binds a kept exchange to the link's configuration and code: it opens only on a
    retry of the same callback URL."""
    code = hashlib.sha256(params.code.encode()).hexdigest()[:32]
    return f"kept:{params.configuration_id or _UNNAMED}:{code}"


@dataclass(frozen=True)
class _Kept:
    """An exchange kept for a retry: the token, and when the exchange returned it."""

    token: OAuthToken
    at: float


def _keep(keyring: Keyring, params: CallbackParams, token: OAuthToken, at: float) -> str:
    payload = {
        "exp": int(time.time()) + KEPT_TTL_S,
        "at": at,
        "access_token": token.access_token.get_secret_value(),
        "token_type": token.token_type,
        "installation_id": token.installation_id,
        "user_id": token.user_id,
        "team_id": token.team_id,
    }
    return keyring.seal(json.dumps(payload, separators=(",", ":")), aad=_kept_aad(params))


def _kept(keyring: Keyring, params: CallbackParams, kept: str | None) -> _Kept | None:
    """The exchange kept for this link, when the cookie opens and is still fresh."""
    if not kept:
        return None
    try:
        payload = json.loads(keyring.open_text(kept, aad=_kept_aad(params)))
        if not payload["exp"] > time.time():
            return None
        token = OAuthToken.model_validate(payload)
        # A value kept before the time was sealed in: it was sealed just after the exchange.
        at = float(payload.get("at", payload["exp"] - KEPT_TTL_S))
    except (CryptoError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if params.configuration_id not in (None, token.installation_id):
        return None
    register_secret(token.access_token.get_secret_value())
    return _Kept(token, at)


def holds_kept(keyring: Keyring, params: CallbackParams, kept: str | None) -> bool:
    """Whether `kept` is the exchange kept for this very link, and the link matches it
    (then, once the link's outcome is final, the browser can drop it; a link altered to
    name another team never makes it drop the exchange kept for the real one)."""
    found = _kept(keyring, params, kept)
    return found is not None and _mismatch(params, found.token) is None


def complete_install(
    params: CallbackParams,
    *,
    store: Store,
    settings: Settings,
    spec: Spec,
    nonce: str | None,
    deadline: Deadline,
    kept: str | None = None,
    transport: Any = None,
) -> CallbackOutcome:
    """Exchange the code (or take the exchange `kept` by an earlier attempt at this very
    link) and store the installation. Raises `InstallError`; `Unsaved` when KV failed
    after the code was spent."""
    named = params.configuration_id
    # A link without `configurationId` claims its code under a placeholder: the code
    # and the state are what the claim protects, and the installation is read again
    # once the token names it.
    cfg = named or _UNNAMED
    redirect_uri = settings.require("redirect_uri")
    try:
        state = _signed_state(store.keyring, params.state) if params.state else None
    except InstallError as exc:
        exc.next = params.next  # a forged state's page offers the way back too
        raise
    # The state was checked when the kept exchange was made: a retry does not need it.
    resumed = _kept(store.keyring, params, kept)
    if resumed is not None:
        state = None
    # Atomic, not merely pipelined: see `Store.claim_install`.
    claim = store.claim_install(params.code, cfg, params.state, _state_life(state))

    # A retry with the kept exchange finds the code "pending" when the failed attempt
    # could not give its claim back (KV was down): that claim is its own.
    if not claim.ours and not (resumed is not None and claim.peer == "pending"):
        # A refresh, a double click, two tabs: another request has this code. Its
        # outcome is ours; this request used nothing (a state it marked goes back).
        _undo(store, claim, release_code=False, restore_state=True)
        if claim.gone:
            # Finished before an uninstall: the link's outcome now is that it was removed.
            raise _removed(next=params.next)
        try:
            _await_peer(store, claim, deadline)
        except InstallError as exc:
            # Without a configuration id, any finished peer "mismatches" the placeholder.
            if not (named is None and exc.kind == "mismatch"):
                exc.next = exc.next or params.next
                raise
        # Unnamed, the id is not known here (the code's mark holds only its digest).
        return CallbackOutcome(InstallResult(named, params.next, already_installed=True))

    try:
        existing = store.claimed_installation(claim) if named else None
        if state is not None:
            _check_state(state, claim, nonce)
        if claim.gone:
            raise _removed()  # uninstalled: never spend the code on it
        if resumed is not None:
            token: OAuthToken | None = resumed.token
            exchanged_at = resumed.at
            _check_match(params, resumed.token)  # what the exchange would have checked
            log.info("install resumed from the kept exchange", extra={"configuration_id": cfg})
        else:
            exchange_deadline = deadline.within(settings.vercel_timeout_s)
            # Taken before the call: the token's owner is a fact as of no earlier than this.
            exchanged_at = time.time()
            token = _exchange(
                params, settings, redirect_uri, existing, exchange_deadline, transport
            )
        if token is None:
            # The code was used before we kept a record of it (or that record expired),
            # and the installation exists: the install worked. Nothing is written.
            _undo(store, claim, release_code=True, restore_state=True)
            return CallbackOutcome(InstallResult(cfg, params.next, already_installed=True))
        try:
            stored = _store(
                params,
                token,
                claim,
                store,
                settings,
                spec,
                deadline,
                transport,
                exchanged_at=exchanged_at,
                resumed=resumed is not None,
            )
        except KVError:
            # The code is spent: keep what it bought in this browser (unless it has it).
            log.warning(
                "installation not saved: KV failed after the exchange; kept for a retry",
                extra={"configuration_id": token.installation_id},
            )
            sealed = (
                None if resumed is not None else _keep(store.keyring, params, token, exchanged_at)
            )
            raise Unsaved(sealed) from None
        if stored is None:
            # A newer exchange for this configuration was stored while this one waited in
            # the browser (the person started again from Vercel): the older token must not
            # replace it. The install is done; nothing is written.
            log.info(
                "kept exchange superseded by a newer install; nothing written",
                extra={"configuration_id": token.installation_id},
            )
            _undo(store, claim, release_code=True, restore_state=True)
            return CallbackOutcome(
                InstallResult(token.installation_id, params.next, already_installed=True)
            )
        inst, existing = stored
    except InstallError as exc:
        _undo(store, claim, release_code=True, restore_state=exc.kind != "bad_state")
        exc.next = exc.next or params.next
        raise
    except BaseException:
        _undo(store, claim, release_code=True, restore_state=True)
        raise
    log.info(
        "audit: reinstall" if existing is not None else "audit: install",
        extra={
            "event": "reinstall" if existing is not None else "install",
            "configuration_id": inst.configuration_id,
            "team": bool(inst.team_id),
            "refreshed": existing is not None,
        },
    )
    return CallbackOutcome(
        InstallResult(inst.configuration_id, params.next, already_installed=existing is not None),
        inst,
    )


def _store(
    params: CallbackParams,
    token: OAuthToken,
    claim: InstallClaim,
    store: Store,
    settings: Settings,
    spec: Spec,
    deadline: Deadline,
    transport: Any,
    *,
    exchanged_at: float,
    resumed: bool,
) -> tuple[Installation, Installation | None] | None:
    """Store what the token bought; returns it and the installation it refreshed. For a
    `resumed` (kept) exchange, None when the stored installation's token is newer: every
    stored exchange sets `owner_at` to its moment, and so does a later ownership fact,
    which the kept token predates too."""
    cfg = token.installation_id
    if params.configuration_id is None:
        log.info(
            "callback without configurationId: the token's installation is used",
            extra={"configuration_id": cfg},
        )
    access = token.access_token.get_secret_value()
    register_secret(access)
    read_at = time.time()
    configuration = _read_configuration(access, token, settings, deadline, transport)
    sealed = store.seal_token(cfg, access)

    def build(stored: Installation | None) -> Installation | None:
        if resumed and stored is not None and stored.owner_at > exchanged_at:
            return None
        return _installation(params, token, sealed, configuration, stored, exchanged_at, read_at)

    try:
        before, after = store.complete_install(
            claim,
            build,
            configuration_id=cfg,
            secrets=spec.mint_secrets(),
        )
    except Gone:
        raise _removed() from None  # the uninstall landed during the exchange
    return None if after is None else (after, before)


def _removed(*, next: str | None = None) -> InstallError:
    return InstallError(
        410,
        "removed",
        "This installation was removed from Vercel. Install the integration again.",
        next=next,
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
    _check_match(params, token)
    return token


def _mismatch(params: CallbackParams, token: OAuthToken) -> dict[str, bool] | None:
    """What of the link the token contradicts (None: nothing): its configuration, or its
    team when it names one."""
    team_differs = params.team_id is not None and token.team_id != params.team_id
    named_differs = (
        params.configuration_id is not None and token.installation_id != params.configuration_id
    )
    if not (named_differs or team_differs):
        return None
    return {"installation_matches": not named_differs, "team_matches": not team_differs}


def _check_match(params: CallbackParams, token: OAuthToken) -> None:
    """The token belongs to the configuration and team the link names, whether it was
    exchanged now or kept by an earlier attempt at this link. Else the link was forged or
    mangled: the token is dropped unused."""
    differs = _mismatch(params, token)
    if differs is not None:
        log.warning(
            "token does not match the callback",
            extra={"configuration_id": params.configuration_id, **differs},
        )
        raise InstallError(400, "mismatch", "This install link does not match its installation.")


def _undo(store: Store, claim: InstallClaim, *, release_code: bool, restore_state: bool) -> None:
    """Give back what the claim took (the code, the state's "used" mark).

    Best effort: it runs on the way out of a failure, often because KV itself failed, and
    must not hide that failure. What it can't undo expires: the code's claim after
    `CODE_CLAIM_TTL_S`, the state's mark with the state.
    """
    with contextlib.suppress(KVError):
        store.undo_install_claim(claim, release_code=release_code, restore_state=restore_state)


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
    stored: Installation | None,
    exchanged_at: float,
    read_at: float,
) -> Installation:
    """The record to store over `stored` (as it stands in KV now: read again when a
    webhook got in first). The fresh token, and each fact from this install unless the
    stored one is newer, by the watermark rule the webhooks apply (`lib.webhooks.handlers`):
    the owner is the token's as of its exchange, scopes and projects Vercel's answer as of
    `read_at` (no answer: what we knew). Sync and rotation history is kept; the status
    is not (the model's default, active: a fresh token mends a broken or paused one)."""
    facts: dict[str, Any] = {}
    if stored is not None:
        facts = stored.model_dump(
            include={"owner_id", "team_id", "owner_at", "scopes", "scopes_at"}
            | {"project_selection", "project_ids", "projects_at"}
            | {"created_at", "source", "last_synced_at", "last_rotated_at"}
        )
    if stored is None or exchanged_at >= stored.owner_at:
        owner = token.team_id or token.user_id
        facts.update(owner_id=owner, team_id=token.team_id, owner_at=exchanged_at)
    if configuration is not None and (stored is None or read_at >= stored.scopes_at):
        facts.update(scopes=list(configuration.scopes), scopes_at=read_at)
    if configuration is not None and (stored is None or read_at >= stored.projects_at):
        selection = "all" if configuration.all_projects else "selected"
        ids = list(configuration.projects or [])
        facts.update(project_selection=selection, project_ids=ids, projects_at=read_at)
    if params.source:
        facts["source"] = params.source
    now = time.time()
    return Installation.model_validate(
        {
            "created_at": now,
            **facts,
            "configuration_id": token.installation_id,
            "user_id": token.user_id,
            "sealed_token": sealed_token,
            "updated_at": now,
        }
    )
