"""lib/install.py in isolation: `safe_next` (the open-redirect guard), `parse_callback`,
and the parts of `complete_install` a browser can't steer: a peer request holding the
code, KV failing mid-way, a transfer to another owner, secrets minted once. Vercel is an
`httpx.MockTransport`; KV is the real gateway over Redis. The whole flow over HTTP is
proven in tests/api/test_callback.py."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lib.install as install
from lib.crypto import Keyring
from lib.deadline import Deadline
from lib.install import (
    CallbackParams,
    InstallError,
    complete_install,
    is_kept_cookie,
    kept_cookie,
    kept_path,
    parse_callback,
    safe_next,
    start_install,
)
from lib.kv.client import KV, KVUnavailable
from lib.kv.records import Installation
from lib.kv.store import Store
from lib.provisioning.spec import Spec, load_spec
from lib.settings import Settings, load_settings

DASHBOARD = "https://vercel.com"

# ------------------------------------------------------------------------- safe_next

ACCEPTED = [
    "https://vercel.com",
    "https://vercel.com/",
    "https://vercel.com/acme/~/integrations/x/icfg_1/installed",
    "https://vercel.com/x?next=%2F%2Fevil.com#frag",
    "https://VERCEL.com/X",
    "HTTPS://vercel.com/",
    "https://vercel.com:443/x",
    "https://vercel.com:/x",
    "https://vercel.com?a=b",
    "https://vercel.com#@evil.com",
    "https://vercel.com/..;@evil.com",
    "https://vercel.com/!",  # "!" is the lowest printable character a URL may carry
    "https://vercel.com/" + "a" * (2048 - len("https://vercel.com/")),  # the longest taken
]

REFUSED = [
    None,
    "",
    "/relative",
    "relative",
    "//evil.com",
    "///evil.com",
    "////evil.com",
    "https://vercel.com.evil.com",
    "https://vercel.com.evil.com/",
    "https://evil-vercel.com/",
    "https://vercel.co/",
    "https://vercel.com./",
    "https://evil.com/@vercel.com",
    "https://evil.com/https://vercel.com",
    "https://evil.com?https://vercel.com",
    "https://evil.com#https://vercel.com",
    "https://vercel.com@evil.com",
    "https://vercel.com:443@evil.com",
    "https://user:pass@vercel.com/",
    "https://user@vercel.com/",
    "https://@vercel.com/",
    "https://vercel.com%40evil.com/",
    "https://vercel.com%2F@evil.com",
    "https://vercel.com\\@evil.com",
    "https://vercel.com\\.evil.com",
    "https:\\\\evil.com",
    "https:\\\\vercel.com",
    "https:/\\evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "https:evil.com",
    "https:/evil.com",
    "https:vercel.com",
    "https:/vercel.com/x",
    "http://vercel.com/",
    "ftp://vercel.com/",
    "wss://vercel.com/",
    "https://vercel.com:8443/",
    "https://vercel.com:80/",
    "https://vercel.com:99999/",
    "https://vercel.com:abc/",
    "https://[::1]/",
    "https://[vercel.com/",
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "javascript://vercel.com/%0aalert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "https%3A%2F%2Fevil.com",
    "https%3a//evil.com",
    "%2F%2Fevil.com",
    "%6A%61%76%61%73%63%72%69%70%74:alert(1)",
    "&#106;avascript:alert(1)",
    " https://vercel.com/",
    "https://vercel.com/ ",
    "https://vercel.com/\t",
    "\thttps://vercel.com/",
    "https://vercel.com/\n",
    "https://vercel.com/\r\nSet-Cookie:x=1",
    "\x00https://vercel.com/",
    "https://vercel.com/\x7f",
    "https://vercel.com/\u2028",
    "https://vercel.com/\u00a0",
    "https://vercel.com/é",
    "https://v\u0435rcel.com/",  # Cyrillic ie
    "https://\uff56ercel.com/",  # fullwidth v
    "https://vercel\u3002com/",  # ideographic full stop
    'https://vercel.com/"><script>alert(1)</script>',
    "https://vercel.com/<x>",
    "https://vercel.com/`x`",
    "https://vercel.com/{x}",
    "https://vercel.com/" + "a" * 2100,
    "https://vercel.com/" + "a" * (2049 - len("https://vercel.com/")),  # one too long
]


@pytest.mark.parametrize("value", ACCEPTED)
def test_safe_next_accepts_the_dashboard_origin(value: str) -> None:
    assert safe_next(value, DASHBOARD) == value  # opaque: never rewritten


@pytest.mark.parametrize("value", REFUSED)
def test_safe_next_refuses_everything_else(value: str | None) -> None:
    assert safe_next(value, DASHBOARD) is None


def test_safe_next_on_a_local_dashboard() -> None:
    local = "http://127.0.0.1:4000"
    assert safe_next("http://127.0.0.1:4000/a/installed", local) == (
        "http://127.0.0.1:4000/a/installed"
    )
    for value in (
        "http://127.0.0.1:4001/",
        "http://127.0.0.1/",
        "https://127.0.0.1:4000/",
        "http://127.0.0.1:4000.evil.com/",
        "http://localhost:4000/",
    ):
        assert safe_next(value, local) is None


_URLISH = st.text(
    alphabet=st.sampled_from(
        list("/\\:@.%?#&=;-_ \t\n") + list("vercelomhtpsjaiw1:") + ["é", "\x00"]
    ),
    max_size=40,
)
_PREFIXES = st.sampled_from(
    ["", "https://vercel.com", "https://", "https:", "//", "https://evil.com", "javascript:"]
)


@settings(max_examples=2000, deadline=None)
@given(prefix=_PREFIXES, rest=_URLISH)
def test_safe_next_never_leaves_the_origin(prefix: str, rest: str) -> None:
    """Whatever is accepted, a browser resolves to https://vercel.com (or its www host):
    it starts with the exact origin (optionally :443), followed by the end, "/", "?" or
    "#", and contains no character a browser would strip, fold or reinterpret."""
    value = prefix + rest
    got = safe_next(value, DASHBOARD)
    if got is None:
        return
    assert got == value
    lowered = got.lower()
    www = "https://www.vercel.com"
    origin = www if lowered.startswith(www) else "https://vercel.com"
    assert lowered.startswith(origin)
    tail = lowered[len(origin) :]
    for port in (":443", ":"):
        if tail.startswith(port) and (len(tail) == len(port) or tail[len(port)] in "/?#"):
            tail = tail[len(port) :]
            break
    assert tail == "" or tail[0] in "/?#"
    assert all(33 <= ord(c) <= 126 for c in got)
    assert "\\" not in got
    assert urlsplit(got).hostname == origin.removeprefix("https://")


# -------------------------------------------------------------------- parse_callback


@pytest.fixture(scope="module")
def offline_settings() -> Settings:
    return load_settings(
        {
            "VERCEL_CLIENT_ID": "oac_test",
            "VERCEL_CLIENT_SECRET": "test-client-secret-123",
            "TOKEN_ENCRYPTION_KEY": "k1:" + base64.b64encode(b"k" * 32).decode(),
            "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:1",
            "UPSTASH_REDIS_REST_TOKEN": "unused",
            "VERCEL_REDIRECT_URI": "https://integration.example.com/callback",
            "INTEGRATION_SLUG": "my-integration",
        }
    )


LINK_CFG = "icfg_" + "abc12" * 4 + "abcd"


def _query(**values: str | list[str]) -> dict[str, list[str]]:
    base: dict[str, list[str]] = {"code": ["c0de-._~"], "configurationId": [LINK_CFG]}
    for name, value in values.items():
        base[name] = value if isinstance(value, list) else [value]
    return {k: v for k, v in base.items() if v != ["<drop>"]}


def test_parse_callback_reads_every_field(offline_settings: Settings) -> None:
    params = parse_callback(
        _query(
            teamId="team_x1",
            next="https://vercel.com/done",
            source="marketplace",
            state="s" * 16,
        ),
        offline_settings,
    )
    assert params == CallbackParams(
        code="c0de-._~",
        configuration_id=LINK_CFG,
        team_id="team_x1",
        next="https://vercel.com/done",
        source="marketplace",
        state="s" * 16,
    )


def test_parse_callback_optional_fields(offline_settings: Settings) -> None:
    params = parse_callback(_query(teamId="", next="//evil.com", state=""), offline_settings)
    assert params.team_id is None
    assert params.next is None
    assert params.state is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"code": "<drop>"}, "install code is missing"),
        ({"code": ""}, "install code is missing"),
        ({"configurationId": "<drop>"}, "configuration is missing"),
        ({"code": ["a", "b"]}, "install code is given twice"),
        (
            {"next": ["https://vercel.com/a", "https://vercel.com/b"]},
            "return address is given twice",
        ),
        ({"code": "a" * 513}, "install code is not valid"),
        ({"code": "a b"}, "install code is not valid"),
        ({"code": "abc\n"}, "install code is not valid"),  # `$` would have let this through
        ({"configurationId": LINK_CFG + "\n"}, "configuration is not valid"),
        ({"configurationId": "icfg_abc"}, "configuration is not valid"),  # not 24
        ({"configurationId": LINK_CFG + "e"}, "configuration is not valid"),
        ({"configurationId": "cfg_abc"}, "configuration is not valid"),
        ({"configurationId": "icfg_١٢٣"}, "configuration is not valid"),  # Arabic digits
        ({"teamId": "user_x"}, "team is not valid"),
        ({"teamId": "team_x\n"}, "team is not valid"),
        ({"source": "<b>"}, "source is not valid"),
        ({"state": "short"}, "install state is not valid"),
        ({"state": "s" * 161}, "install state is not valid"),
        ({"state": "v1.1.a b"}, "install state is not valid"),
    ],
)
def test_parse_callback_refuses(
    offline_settings: Settings, changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InstallError) as caught:
        parse_callback(_query(**changes), offline_settings)
    assert caught.value.status == 400
    assert caught.value.kind == "bad_request"
    assert problem in caught.value.message
    assert "'" not in caught.value.message  # words, not a quoted parameter name
    assert not {"configurationId", "teamId"} & set(caught.value.message.split())


# --------------------------------------------------------------- the kept cookie


@pytest.mark.parametrize(
    ("redirect_uri", "path"),
    [
        ("https://integration.example.com/callback", "/callback"),
        ("https://integration.example.com/api/callback", "/api/callback"),
        ("https://integration.example.com/", "/"),
        ("https://integration.example.com", "/"),
        ("https://integration.example.com/a%3Bb/callback", "/"),  # nothing to end the attribute
    ],
)
def test_the_kept_cookie_follows_the_redirect_url(
    offline_settings: Settings, redirect_uri: str, path: str
) -> None:
    """Registered as /api/callback, the Redirect URL is served there and the browser
    sends the kept cookie back only under that path."""
    settings_ = offline_settings.model_copy(update={"redirect_uri": redirect_uri})
    assert kept_path(settings_) == path


def test_each_link_keeps_its_exchange_under_a_name_of_its_own() -> None:
    def link(code: str) -> CallbackParams:
        return CallbackParams(code, None, None, None, None, None)

    names = {kept_cookie(link(f"code-{i}")) for i in range(200)}
    assert len(names) == 200
    assert kept_cookie(link("a")) == kept_cookie(link("a"))
    assert all(map(is_kept_cookie, [*names, "vi_kept"]))
    assert not any(map(is_kept_cookie, ["vi_install", "vi_kept_", "vi_kept_zzzzzzzz", "x"]))


# ---------------------------------------------------- complete_install against fakes

CFG = "icfg_" + "unit1" * 4 + "unit"
TEAM = "team_unit1"
USER = "user_unit1"


class FakeVercel:
    """The two endpoints the callback calls; `token_for` says whom a code belongs to."""

    def __init__(self) -> None:
        self.exchanges = 0
        self.installation_id = CFG
        self.team_id: str | None = TEAM
        self.oauth_status = 200
        self.oauth_error: dict[str, Any] = {"error": "server_error"}
        self.configuration_status = 200
        self.configuration_teams: list[str | None] = []
        self.issued: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/oauth/access_token":
            self.exchanges += 1
            if self.oauth_status != 200:
                return httpx.Response(self.oauth_status, json=self.oauth_error)
            # Fresh each run: the log's secret registry lives as long as the process.
            token = f"tok_{self.exchanges}_{secrets.token_hex(8)}"
            self.issued.append(token)
            return httpx.Response(
                200,
                json={
                    "access_token": token,
                    "token_type": "Bearer",
                    "installation_id": self.installation_id,
                    "user_id": USER,
                    "team_id": self.team_id,
                },
            )
        if request.url.path == f"/v1/integrations/configuration/{CFG}":
            self.configuration_teams.append(request.url.params.get("teamId"))
            if self.configuration_status != 200:
                return httpx.Response(self.configuration_status, json={"error": {"code": "x"}})
            return httpx.Response(
                200,
                json={"id": CFG, "scopes": ["read:project"], "projectSelection": "all"},
            )
        return httpx.Response(404)  # pragma: no cover


@pytest.fixture
def vercel() -> FakeVercel:
    return FakeVercel()


@pytest.fixture
def unit(kv: Any, vercel: FakeVercel) -> Iterator[tuple[Store, Settings, Spec]]:
    settings_ = load_settings(
        {
            "VERCEL_CLIENT_ID": "oac_test",
            "VERCEL_CLIENT_SECRET": "test-client-secret-123",
            "TOKEN_ENCRYPTION_KEY": "k1:" + base64.b64encode(b"k" * 32).decode(),
            "UPSTASH_REDIS_REST_URL": kv.url,
            "UPSTASH_REDIS_REST_TOKEN": kv.token,
            "VERCEL_REDIRECT_URI": "https://integration.example.com/callback",
            "INTEGRATION_SLUG": "my-integration",
            "VERCEL_API_URL": "https://api.vercel.test",
        }
    )
    client = KV(kv.url, kv.token)
    store = Store(client, Keyring(settings_.encryption_key), "vi:")
    yield store, settings_, load_spec("integration.toml")
    client.close()


def run(
    unit: tuple[Store, Settings, Spec],
    vercel: FakeVercel,
    *,
    code: str = "code1",
    team_id: str | None = TEAM,
    state: str | None = None,
    nonce: str | None = None,
    kept: str | None = None,
    cfg: str | None = CFG,
    deadline: Deadline | None = None,
) -> tuple[Any, Installation | None]:
    """One callback of `code` for `cfg` (None: a link without configurationId)."""
    store, settings_, spec = unit
    params = CallbackParams(code, cfg, team_id, "https://vercel.com/next", "external", state)
    outcome = complete_install(
        params,
        store=store,
        settings=settings_,
        spec=spec,
        nonce=nonce,
        kept=kept,
        deadline=deadline or Deadline(10),
        transport=httpx.MockTransport(vercel.handler),
    )
    return outcome.result, outcome.installation


def keys(kv: Any) -> dict[str, Any]:
    out = {}
    for raw in kv.gateway.backend.execute([b"KEYS", b"*"]):
        key = raw.decode()
        kind = kv.gateway.backend.execute([b"TYPE", raw]).decode()
        out[key] = kv.gateway.backend.execute([b"GET", raw]) if kind == "string" else kind
    return out


def test_first_install_stores_everything_in_one_transaction(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    store = unit[0]
    result, inst = run(unit, vercel)
    assert kv.gateway.stats()["requests"] == 2  # the opening and the closing transaction
    assert result.already_installed is False
    assert result.next == "https://vercel.com/next"
    assert inst is not None
    saved = store.get_installation(CFG)
    assert saved is not None
    assert (saved.owner_id, saved.team_id, saved.user_id) == (TEAM, TEAM, USER)
    assert saved.scopes == ["read:project"]
    assert saved.project_selection == "all"
    assert store.token(saved) == vercel.issued[0]
    assert store.installations_for_owner(TEAM) == [CFG]
    assert store.pending() == [CFG]  # until provisioning clears it
    assert set(store.get_secrets(CFG)) == {"api_key"}


def test_reinstall_keeps_secrets_and_creation_time(kv: Any, unit: Any, vercel: FakeVercel) -> None:
    store = unit[0]
    run(unit, vercel, code="code1")
    first = store.get_installation(CFG)
    secrets = store.get_secrets(CFG)
    result, inst = run(unit, vercel, code="code2")
    assert result.already_installed is True
    assert inst is not None
    assert store.get_secrets(CFG) == secrets
    second = store.get_installation(CFG)
    assert first is not None
    assert second is not None
    assert second.created_at == first.created_at
    assert store.token(second) == vercel.issued[1]


def test_transfer_to_another_owner_moves_the_index(kv: Any, unit: Any, vercel: FakeVercel) -> None:
    store = unit[0]
    vercel.team_id = None
    run(unit, vercel, code="code1", team_id=None)
    assert store.installations_for_owner(USER) == [CFG]
    vercel.team_id = TEAM
    run(unit, vercel, code="code2", team_id=TEAM)
    assert store.installations_for_owner(USER) == []
    assert store.installations_for_owner(TEAM) == [CFG]


def test_configuration_unreadable_keeps_what_we_knew(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    store = unit[0]
    run(unit, vercel, code="code1")
    vercel.configuration_status = 500
    run(unit, vercel, code="code2")
    saved = store.get_installation(CFG)
    assert saved is not None
    assert saved.scopes == ["read:project"]
    assert saved.project_selection == "all"


def done_mark(configuration_id: str) -> str:
    """A used code's mark exactly as deployed versions store it (see lib.kv.store)."""
    return "done:" + hashlib.sha256(configuration_id.encode()).hexdigest()[:24]


def hold_code(store: Store, code: str, value: str) -> str:
    key = store.key("code", hashlib.sha256(code.encode()).hexdigest()[:32])
    store.kv.call("SET", key, value, "EX", 60)
    return key


def later(seconds: float, action: Callable[[], object]) -> threading.Thread:
    def go() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def test_a_peer_finishing_is_awaited_without_exchanging(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    store = unit[0]
    key = hold_code(store, "code1", "pending")
    peer = later(0.3, lambda: store.kv.call("SET", key, done_mark(CFG)))
    result, inst = run(unit, vercel)
    peer.join()
    assert result.already_installed is True
    assert (result.configuration_id, result.next) == (CFG, "https://vercel.com/next")
    assert inst is None
    assert vercel.exchanges == 0


def test_a_peer_that_never_finishes_is_a_409(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(install, "_WAIT_FOR_PEER_S", 0.3)
    hold_code(unit[0], "code1", "pending")
    with pytest.raises(InstallError) as caught:
        run(unit, vercel)
    assert (caught.value.status, caught.value.kind) == (409, "in_progress")
    assert vercel.exchanges == 0


def test_a_peer_that_failed_is_a_409_that_a_reload_retries(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    store = unit[0]
    key = hold_code(store, "code1", "pending")
    peer = later(0.2, lambda: store.kv.call("DEL", key))
    with pytest.raises(InstallError) as caught:
        run(unit, vercel)
    peer.join()
    assert (caught.value.status, caught.value.kind) == (409, "interrupted")
    assert "did not finish" in caught.value.message
    _result, inst = run(unit, vercel)  # the reload
    assert inst is not None
    assert vercel.exchanges == 1


def test_a_code_done_for_another_configuration_is_a_mismatch(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    hold_code(unit[0], "code1", done_mark("icfg_other"))
    with pytest.raises(InstallError) as caught:
        run(unit, vercel)
    assert (caught.value.status, caught.value.kind, caught.value.message) == (
        400,
        "mismatch",
        "This install link does not match its installation.",
    )
    assert caught.value.next == "https://vercel.com/next"
    assert vercel.exchanges == 0


def begin(unit: Any) -> tuple[str, str]:
    """What /install gives a browser: (state, cookie nonce)."""
    store, settings_, _ = unit
    url, nonce = start_install(store.keyring, settings_, nonce=None)
    return parse_qs(urlsplit(url).query)["state"][0], nonce


def test_a_state_seen_by_a_repeat_is_left_unused(kv: Any, unit: Any, vercel: FakeVercel) -> None:
    """A finished code seen again with a still-valid state: the repeat uses nothing, so
    the state is not marked used (its mark, had it set one, is given back)."""
    store = unit[0]
    state, nonce = begin(unit)
    hold_code(store, "code1", done_mark(CFG))
    before = keys(kv)
    result, inst = run(unit, vercel, state=state, nonce=nonce)
    assert result.already_installed
    assert inst is None
    assert keys(kv) == before
    # Still usable once, with a fresh code.
    result, inst = run(unit, vercel, code="code2", state=state, nonce=nonce)
    assert inst is not None
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, code="code3", state=state, nonce=nonce)
    assert "already used" in caught.value.message


@pytest.mark.parametrize("status", [500, 503])
def test_vercel_failing_gives_back_the_claim_and_the_state(
    kv: Any, unit: Any, vercel: FakeVercel, status: int
) -> None:
    state, nonce = begin(unit)
    before = keys(kv)
    vercel.oauth_status = status
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, state=state, nonce=nonce)
    assert caught.value.status == (503 if status == 503 else 502)
    assert keys(kv) == before
    vercel.oauth_status = 200
    _result, inst = run(unit, vercel, state=state, nonce=nonce)  # the reload
    assert inst is not None


def test_state_expiry_is_checked_on_our_clock(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock moves past the state's life: refused, nothing exchanged or kept."""
    state, nonce = begin(unit)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + install.STATE_TTL_S + 1)
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, state=state, nonce=nonce)
    monkeypatch.undo()
    assert caught.value.kind == "bad_state"
    assert "expired" in caught.value.message
    assert vercel.exchanges == 0
    assert keys(kv) == {}


@pytest.mark.parametrize(
    "raw", ["s" * 32, "v1.1.aaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaa." + "a" * 43, "v1." + "." * 20]
)
def test_unsigned_state_is_refused_without_kv(
    kv: Any, unit: Any, vercel: FakeVercel, raw: str
) -> None:
    kv.gateway.reset_stats()
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, state=raw, nonce="n" * 43)
    assert caught.value.kind == "bad_state"
    assert vercel.exchanges == 0
    assert kv.gateway.stats()["requests"] == 0


def test_a_state_signed_under_another_key_is_refused(
    kv: Any, unit: Any, vercel: FakeVercel
) -> None:
    from lib.crypto import EncryptionKey

    other = Keyring(EncryptionKey(key_id="k2", key=b"o" * 32))
    nonce = "n" * 43
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, state=install.issue_state(other, nonce), nonce=nonce)
    assert "not valid" in caught.value.message
    assert vercel.exchanges == 0


def test_a_state_is_bound_to_its_browser(kv: Any, unit: Any, vercel: FakeVercel) -> None:
    """Another browser's valid nonce (it began an install too) does not open this state."""
    state, _mine = begin(unit)
    _theirs_state, theirs = begin(unit)
    with pytest.raises(InstallError) as caught:
        run(unit, vercel, state=state, nonce=theirs)
    assert "another browser" in caught.value.message
    assert vercel.exchanges == 0


def closing_write_fails(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """KV fails the closing write (the guarded script) and anything after it."""
    real = store.kv.call
    failed: list[object] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if failed or (args and args[0] in ("EVAL", "EVALSHA")):
            failed.append(args[0])
            raise KVUnavailable("KV store unavailable (test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(store.kv, "call", call)
    return failed


def test_kv_failing_after_the_exchange_keeps_it_sealed_for_a_retry(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, invariant 5: the code is spent, the write fails: `Unsaved` carries what
    the exchange returned, sealed (never the token in clear, never in its text). A
    retry of the same link with it stores the installation without a second exchange."""
    store = unit[0]
    state, nonce = begin(unit)
    failed = closing_write_fails(store, monkeypatch)
    with pytest.raises(install.Unsaved) as caught:
        run(unit, vercel, state=state, nonce=nonce)
    monkeypatch.undo()
    assert failed
    kept = caught.value.kept
    assert kept is not None
    assert (caught.value.status, caught.value.kind) == (503, "unsaved")
    token = vercel.issued[0]
    assert token not in kept
    for text in (str(caught.value), repr(caught.value), caught.value.message):
        assert kept not in text
        assert token not in text
    assert store.get_installation(CFG) is None

    # Another code of the same configuration: the kept exchange does not open for it.
    vercel.oauth_status = 400
    with pytest.raises(InstallError):
        run(unit, vercel, code="code2", kept=kept)
    vercel.oauth_status = 200
    exchanges = vercel.exchanges

    # The state was given back, but the retry does not even need it.
    result, inst = run(unit, vercel, kept=kept)
    assert inst is not None
    assert result.next == "https://vercel.com/next"
    assert vercel.exchanges == exchanges
    saved = store.get_installation(CFG)
    assert saved is not None
    assert store.token(saved) == token
    assert store.pending() == [CFG]


def test_a_kept_exchange_expires(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = unit[0]
    closing_write_fails(store, monkeypatch)
    with pytest.raises(install.Unsaved) as caught:
        run(unit, vercel)
    monkeypatch.undo()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + install.KEPT_TTL_S + 1)
    vercel.oauth_status = 400  # Vercel: the code was used
    with pytest.raises(InstallError) as refused:
        run(unit, vercel, kept=caught.value.kept)
    assert refused.value.kind == "invalid_code"
    assert store.get_installation(CFG) is None


def test_a_retry_that_fails_again_keeps_the_cookie_it_has(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = unit[0]
    closing_write_fails(store, monkeypatch)
    with pytest.raises(install.Unsaved) as first:
        run(unit, vercel)
    with pytest.raises(install.Unsaved) as second:
        run(unit, vercel, kept=first.value.kept)
    assert second.value.kept is None  # nothing new to set: the browser has it
    assert vercel.exchanges == 1


def test_kv_failing_at_the_end_is_raised_and_cleaned_up(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = unit[0]
    before = keys(kv)

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise KVUnavailable("KV store unavailable (test)")

    monkeypatch.setattr(store.kv, "transaction", down)
    with pytest.raises(KVUnavailable):
        run(unit, vercel)
    assert keys(kv) == before


def test_cleanup_failing_too_raises_the_original_error(
    kv: Any, unit: Any, vercel: FakeVercel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vercel fails, then KV fails while the claim is given back: the user still sees
    Vercel's failure (the claim expires by itself)."""
    store = unit[0]
    vercel.oauth_status = 502
    undone: list[object] = []

    def down(*args: Any, **_kwargs: Any) -> Any:
        undone.append(args)
        raise KVUnavailable("KV store unavailable (test)")

    monkeypatch.setattr(store.kv, "pipeline", down)
    with pytest.raises(InstallError) as caught:
        run(unit, vercel)
    assert caught.value.status == 502
    assert len(undone) == 1


def test_start_install_signs_a_state_and_writes_nothing(kv: Any, unit: Any) -> None:
    store, settings_, _ = unit
    kv.gateway.reset_stats()
    url, nonce = start_install(store.keyring, settings_, nonce=None)
    assert url.startswith("https://vercel.com/integrations/my-integration/new?state=v1.")
    again, same = start_install(store.keyring, settings_, nonce=nonce)
    assert same == nonce
    assert again != url
    assert kv.gateway.stats()["requests"] == 0
    assert keys(kv) == {}
