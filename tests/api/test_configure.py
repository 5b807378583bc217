"""/configure end to end over real HTTP: the dev server, the emulator, Redis.

A `Browser` here is an httpx client that keeps cookies and follows the emulator's Sign in
with Vercel consent page the way a person does (reading the form it is shown), so every
session in these tests was earned through (emulated) Vercel's OpenID Connect provider,
and no test path ever reaches Vercel's install flow.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from dev import serve
from lib.crypto import EncryptionKey, Keyring, sign_token
from lib.deadline import Deadline
from lib.web.session import SESSION_COOKIE, SESSION_TTL_S
from lib.web.signin import SIGNIN_COOKIE

TEAM = "acme"
TEAM_NAME = "Acme Inc"


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]]
    radios: dict[str, list[str]]


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.labels: dict[str, str] = {}  # input id -> label text
        self._label_for: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").upper(), [], {}))
        elif tag == "input" and self.forms:
            form = self.forms[-1]
            kind = a.get("type", "text")
            if kind == "hidden" or (kind in ("radio", "checkbox") and "checked" in a):
                form.fields.append((a["name"], a.get("value", "")))
            if kind == "radio":
                form.radios.setdefault(a["name"], []).append(a.get("value", ""))
        elif tag == "label":
            self._label_for = a.get("for")

    def handle_data(self, data: str) -> None:
        if self._label_for is not None and data.strip():
            self.labels.setdefault(self._label_for, data.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None


def _forms(html: str) -> _Forms:
    parser = _Forms()
    parser.feed(html)
    return parser


class Browser:
    """Cookies and redirects by hand, so each hop can be checked."""

    def __init__(self, e2e: Any, host: str | None = None) -> None:
        headers = {"Host": host} if host else {}
        self.e2e = e2e
        self.client = httpx.Client(base_url=e2e.dev_url, timeout=30.0, headers=headers)
        self.emulator = httpx.Client(base_url=e2e.emulator_url, timeout=30.0)

    def close(self) -> None:
        self.client.close()
        self.emulator.close()

    def open_configure(self, cfg: str) -> httpx.Response:
        return self.client.get("/configure", params={"configurationId": cfg})

    def post_configure(self, cfg: str, data: dict[str, str]) -> httpx.Response:
        return self.client.post("/configure", params={"configurationId": cfg}, data=data)

    def session_cookie(self) -> str | None:
        return self.client.cookies.get(SESSION_COOKIE)

    def leave_for_vercel(self, cfg: str) -> httpx.Response:
        """The page without a session, then its "Sign in with Vercel" button."""
        first = self.open_configure(cfg)
        assert first.status_code == 200, first.text
        assert "Sign in with Vercel" in first.text
        assert "/install" not in first.text
        start = self.client.get("/configure", params={"configurationId": cfg, "signin": "start"})
        assert start.status_code == 303, start.text
        return start

    def consent(self, authorize_url: str, decision: str = "allow") -> str:
        """The emulator's consent page: press Allow or Cancel; where it sends us back."""
        vercel = urlsplit(authorize_url)
        assert f"{vercel.scheme}://{vercel.netloc}" == self.e2e.emulator_url
        page = self.emulator.get(f"{vercel.path}?{vercel.query}")
        assert page.status_code == 200, page.text
        form = _forms(page.text).forms[0]
        answer = self.emulator.post(form.action, data={**dict(form.fields), "decision": decision})
        assert answer.status_code in (302, 303), answer.text
        return str(answer.headers["location"])

    def come_back(self, location: str) -> httpx.Response:
        back = urlsplit(location)
        assert f"{back.scheme}://{back.netloc}" == self.e2e.dev_url
        assert back.path == "/configure"
        return self.client.get(f"{back.path}?{back.query}")

    def sign_in(self, cfg: str, decision: str = "allow") -> httpx.Response:
        """From the Configuration URL through Sign in with Vercel back to /configure."""
        start = self.leave_for_vercel(cfg)
        return self.come_back(self.consent(start.headers["location"], decision))


@pytest.fixture
def browsers(signin: Any) -> Iterator[Any]:
    opened: list[Browser] = []

    def make(host: str | None = None) -> Browser:
        opened.append(Browser(signin, host))
        return opened[-1]

    yield make
    for b in opened:
        b.close()


SIGNIN_ENV = (
    "VERCEL_APP_CLIENT_ID",
    "VERCEL_APP_CLIENT_SECRET",
    "VERCEL_APP_REDIRECT_URI",
    "VERCEL_OIDC_ISSUER_DEV",
    "VERCEL_OIDC_JWKS_URL_DEV",
)


def signin_env(e2e: Any, **changes: str) -> dict[str, str]:
    config = e2e.emulator.config
    return {
        "VERCEL_APP_CLIENT_ID": config.app_client_id,
        "VERCEL_APP_CLIENT_SECRET": config.app_client_secret,
        "VERCEL_APP_REDIRECT_URI": f"{e2e.dev_url}/configure",
        "VERCEL_OIDC_ISSUER_DEV": e2e.emulator_url,
        "VERCEL_OIDC_JWKS_URL_DEV": f"{e2e.emulator_url}/.well-known/jwks",
        **changes,
    }


def use_settings(env: dict[str, str]) -> None:
    from lib.app import reset_services
    from lib.web.signin import reset_jwks_cache

    for name in SIGNIN_ENV:
        os.environ.pop(name, None)
    os.environ.update(env)
    reset_services()
    reset_jwks_cache()


@pytest.fixture
def signin(e2e: Any) -> Iterator[Any]:
    """Sign in with Vercel configured against the emulator, as `make dev` does, with the
    App's Authorization Callback URL on /configure itself."""
    baseline = {
        f: getattr(e2e.emulator.config, f) for f in ("app_redirect_uris", "public_url", "clock")
    }
    e2e.emulator.configure(app_redirect_uris=(f"{e2e.dev_url}/configure",))
    use_settings(signin_env(e2e))
    try:
        yield e2e
    finally:
        e2e.emulator.configure(**baseline)
        use_settings({})


def _install(e2e: Any, scope: str = TEAM, projects: tuple[str, ...] = ()) -> str:
    ids = tuple(_project_id(e2e, name) for name in projects)
    minted = e2e.install(scope, "selected" if projects else "all", ids)
    return str(minted["configurationId"])


def _signed_in(browser: Browser, cfg: str) -> httpx.Response:
    back = browser.sign_in(cfg)
    assert back.status_code == 303, back.text
    assert back.headers["location"] == f"/configure?configurationId={cfg}"
    page = browser.open_configure(cfg)
    assert page.status_code == 200, page.text
    return page


def _csrf(html: str) -> str:
    for form in _forms(html).forms:
        for name, value in form.fields:
            if name == "csrf":
                return value
    raise AssertionError("no CSRF field on the page")


def _envs(e2e: Any, key: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each project's env vars (values included) as the emulated Vercel holds them."""
    state = e2e.emulator.state()
    return {
        p["name"]: [e for e in p["env"] if key is None or e["key"] == key]
        for p in state["projects"]
    }


def _values(e2e: Any) -> set[str]:
    return {e["value"] for envs in _envs(e2e).values() for e in envs if e["value"]}


def _project_id(e2e: Any, name: str) -> str:
    return str(next(p["id"] for p in e2e.emulator.state()["projects"] if p["name"] == name))


def _no_install_flow(e2e: Any, before: dict[str, Any]) -> None:
    """Nothing was installed and no install code was issued."""
    after = e2e.emulator.state()
    assert len(after["configurations"]) == len(before["configurations"])
    assert after["codes"]["issued"] == before["codes"]["issued"]


def _refused_page(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Back to Vercel" in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "").split("=")[0]
    for word in words:
        assert word in response.text, word


# --- Sign in with Vercel and the session cookie ------------------------------------------


def test_without_a_session_the_page_offers_sign_in_and_never_an_install(
    e2e: Any, browsers: Any
) -> None:
    cfg = _install(e2e)
    before = e2e.emulator.state()
    browser = browsers()
    page = browser.open_configure(cfg)
    assert page.status_code == 200
    assert "Sign in with Vercel" in page.text
    assert "/install" not in page.text
    assert "ACME_" not in page.text  # no data before sign-in
    assert page.headers["cache-control"] == "no-store"
    start = browser.leave_for_vercel(cfg)
    vercel = urlsplit(start.headers["location"])
    assert vercel.path == "/oauth/authorize"
    query = parse_qs(vercel.query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [f"{e2e.dev_url}/configure"]
    assert {"state", "nonce", "client_id"} <= query.keys()
    assert "openid" in query["scope"][0].split()
    cookie = [a.strip() for a in start.headers["set-cookie"].split(";")]
    assert cookie[0].startswith(f"{SIGNIN_COOKIE}=")
    assert {"HttpOnly", "SameSite=Lax", "Path=/configure"} <= set(cookie)
    # Nothing in the cookie is readable: the verifier and nonce are sealed.
    assert query["nonce"][0] not in cookie[0]
    _no_install_flow(e2e, before)


def test_the_installer_signs_in_and_gets_a_session_for_this_configuration(
    e2e: Any, browsers: Any
) -> None:
    cfg = _install(e2e, TEAM, ("web", "api"))
    before = e2e.emulator.state()
    browser = browsers()
    back = browser.sign_in(cfg)
    assert back.status_code == 303, back.text
    assert back.headers["location"] == f"/configure?configurationId={cfg}"
    cookies = back.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
    attributes = [a.strip() for a in session.split(";")]
    assert {"HttpOnly", "SameSite=Lax", "Path=/configure"} <= set(attributes)
    assert "Secure" not in attributes  # http://127.0.0.1: a Secure cookie would be dropped
    max_age = int(next(a for a in attributes if a.startswith("Max-Age=")).split("=")[1])
    assert 0 < max_age <= SESSION_TTL_S <= 3600
    # The one-time sign-in cookie is cleared.
    assert any(c.startswith(f"{SIGNIN_COOKIE}=;") and "Max-Age=0" in c for c in cookies)
    body = browser.session_cookie() or ""
    payload = json.loads(base64.urlsafe_b64decode(body.split(".")[0] + "=="))
    assert payload["cfg"] == cfg
    assert payload["exp"] <= time.time() + SESSION_TTL_S + 1
    page = browser.open_configure(cfg)
    assert page.status_code == 200
    assert "web" in page.text
    assert "api" in page.text
    _no_install_flow(e2e, before)


def test_a_team_member_who_did_not_install_signs_in(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e, TEAM)
    e2e.emulator.create_user("teammate", "Team Mate")
    e2e.emulator.set_team_member(TEAM, "teammate", "MEMBER")
    e2e.emulator.sign_in("teammate")
    browser = browsers()
    back = browser.sign_in(cfg)
    assert back.status_code == 303, back.text
    assert browser.open_configure(cfg).status_code == 200


def test_the_session_cookie_is_secure_off_localhost(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    browser = browsers(host="integration.example.com")
    start = browser.client.get("/configure", params={"configurationId": cfg, "signin": "start"})
    assert start.status_code == 303
    attributes = [a.strip() for a in start.headers["set-cookie"].split(";")]
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= set(attributes)


def _audit(caplog: Any, message: str) -> list[Any]:
    return [r for r in caplog.records if r.getMessage() == message]


def test_an_outsider_is_refused_and_nothing_is_stored(e2e: Any, browsers: Any, caplog: Any) -> None:
    cfg = _install(e2e, TEAM)
    keys = e2e.kv_keys()
    e2e.emulator.sign_in("outsider")
    browser = browsers()
    caplog.set_level("INFO")
    refused = browser.sign_in(cfg)
    _refused_page(refused, 403, "not as a member of the team")
    [line] = _audit(caplog, "audit: configure sign-in refused")
    assert (line.event, line.reason, line.configuration_id) == ("signin_refused", "not_member", cfg)
    assert not _audit(caplog, "audit: configure sign-in")
    assert browser.session_cookie() is None
    assert e2e.kv_keys() == keys
    assert browser.open_configure(cfg).status_code == 200  # the sign-in page again
    assert "ACME_" not in browser.open_configure(cfg).text


def test_another_accounts_personal_configuration_is_refused(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e, "dev-user")
    e2e.emulator.sign_in("outsider")
    browser = browsers()
    _refused_page(browser.sign_in(cfg), 403, "another Vercel account")
    assert browser.session_cookie() is None


def test_without_team_read_only_the_installer_gets_in_and_the_page_says_so(
    e2e: Any, browsers: Any
) -> None:
    cfg = _install(e2e, TEAM)
    e2e.emulator.remove_scopes(cfg, ["read:team"])
    e2e.emulator.create_user("teammate", "Team Mate")
    e2e.emulator.set_team_member(TEAM, "teammate", "MEMBER")
    e2e.emulator.sign_in("teammate")
    browser = browsers()
    _refused_page(browser.sign_in(cfg), 403, "Only the person who installed", "Team read")
    assert browser.session_cookie() is None
    e2e.emulator.sign_in("dev-user")
    assert browser.sign_in(cfg).status_code == 303


def test_cancelled_consent_is_a_clear_page(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    browser = browsers()
    _refused_page(browser.sign_in(cfg, "cancel"), 401, "You cancelled signing in")
    assert browser.session_cookie() is None


def test_a_replayed_code_is_refused_by_vercel(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    browser = browsers()
    start = browser.leave_for_vercel(cfg)
    location = browser.consent(start.headers["location"])
    sealed = browser.client.cookies.get(SIGNIN_COOKIE)
    assert browser.come_back(location).status_code == 303
    # The same answer again, with the sign-in cookie it came with: Vercel's invalid_grant.
    thief = browsers()
    thief.client.cookies.set(SIGNIN_COOKIE, sealed or "", path="/configure")
    _refused_page(thief.come_back(location), 400, "already used")
    assert thief.session_cookie() is None


def test_a_pkce_mismatch_is_refused_by_vercel(e2e: Any, browsers: Any) -> None:
    """A code obtained by another browser's sign-in is useless with this browser's verifier
    (and state): the attacker's own pending sign-in carries the wrong verifier."""
    cfg = _install(e2e)
    victim, attacker = browsers(), browsers()
    victim_start = victim.leave_for_vercel(cfg)
    victim_back = urlsplit(victim.consent(victim_start.headers["location"]))
    attacker_start = attacker.leave_for_vercel(cfg)
    attacker_state = parse_qs(urlsplit(attacker_start.headers["location"]).query)["state"][0]
    code = parse_qs(victim_back.query)["code"][0]
    forged = attacker.client.get("/configure", params={"code": code, "state": attacker_state})
    _refused_page(forged, 400, "did not match this browser")
    assert attacker.session_cookie() is None


def test_a_state_from_another_browser_is_refused(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    victim, attacker = browsers(), browsers()
    start = victim.leave_for_vercel(cfg)
    location = victim.consent(start.headers["location"])
    _refused_page(attacker.come_back(location), 400, "not started here")
    assert attacker.session_cookie() is None


def test_a_wrong_nonce_is_refused(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    browser = browsers()
    start = browser.leave_for_vercel(cfg)
    url = urlsplit(start.headers["location"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    query["nonce"] = "a-nonce-this-browser-never-chose"
    tampered = f"{url.scheme}://{url.netloc}{url.path}?{urlencode(query)}"
    _refused_page(browser.come_back(browser.consent(tampered)), 400, "does not belong")
    assert browser.session_cookie() is None


def test_a_wrong_issuer_is_refused(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    # The emulator now names itself by another URL than the one the product trusts.
    e2e.emulator.configure(public_url=e2e.emulator_url.replace("127.0.0.1", "localhost"))
    browser = browsers()
    _refused_page(browser.sign_in(cfg), 400, "not issued by Vercel")
    assert browser.session_cookie() is None


def test_an_expired_id_token_is_refused(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    # The emulator's clock runs two hours behind: its ID tokens expired an hour ago.
    e2e.emulator.configure(clock=lambda: time.time() - 2 * 3600)
    browser = browsers()
    _refused_page(browser.sign_in(cfg), 400, "expired")
    assert browser.session_cookie() is None


def test_an_id_token_from_the_future_is_refused(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    e2e.emulator.advance_clock(600)
    browser = browsers()
    _refused_page(browser.sign_in(cfg), 400, "not valid yet")


def test_a_rotated_signing_key_is_fetched_once_and_accepted(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    browser = browsers()
    assert browser.sign_in(cfg).status_code == 303  # the key set is now cached
    e2e.emulator.rotate_signing_key(retain_previous=False)
    e2e.emulator.reset_calls()
    other = browsers()
    assert other.sign_in(cfg).status_code == 303
    assert other.session_cookie()


def _jwks_server(jwks: dict[str, Any]) -> Any:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        body = json.dumps(jwks).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return serve.start(app)


def _other_key_set(kid: str | None) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    public = numbers.public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {
        "keys": [
            {
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": kid or "some-other-key",
                "n": b64(public.n),
                "e": b64(public.e),
            }
        ]
    }


def test_a_signature_not_made_with_the_listed_key_is_refused(e2e: Any, browsers: Any) -> None:
    """The key set the product trusts lists the emulator's key id with other key material:
    the emulator's ID token is then a forgery as far as the product can tell."""
    cfg = _install(e2e)
    kid = httpx.get(f"{e2e.emulator_url}/.well-known/jwks", timeout=10).json()["keys"][0]["kid"]
    server = _jwks_server(_other_key_set(kid))
    try:
        use_settings(signin_env(e2e, VERCEL_OIDC_JWKS_URL_DEV=f"{server.url}/jwks"))
        browser = browsers()
        _refused_page(browser.sign_in(cfg), 400, "signature")
        assert browser.session_cookie() is None
    finally:
        server.stop()


def test_an_unknown_key_id_after_refetching_is_refused(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    server = _jwks_server(_other_key_set(None))
    try:
        use_settings(signin_env(e2e, VERCEL_OIDC_JWKS_URL_DEV=f"{server.url}/jwks"))
        browser = browsers()
        _refused_page(browser.sign_in(cfg), 400, "does not list")
    finally:
        server.stop()


def test_without_sign_in_configured_the_page_says_what_to_set_up(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    use_settings({})
    before = e2e.emulator.state()
    with e2e.http() as client:
        page = client.get("/configure", params={"configurationId": cfg})
        start = client.get("/configure", params={"configurationId": cfg, "signin": "start"})
    for response in (page, start):
        assert response.status_code == 503
        assert "Sign-in is not set up" in response.text
        assert "VERCEL_APP_CLIENT_ID" in response.text
        assert "/install" not in response.text
        assert "location" not in response.headers
    _no_install_flow(e2e, before)


def test_a_dev_issuer_off_this_machine_fails_closed(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    use_settings(signin_env(e2e, VERCEL_OIDC_JWKS_URL_DEV="https://evil.example/jwks"))
    with e2e.http() as client:
        page = client.get("/configure", params={"configurationId": cfg})
    assert page.status_code == 500
    assert "misconfigured" in page.text
    assert "Back to Vercel" in page.text


def test_a_session_for_one_configuration_shows_nothing_of_another(e2e: Any, browsers: Any) -> None:
    team_cfg = _install(e2e, TEAM, ("web",))
    personal_cfg = _install(e2e, "dev-user")
    browser = browsers()
    page = _signed_in(browser, personal_cfg)
    other = browser.open_configure(team_cfg)
    assert other.status_code == 401
    assert "Sign in with Vercel" in other.text
    assert "web" not in other.text.split("<main")[1]
    # Its own form token is no key to the other configuration either.
    refused = browser.post_configure(team_cfg, {"csrf": _csrf(page.text), "action": "resync"})
    assert refused.status_code == 403
    assert "web" not in refused.text.split("<main")[1]


def _forge(cookie: str, **changes: Any) -> str:
    body, _, mac = cookie.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{encoded}.{mac}"


def test_forged_expired_and_tampered_cookies_show_nothing(e2e: Any, browsers: Any) -> None:
    team_cfg = _install(e2e, TEAM)
    personal_cfg = _install(e2e, "dev-user")
    browser = browsers()
    _signed_in(browser, personal_cfg)
    real = browser.session_cookie()
    assert real
    keyring = e2e.services().store.keyring
    stranger = Keyring(EncryptionKey(key_id="x", key=b"s" * 32))
    candidates = {
        "another key": sign_token(stranger.derive("session"), {"cfg": team_cfg, "sid": "a"}, 60),
        "csrf key": sign_token(keyring.derive("csrf"), {"cfg": team_cfg, "sid": "a"}, 60),
        "expired": sign_token(
            keyring.derive("session"),
            {"cfg": team_cfg, "sid": "a"},
            SESSION_TTL_S,
            now=time.time() - SESSION_TTL_S - 5,
        ),
        "payload swapped": _forge(real, cfg=team_cfg),
        "signature cut": real.split(".")[0],
        "garbage": "not-a-session",
    }
    for label, value in candidates.items():
        with httpx.Client(base_url=e2e.dev_url, timeout=30.0) as client:
            client.cookies.set(SESSION_COOKIE, value)
            got = client.get("/configure", params={"configurationId": team_cfg})
            assert got.status_code == 401, label
            assert "Your session has expired" in got.text, label
            assert "ACME_" not in got.text, label
            posted = client.post(
                "/configure",
                params={"configurationId": team_cfg},
                data={"action": "rotate", "csrf": "x"},
            )
            assert posted.status_code == 403, label
    # A correctly signed, live session for the configuration does open it (control).
    good = sign_token(keyring.derive("session"), {"cfg": team_cfg, "sid": "b"}, 60)
    with httpx.Client(base_url=e2e.dev_url, timeout=30.0) as client:
        client.cookies.set(SESSION_COOKIE, good)
        assert client.get("/configure", params={"configurationId": team_cfg}).status_code == 200


def test_unknown_and_missing_configurations_are_branded_pages(e2e: Any, browsers: Any) -> None:
    with e2e.http() as client:
        missing = client.get("/configure")
        bad = client.get("/configure", params={"configurationId": "nope"})
        twice = client.get("/configure", params=[("configurationId", "icfg_" + "a" * 24)] * 2)
    for refused in (missing, bad, twice):
        _refused_page(refused, 400, "This link is incomplete", "from your Vercel dashboard")
        assert "configurationId" not in refused.text.split("<body", 1)[1]
    cfg = _install(e2e)
    browser = browsers()
    _signed_in(browser, cfg)
    # The installation goes away while the session lives.
    e2e.emulator.delete_configuration(cfg, sync=True)
    gone = browser.open_configure(cfg)
    _refused_page(gone, 404, "not found")


# --- what the page shows ----------------------------------------------------------------


def test_the_page_shows_scope_access_status_conflicts_drift_and_pending_never_values(
    e2e: Any, browsers: Any
) -> None:
    # A person's own variable that clashes with one the integration wants to create.
    e2e.emulator.add_user_env(
        "web", "ACME_PROJECT_ID", "users-own-project-id-value", owner=TEAM, type="plain"
    )
    cfg = _install(e2e, TEAM, ("web", "api", "docs"))
    services = e2e.services()
    inst = services.store.get_installation(cfg)
    assert inst is not None
    # Drift: someone deletes one of the integration's variables on Vercel.
    dashboard = next(e for e in _envs(e2e, "ACME_DASHBOARD_URL")["api"])
    token = services.store.token(inst)
    deleted = httpx.delete(
        f"{e2e.emulator_url}/v9/projects/{_project_id(e2e, 'api')}/env/{dashboard['id']}",
        params={"teamId": inst.team_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert deleted.status_code == 200, deleted.text
    services.store.mark_pending(cfg)

    browser = browsers()
    html = _signed_in(browser, cfg).text

    assert f"Team {TEAM_NAME}" in html  # the name from getTeam, never the raw id
    assert str(inst.team_id) not in html
    assert f'href="{e2e.emulator_url}/acme/web/settings/environment-variables"' in html
    assert "3 selected projects" in html
    assert "Active" in html
    assert "Work pending" in html
    rows = {
        name: html.split(f'<th scope="row" data-label="Project">{name}</th>')[1].split("</tr>")[0]
        for name in ("web", "api", "docs")
    }
    assert "in sync" in rows["docs"]
    assert "drift" in rows["api"]
    # (How a deleted record reads depends on how the plan splits targets into records.)
    assert "<code>ACME_DASHBOARD_URL</code> missing in" in rows["api"]
    assert "conflict" in rows["web"]
    assert (
        "<code>ACME_PROJECT_ID</code> in production, preview is already set by you" in rows["web"]
    )
    # Keys and targets of what is managed, never a value.
    assert (
        '<code>ACME_API_KEY</code></td><td data-label="Environments">production, preview</td>'
    ) in html
    values = _values(e2e) | set(services.store.get_secrets(cfg).values())
    assert "users-own-project-id-value" in values
    leaked = [v for v in values if v in html]
    assert not leaked, leaked
    assert token not in html
    # Only the selected projects are shown.
    assert "marketing-site" not in html


def test_resync_needs_the_session_and_its_form_token(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e, TEAM, ("api",))
    api = _project_id(e2e, "api")
    envs = _envs(e2e, "ACME_PROJECT_ID")["api"]
    store = e2e.services().store
    inst = store.get_installation(cfg)
    assert inst is not None
    httpx.delete(
        f"{e2e.emulator_url}/v9/projects/{api}/env/{envs[0]['id']}",
        params={"teamId": inst.team_id},
        headers={"Authorization": f"Bearer {store.token(inst)}"},
        timeout=10,
    ).raise_for_status()
    mine, theirs = browsers(), browsers()
    page = _signed_in(mine, cfg)
    other_page = _signed_in(theirs, cfg)
    good = _csrf(page.text)
    forged = _forge(good, s="0" * 32)
    refused = {
        "missing": {"action": "resync"},
        "empty": {"action": "resync", "csrf": ""},
        "forged": {"action": "resync", "csrf": forged},
        "other session's": {"action": "resync", "csrf": _csrf(other_page.text)},
        "session cookie as token": {"action": "resync", "csrf": mine.session_cookie() or ""},
    }
    for label, data in refused.items():
        response = mine.post_configure(cfg, data)
        assert response.status_code == 403, label
        assert "Nothing was changed" in response.text, label
    with httpx.Client(base_url=e2e.dev_url, timeout=30.0) as anonymous:
        response = anonymous.post(
            "/configure", params={"configurationId": cfg}, data={"action": "resync", "csrf": good}
        )
        assert response.status_code == 403
        assert "ACME" not in response.text
    assert _envs(e2e, "ACME_PROJECT_ID")["api"] == []  # nothing was repaired

    done = mine.post_configure(cfg, {"action": "resync", "csrf": good})
    assert done.status_code == 303
    assert done.headers["location"] == f"/configure?configurationId={cfg}"
    assert len(_envs(e2e, "ACME_PROJECT_ID")["api"]) == 1
    after = mine.client.get(done.headers["location"])
    assert "Resync finished" in after.text
    assert 'badge warn">drift<' not in after.text
    assert mine.post_configure(cfg, {"action": "explode", "csrf": good}).status_code == 400


def test_resync_now_retries_writes_a_persons_variable_blocked(e2e: Any, browsers: Any) -> None:
    """The person may have deleted their conflicting variable: a resync they ask for tries
    again at once (a background run would wait a day before rechecking)."""
    e2e.emulator.add_user_env("web", "ACME_PROJECT_ID", "mine", owner=TEAM, type="plain")
    cfg = _install(e2e, TEAM, ("web",))
    browser = browsers()
    page = _signed_in(browser, cfg)
    assert "already set by you" in page.text

    def creates() -> dict[str, Any]:
        routes = e2e.emulator.call_counts()["routes"]
        return {k: v for k, v in routes.items() if k.startswith("POST ") and "/env" in k}

    e2e.emulator.reset_calls()
    assert browser.open_configure(cfg).status_code == 200
    assert creates() == {}  # showing the page writes nothing
    done = browser.post_configure(cfg, {"action": "resync", "csrf": _csrf(page.text)})
    assert done.status_code == 303
    [(route, calls)] = creates().items()
    assert calls["count"] == 1, route  # tried again (a batch: refused inside a 201)
    assert "already set by you" in browser.client.get(done.headers["location"]).text
    [theirs] = _envs(e2e, "ACME_PROJECT_ID")["web"]
    assert theirs["value"] == "mine"  # and the person's variable is untouched


def test_rotate_secrets_changes_the_value_in_every_project(
    e2e: Any, browsers: Any, caplog: Any
) -> None:
    cfg = _install(e2e, TEAM)
    before = _envs(e2e, "ACME_API_KEY")
    team_projects = {n for n, envs in before.items() if envs}
    assert len(team_projects) == 5
    old = {e["value"] for envs in before.values() for e in envs}
    assert len(old) == 1
    browser = browsers()
    caplog.set_level("INFO")
    page = _signed_in(browser, cfg)
    [signed_in] = _audit(caplog, "audit: configure sign-in")
    assert (signed_in.configuration_id, signed_in.access) == (cfg, "installer")
    # The first press only asks, and says what happens to the old values.
    confirm = browser.post_configure(cfg, {"action": "rotate", "csrf": _csrf(page.text)})
    assert confirm.status_code == 200
    assert "Rotate secrets?" in confirm.text
    assert "keep the old values until you redeploy" in confirm.text
    assert _envs(e2e, "ACME_API_KEY") == before  # nothing rotated yet
    done = browser.post_configure(cfg, {"action": "rotate-confirm", "csrf": _csrf(confirm.text)})
    assert done.status_code == 303
    assert done.headers["location"] == f"/configure?configurationId={cfg}"
    after = _envs(e2e, "ACME_API_KEY")
    new = {e["value"] for name in team_projects for e in after[name]}
    assert len(new) == 1
    assert new != old
    assert all(len(after[name]) == 2 for name in team_projects)  # sensitive + development
    secret = e2e.services().store.get_secrets(cfg)["api_key"]
    assert new == {secret}
    [line] = _audit(caplog, "audit: secrets rotated")
    assert (line.event, line.configuration_id, line.outcome) == ("rotation", cfg, "done")
    shown = browser.client.get(done.headers["location"]).text
    assert "Secrets rotated" in shown
    assert secret not in shown
    assert old.pop() not in shown
    # Post/redirect/get: a reload does not announce the rotation again.
    assert "Secrets rotated" not in browser.client.get(done.headers["location"]).text


# --- truthful states ----------------------------------------------------------------------


def test_disabled_then_enabled_on_vercel_the_page_says_so_and_resumes(
    e2e: Any, browsers: Any
) -> None:
    cfg = _install(e2e, TEAM, ("api",))
    browser = browsers()
    _signed_in(browser, cfg)
    e2e.emulator.disable_configuration(cfg)
    e2e.emulator.drain(timeout=10)
    # Vercel disabled it: the next write finds out (a resync attempt, here the cron's).
    e2e.services().provisioner.reconcile(cfg, Deadline(10))
    disabled = browser.open_configure(cfg).text
    assert "Disabled on Vercel" in disabled
    assert "once it is enabled again on Vercel" in disabled
    assert "integration_configuration_disabled" not in disabled
    assert 'value="resync"' not in disabled  # only what can work is offered
    # Meanwhile a variable went missing; enabling lets the next page load repair it.
    envs = _envs(e2e, "ACME_PROJECT_ID")["api"]
    e2e.emulator.remove_env(envs[0]["id"])
    e2e.emulator.enable_configuration(cfg)
    e2e.emulator.drain(timeout=10)
    active = browser.open_configure(cfg).text
    assert "Disabled on Vercel" not in active
    assert '"badge ok">Active<' in active
    assert 'value="resync"' in active
    assert len(_envs(e2e, "ACME_PROJECT_ID")["api"]) == 1  # work resumed, no cron needed
    inst = e2e.services().store.get_installation(cfg)
    assert inst is not None
    assert inst.status == "active"


def test_a_broken_installation_offers_reinstall_not_reload(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e, TEAM)
    browser = browsers()
    _signed_in(browser, cfg)
    e2e.services().store.set_status(cfg, "broken", "token revoked or invalid")
    html = browser.open_configure(cfg).text
    assert "Needs reinstall" in html
    slug = e2e.env["INTEGRATION_SLUG"]
    assert f'href="{e2e.emulator_url}/integrations/{slug}">Reinstall</a>' in html
    assert "Reload this page in a minute" not in html
    assert "token revoked or invalid" not in html
    assert 'value="resync"' not in html
