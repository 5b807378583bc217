"""/configure end to end over real HTTP: the dev server, the emulator, Redis.

A `Browser` here is an httpx client that keeps cookies and follows the emulator's
install pages the way a person does (reading the forms it is shown), so every session
in these tests was earned by going through (emulated) Vercel's install flow again.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lib.crypto import EncryptionKey, Keyring, sign_token
from lib.web.session import SESSION_COOKIE, SESSION_TTL_S

TEAM = "acme"
TEAM_NAME = "Acme Inc"
PERSONAL_NAME = "Dev User"


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
        self.last_confirm_page = ""  # the emulator's "already installed" step, last seen

    def close(self) -> None:
        self.client.close()
        self.emulator.close()

    def open_configure(self, cfg: str) -> httpx.Response:
        return self.client.get("/configure", params={"configurationId": cfg})

    def post_configure(self, cfg: str, data: dict[str, str]) -> httpx.Response:
        return self.client.post("/configure", params={"configurationId": cfg}, data=data)

    def session_cookie(self) -> str | None:
        return self.client.cookies.get(SESSION_COOKIE)

    def reverify(self, cfg: str, scope_name: str) -> httpx.Response:
        """From the Configuration URL through Vercel's install pages back to /callback.

        Returns the callback's response (the session is in `Set-Cookie`).
        """
        first = self.open_configure(cfg)
        assert first.status_code == 302, first.text
        assert first.headers["location"] == f"/install?configurationId={cfg}"
        assert first.content == b""  # no data before verification
        start = self.client.get(first.headers["location"])
        assert start.status_code == 302
        # The browser's half of the state (a Secure cookie off localhost: carried by hand).
        nonce = start.headers["set-cookie"].split(";")[0]
        vercel = urlsplit(start.headers["location"])
        assert f"{vercel.scheme}://{vercel.netloc}" == self.e2e.emulator_url
        state = parse_qs(vercel.query)["state"][0]
        chooser = self.emulator.get(f"{vercel.path}?{vercel.query}")
        assert chooser.status_code == 200
        parsed = _forms(chooser.text)
        scope_id = next(i for i, text in parsed.labels.items() if text.startswith(scope_name))
        scope_id = scope_id.removeprefix("scope-")
        form = parsed.forms[0]
        params: list[tuple[str, str | int | float | bool | None]] = [
            (k, v) for k, v in form.fields if k != "scope"
        ]
        params.append(("scope", scope_id))
        confirm = self.emulator.get(form.action, params=params)
        assert confirm.status_code == 200
        form = _forms(confirm.text).forms[0]
        assert ("state", state) in form.fields
        redirected = self.emulator.post(form.action, data=dict(form.fields))
        assert redirected.status_code in (302, 303), redirected.text
        callback = urlsplit(redirected.headers["location"])
        assert callback.path == "/callback"
        self.last_confirm_page = confirm.text
        return self.client.get(f"/callback?{callback.query}", headers={"Cookie": nonce})


@pytest.fixture
def browsers(e2e: Any) -> Iterator[Any]:
    opened: list[Browser] = []

    def make(host: str | None = None) -> Browser:
        opened.append(Browser(e2e, host))
        return opened[-1]

    yield make
    for b in opened:
        b.close()


def _install(e2e: Any, scope: str = TEAM, projects: tuple[str, ...] = ()) -> str:
    ids = tuple(_project_id(e2e, name) for name in projects)
    minted = e2e.install(scope, "selected" if projects else "all", ids)
    return str(minted["configurationId"])


def _signed_in(browser: Browser, cfg: str, scope_name: str = TEAM_NAME) -> httpx.Response:
    callback = browser.reverify(cfg, scope_name)
    assert callback.status_code == 302, callback.text
    assert callback.headers["location"] == f"/configure?configurationId={cfg}"
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


# --- verification and the session cookie ------------------------------------------------


def test_without_a_session_the_page_sends_the_browser_through_vercel(
    e2e: Any, browsers: Any
) -> None:
    cfg = _install(e2e)
    browser = browsers()
    response = browser.open_configure(cfg)
    assert response.status_code == 302
    assert response.headers["location"] == f"/install?configurationId={cfg}"
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"


def test_reverification_reinstalls_on_the_same_scope_and_issues_a_session(
    e2e: Any, browsers: Any
) -> None:
    cfg = _install(e2e, TEAM, ("web", "api"))
    before = e2e.emulator.state()
    browser = browsers()
    callback = browser.reverify(cfg, TEAM_NAME)
    # Vercel issued a new code for the existing configuration: no second one exists.
    assert "already installed" in browser.last_confirm_page
    after = e2e.emulator.state()
    assert len(after["configurations"]) == len(before["configurations"]) == 1
    assert after["codes"]["issued"] == before["codes"]["issued"] + 1
    assert after["configurations"][0]["projects"] == before["configurations"][0]["projects"]

    assert callback.status_code == 302, callback.text
    assert callback.headers["location"] == f"/configure?configurationId={cfg}"
    cookie = callback.headers["set-cookie"]
    attributes = [a.strip() for a in cookie.split(";")]
    assert attributes[0].startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes
    assert "Secure" not in attributes  # http://127.0.0.1: a Secure cookie would be dropped
    max_age = int(next(a for a in attributes if a.startswith("Max-Age=")).split("=")[1])
    assert 0 < max_age <= SESSION_TTL_S <= 3600
    # Signed and bound to this configuration, expiring with the cookie.
    body = browser.session_cookie() or ""
    payload = json.loads(base64.urlsafe_b64decode(body.split(".")[0] + "=="))
    assert payload["cfg"] == cfg
    assert payload["exp"] <= time.time() + SESSION_TTL_S + 1

    page = browser.open_configure(cfg)
    assert page.status_code == 200
    assert "web" in page.text
    assert "api" in page.text


def test_the_session_cookie_is_secure_off_localhost(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e)
    browser = browsers(host="integration.example.com")
    callback = browser.reverify(cfg, TEAM_NAME)
    assert callback.status_code == 302
    attributes = [a.strip() for a in callback.headers["set-cookie"].split(";")]
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= set(attributes)


def test_reverifying_on_another_scope_opens_no_session(e2e: Any, browsers: Any) -> None:
    team_cfg = _install(e2e, TEAM)
    _install(e2e, "dev-user")
    browser = browsers()
    callback = browser.reverify(team_cfg, PERSONAL_NAME)
    assert callback.status_code == 403
    assert "different installation" in callback.text
    assert "set-cookie" not in {k.lower() for k in callback.headers}
    assert browser.session_cookie() is None
    assert browser.open_configure(team_cfg).status_code == 302


def test_a_session_for_one_configuration_shows_nothing_of_another(e2e: Any, browsers: Any) -> None:
    team_cfg = _install(e2e, TEAM, ("web",))
    personal_cfg = _install(e2e, "dev-user")
    browser = browsers()
    page = _signed_in(browser, personal_cfg, PERSONAL_NAME)
    other = browser.open_configure(team_cfg)
    assert other.status_code == 302
    assert other.headers["location"] == f"/install?configurationId={team_cfg}"
    assert other.content == b""
    # Its own form token is no key to the other configuration either.
    refused = browser.post_configure(team_cfg, {"csrf": _csrf(page.text), "action": "resync"})
    assert refused.status_code == 403
    assert "web" not in refused.text


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
    _signed_in(browser, personal_cfg, PERSONAL_NAME)
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
            assert got.status_code == 302, label
            assert got.content == b"", label
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

    assert f"Team <code>{inst.team_id}</code>" in html
    assert "3 selected projects" in html
    assert "Active" in html
    assert "Work pending" in html
    rows = {
        name: html.split(f'<th scope="row">{name}</th>')[1].split("</tr>")[0]
        for name in ("web", "api", "docs")
    }
    assert "in sync" in rows["docs"]
    assert "drift" in rows["api"]
    assert (
        "<code>ACME_DASHBOARD_URL</code> missing in production, preview, development" in rows["api"]
    )
    assert "conflict" in rows["web"]
    assert (
        "<code>ACME_PROJECT_ID</code> in production, preview is already set by you" in rows["web"]
    )
    # Keys and targets of what is managed, never a value.
    assert "<code>ACME_API_KEY</code></td><td>production, preview</td>" in html
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
    assert done.headers["location"] == f"/configure?configurationId={cfg}&done=resync"
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


def test_rotate_secrets_changes_the_value_in_every_project(e2e: Any, browsers: Any) -> None:
    cfg = _install(e2e, TEAM)
    before = _envs(e2e, "ACME_API_KEY")
    team_projects = {n for n, envs in before.items() if envs}
    assert len(team_projects) == 5
    old = {e["value"] for envs in before.values() for e in envs}
    assert len(old) == 1
    browser = browsers()
    page = _signed_in(browser, cfg)
    done = browser.post_configure(cfg, {"action": "rotate", "csrf": _csrf(page.text)})
    assert done.status_code == 303
    assert done.headers["location"].endswith("&done=rotate")
    after = _envs(e2e, "ACME_API_KEY")
    new = {e["value"] for name in team_projects for e in after[name]}
    assert len(new) == 1
    assert new != old
    assert all(len(after[name]) == 2 for name in team_projects)  # sensitive + development
    secret = e2e.services().store.get_secrets(cfg)["api_key"]
    assert new == {secret}
    shown = browser.client.get(done.headers["location"]).text
    assert "Secrets rotated" in shown
    assert secret not in shown
    assert old.pop() not in shown
