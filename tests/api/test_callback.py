"""/callback end to end: a browser (an httpx client keeping its cookies) goes through the
emulator's real install pages, lands on our /callback over real HTTP, and follows our
answer to the emulator's `next` page. Our functions talk to the emulator and, through the
KV gateway, to Redis; assertions read the emulator's state and the KV contents directly.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lib.crypto import CryptoError, EncryptionKey, Keyring
from lib.install import STATE_COOKIE, STATE_TTL_S
from lib.kv.records import Installation
from lib.kv.store import CODE_DONE_TTL_S as CODE_TTL_S
from lib.kv.store import Store

OAUTH = "POST /v2/oauth/access_token"
PREFIX = "vi:"


# ------------------------------------------------------------------------------ helpers


@dataclass(frozen=True)
class World:
    """The emulator's seeded scopes and their projects."""

    user: str
    team: str
    projects: dict[str, list[str]]  # account id -> project ids


def world(e2e: Any) -> World:
    state = e2e.emulator.state()
    projects: dict[str, list[str]] = {}
    for p in state["projects"]:
        projects.setdefault(p["accountId"], []).append(p["id"])
    return World(state["user"]["id"], state["teams"][0]["id"], projects)


class Browser:
    """One person's browser: its own cookie jar; redirects are followed hop by hop so
    every response can be checked, and every response is kept."""

    def __init__(self, e2e: Any) -> None:
        self.e2e = e2e
        self.client = httpx.Client(timeout=30.0)
        self.responses: list[httpx.Response] = []

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        response = self.client.get(url, **kwargs)
        self.responses.append(response)
        return response

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        response = self.client.post(url, **kwargs)
        self.responses.append(response)
        return response

    def close(self) -> None:
        self.client.close()

    def start(self) -> str:
        """Our "Add to Vercel" button: the dashboard URL /install sends the browser to."""
        response = self.get(f"{self.e2e.dev_url}/install")
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def authorize(
        self,
        scope: str,
        selection: str = "all",
        projects: Sequence[str] = (),
        *,
        start: str | None = None,
    ) -> str:
        """The emulator's install pages (scope, then project access); returns the Redirect
        URL they send the browser to, not yet followed."""
        slug = self.e2e.env["INTEGRATION_SLUG"]
        page = f"{self.e2e.emulator_url}/integrations/{slug}/new"
        start = start or page
        assert self.get(start).status_code == 200
        query = dict(parse_qsl(urlsplit(start).query))
        fields = {"scope": scope, "source": query.get("source", "external")}
        if "state" in query:
            fields["state"] = query["state"]
        assert self.get(page, params=fields).status_code == 200
        form: dict[str, Any] = {**fields, "access": selection, "projects": list(projects)}
        response = self.post(page, data=form)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(f"{self.e2e.dev_url}/callback?")
        return location

    def follow(self, url: str, hops: int = 5) -> list[httpx.Response]:
        chain = [self.get(url)]
        while chain[-1].is_redirect and len(chain) <= hops:
            chain.append(self.get(urljoin(url, chain[-1].headers["location"])))
        return chain


@pytest.fixture
def browser(e2e: Any) -> Iterator[Browser]:
    b = Browser(e2e)
    yield b
    b.close()


def store_of(e2e: Any) -> Store:
    store = e2e.services().store
    assert isinstance(store, Store)
    return store


def kv_dump(e2e: Any) -> dict[str, Any]:
    """Every key and its value (sets and hashes order-free): for "nothing changed"."""
    backend = e2e.kv.gateway.backend

    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    out: dict[str, Any] = {}
    for key in e2e.kv_keys():
        k = key.encode()
        kind = text(backend.execute([b"TYPE", k]))
        if kind == "string":
            out[key] = text(backend.execute([b"GET", k]))
        elif kind == "set":
            out[key] = sorted(text(m) for m in backend.execute([b"SMEMBERS", k]))
        elif kind == "hash":
            flat = [text(v) for v in backend.execute([b"HGETALL", k])]
            out[key] = dict(zip(flat[::2], flat[1::2], strict=True))
        elif kind == "zset":
            out[key] = [text(v) for v in backend.execute([b"ZRANGE", k, b"0", b"-1"])]
        else:  # pragma: no cover - the store writes no other type
            out[key] = kind
    return out


def oauth_calls(e2e: Any) -> int:
    route = e2e.emulator.call_counts()["routes"].get(OAUTH)
    return int(route["count"]) if route else 0


def exchanged_ok(e2e: Any) -> int:
    route = e2e.emulator.call_counts()["routes"].get(OAUTH)
    return int(route["statuses"].get("200", 0)) if route else 0


def installations(e2e: Any) -> list[Installation]:
    store = store_of(e2e)
    found = [store.get_installation(key.split(":", 2)[2]) for key in e2e.kv_keys("vi:inst:*")]
    return [i for i in found if i is not None]


def tokens(e2e: Any) -> list[str]:
    store = store_of(e2e)
    return [store.token(i) for i in installations(e2e)]


def assert_no_secret(responses: Sequence[httpx.Response], secrets: Sequence[str]) -> None:
    for response in responses:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        for secret in secrets:
            assert secret not in response.text, response.url
            assert secret not in headers, response.url


def assert_no_secret_logged(logs: str, secrets: Sequence[str]) -> None:
    assert logs, "expected log lines"
    for secret in secrets:
        assert secret not in logs


def emulator_configuration(e2e: Any, cfg: str) -> dict[str, Any]:
    return next(c for c in e2e.emulator.state()["configurations"] if c["id"] == cfg)


def provisioned_projects(e2e: Any, cfg: str) -> dict[str, set[str]]:
    """project id -> keys of the env vars this configuration created on it."""
    out: dict[str, set[str]] = {}
    for project in e2e.emulator.state()["projects"]:
        keys = {e["key"] for e in project["env"] if e["configurationId"] == cfg}
        if keys:
            out[project["id"]] = keys
    return out


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts._replace(query=urlencode(query)).geturl()


def is_page(response: httpx.Response, status: int) -> str:
    """The response is one of our HTML pages with `status`; returns its text."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    return response.text


# -------------------------------------------------------------------- the happy paths

SPEC_KEYS = {"ACME_API_KEY", "ACME_DASHBOARD_URL", "ACME_PROJECT_ID"}


@pytest.mark.parametrize("scope", ["personal", "team"])
@pytest.mark.parametrize("selection", ["all", "selected"])
@pytest.mark.parametrize("started", ["ours", "marketplace"])
def test_install_through_the_emulator_pages(
    e2e: Any,
    browser: Browser,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    scope: str,
    selection: str,
    started: str,
) -> None:
    """Personal and team scopes, all or selected projects, started from our /install (with
    a state) or from the marketplace listing (without): the installation is stored under
    the right owner, its token opens only with our key, exactly the reachable projects get
    the spec's variables, and the browser ends on Vercel's `next` page."""
    w = world(e2e)
    owner = w.user if scope == "personal" else w.team
    reachable = w.projects[owner] if selection == "all" else w.projects[owner][:2]
    slug = e2e.env["INTEGRATION_SLUG"]
    if started == "ours":
        start = browser.start()
        assert start.startswith(f"{e2e.emulator_url}/integrations/{slug}/new?state=")
    else:
        start = f"{e2e.emulator_url}/integrations/{slug}/new?source=marketplace"
    chosen = reachable if selection == "selected" else []
    callback_url = browser.authorize(owner, selection, chosen, start=start)
    query = dict(parse_qsl(urlsplit(callback_url).query))
    cfg = query["configurationId"]
    assert ("state" in query) == (started == "ours")
    assert ("teamId" in query) == (scope == "team")

    chain = browser.follow(callback_url)

    assert [r.status_code for r in chain] == [302, 200]
    assert chain[0].headers["location"] == query["next"]
    assert str(chain[1].url) == query["next"]
    assert "is installed on" in chain[1].text
    assert emulator_configuration(e2e, cfg)["completedAt"] is not None

    [inst] = installations(e2e)
    assert inst.configuration_id == cfg
    assert inst.owner_id == owner
    assert inst.team_id == (w.team if scope == "team" else None)
    assert inst.user_id == w.user
    assert inst.project_selection == selection
    assert inst.status == "active"
    assert inst.source == ("marketplace" if started == "marketplace" else "external")
    if selection == "selected":
        assert sorted(inst.project_ids) == sorted(reachable)
    store = store_of(e2e)
    assert store.installations_for_owner(owner) == [cfg]
    assert store.all_installations() == [cfg]
    assert store.pending() == []  # provisioning finished within the callback
    assert set(store.get_secrets(cfg)) == {"api_key"}
    # Our state is marked used for the rest of its life; a marketplace install had none.
    marks = [kv_dump(e2e)[k] for k in e2e.kv_keys("vi:state:*")]
    assert marks == (["used"] if started == "ours" else [])

    # The token: sealed, opens with our key only, and is the real one Vercel issued.
    token = store.token(inst)
    assert token not in inst.sealed_token
    key = EncryptionKey(key_id="e2e", key=b"another-32-byte-key-for-testing!")
    with pytest.raises(CryptoError):
        Keyring(key).open_text(inst.sealed_token, aad=f"token:{cfg}")
    raw = base64.b64decode(e2e.env["TOKEN_ENCRYPTION_KEY"].split(":", 1)[1])
    assert (
        Keyring(EncryptionKey(key_id="e2e", key=raw)).open_text(
            inst.sealed_token, aad=f"token:{cfg}"
        )
        == token
    )
    with pytest.raises(CryptoError):  # bound to its configuration, too
        store.keyring.open_text(inst.sealed_token, aad="token:icfg_other")
    params = {"teamId": inst.team_id} if inst.team_id else {}
    check = httpx.get(
        f"{e2e.emulator_url}/v1/integrations/configuration/{cfg}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert check.status_code == 200

    # Provisioned: exactly the reachable projects, each with every variable of the spec.
    provisioned = provisioned_projects(e2e, cfg)
    assert sorted(provisioned) == sorted(reachable)
    assert all(keys == SPEC_KEYS for keys in provisioned.values())

    assert_no_secret(browser.responses, [token, e2e.env["VERCEL_CLIENT_SECRET"]])
    logs = capfd.readouterr()
    assert_no_secret_logged(logs.out + logs.err + caplog.text, [token])


def count_provisioning_round_trips(e2e: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the KV round trips of each provisioning run in this process, read from
    the gateway's counter around the provisioner's `reconcile` (to subtract them from a
    callback's total)."""
    gateway = e2e.kv.gateway
    provisioner = e2e.services().provisioner
    real = provisioner.reconcile
    provisioning: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        before = gateway.stats()["requests"]
        try:
            return real(*args, **kwargs)
        finally:
            provisioning.append(gateway.stats()["requests"] - before)

    monkeypatch.setattr(provisioner, "reconcile", counted)
    return provisioning


def test_kv_round_trips_per_callback_excluding_provisioning(
    e2e: Any, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round trips are counted at the KV gateway (every HTTP request it serves is one
    command, pipeline or transaction). Provisioning's own round trips are measured while
    it runs, by wrapping the provisioner's `reconcile` in the same process and reading
    the gateway's counter before and after it, then subtracted from the callback's total.
    Nothing else talks to KV meanwhile (an install fires no webhook).

    Measured: 2 for a first install (the opening and the closing transaction), and 1 for
    a repeat of a finished callback (the opening transaction alone)."""
    gateway = e2e.kv.gateway
    provisioning = count_provisioning_round_trips(e2e, monkeypatch)
    w = world(e2e)
    callback_url = browser.authorize(w.team, "all", start=browser.start())

    gateway.reset_stats()
    [first] = browser.follow(callback_url)[:1]
    total = gateway.stats()["requests"]
    assert first.status_code == 302
    assert len(provisioning) == 1
    assert provisioning[0] > 0
    assert total - provisioning[0] == 2 <= 3

    gateway.reset_stats()
    assert browser.get(callback_url).status_code == 302
    assert gateway.stats()["requests"] == 1
    assert len(provisioning) == 1  # a repeat provisions nothing


# ----------------------------------------------------------- repeats never say "invalid"


def test_double_callback_is_answered_as_done_without_a_second_exchange(
    e2e: Any, browser: Browser
) -> None:
    """A refresh or a second click on the Redirect URL (anchors.md §3 item 15): the user
    is sent on to `next` again, Vercel is not asked twice, and KV does not change."""
    w = world(e2e)
    callback_url = browser.authorize(w.user, start=browser.start())
    first = browser.follow(callback_url)
    assert [r.status_code for r in first] == [302, 200]
    before = kv_dump(e2e)

    again = browser.follow(callback_url)

    assert [r.status_code for r in again] == [302, 200]
    assert again[0].headers["location"] == first[0].headers["location"]
    assert oauth_calls(e2e) == 1
    assert kv_dump(e2e) == before
    assert len(installations(e2e)) == 1


def test_repeat_after_the_code_record_expired_still_shows_done(e2e: Any, browser: Browser) -> None:
    """Once our record of a code is gone, Vercel answers `invalid_grant`; with the
    installation on record that still means "it worked", never "invalid code"."""
    w = world(e2e)
    callback_url = browser.authorize(w.user)  # marketplace-style: no state
    assert browser.follow(callback_url)[0].status_code == 302
    [code_key] = e2e.kv_keys("vi:code:*")
    e2e.kv.gateway.backend.execute([b"DEL", code_key.encode()])
    before = kv_dump(e2e)

    again = browser.follow(callback_url)

    assert [r.status_code for r in again] == [302, 200]
    assert oauth_calls(e2e) == 2
    assert exchanged_ok(e2e) == 1
    assert kv_dump(e2e) == before


@pytest.mark.parametrize("clicks", [2, 5])
def test_concurrent_double_callback_exchanges_once(
    e2e: Any, browser: Browser, monkeypatch: pytest.MonkeyPatch, clicks: int
) -> None:
    """Requests with the same code at once (a double click, several tabs; the emulator
    holds every API call 300 ms so they overlap): one exchanges, the others find the
    code "pending", wait for its outcome, and all send the browser on to `next`."""
    import lib.install

    waits: list[str] = []
    real_wait = lib.install._await_peer

    def await_peer(store: Any, claim: Any, *args: Any) -> None:
        waits.append(claim.peer)
        real_wait(store, claim, *args)

    monkeypatch.setattr(lib.install, "_await_peer", await_peer)
    w = world(e2e)
    callback_url = browser.authorize(w.team, "all", start=browser.start())
    e2e.emulator.set_latency(300)
    barrier = threading.Barrier(clicks)
    results: list[httpx.Response] = []

    def click() -> None:
        with httpx.Client(timeout=30, cookies=browser.client.cookies) as client:
            barrier.wait()
            results.append(client.get(callback_url))

    threads = [threading.Thread(target=click) for _ in range(clicks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [r.status_code for r in results] == [302] * clicks
    assert waits == ["pending"] * (clicks - 1)  # they did overlap
    assert {r.headers["location"] for r in results} == {
        dict(parse_qsl(urlsplit(callback_url).query))["next"]
    }
    assert oauth_calls(e2e) == 1
    assert len(installations(e2e)) == 1
    assert store_of(e2e).installations_for_owner(w.team) == [installations(e2e)[0].configuration_id]
    assert len(e2e.kv_keys("vi:state:*")) == 1  # marked used once
    assert_no_secret(results, tokens(e2e))


def travel(e2e: Any, monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    """Move every clock the install flow reads `seconds` ahead: the emulator's (codes),
    the KV's (each key's remaining TTL shortened, the expired deleted) and lib.install's
    (signed states)."""
    import time as real
    import types

    import lib.install

    e2e.emulator.advance_clock(seconds)
    backend = e2e.kv.gateway.backend
    for key in e2e.kv_keys():
        left = int(backend.execute([b"PTTL", key.encode()]))
        if left < 0:
            continue  # no TTL
        if left <= seconds * 1000:
            backend.execute([b"DEL", key.encode()])
        else:
            backend.execute([b"PEXPIRE", key.encode(), str(left - seconds * 1000).encode()])
    clock = types.SimpleNamespace(
        time=lambda: real.time() + seconds, sleep=real.sleep, monotonic=real.monotonic
    )
    monkeypatch.setattr(lib.install, "time", clock)


def test_a_used_code_reloaded_twenty_minutes_later_still_lands_on_next(
    e2e: Any, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vercel's codes live 30 minutes, so a reload (a restored tab, the history) can come
    long after the install: 20 minutes on, our state has expired, yet the reload is still
    answered as done, from our memory of the code, without asking Vercel."""
    w = world(e2e)
    callback_url = browser.authorize(w.user, start=browser.start())
    next_url = dict(parse_qsl(urlsplit(callback_url).query))["next"]
    assert browser.follow(callback_url)[0].status_code == 302

    travel(e2e, monkeypatch, 20 * 60)
    again = browser.get(callback_url)

    assert again.status_code == 302, again.text[:300]
    assert again.headers["location"] == next_url
    assert oauth_calls(e2e) == 1
    assert len(installations(e2e)) == 1


def test_the_opening_claim_is_one_transaction(e2e: Any, browser: Browser) -> None:
    """The callback's opening round trip (claim the code, read the installation, mark the
    state used) is one MULTI/EXEC: Upstash runs only `/multi-exec` atomically (a
    `/pipeline` may interleave with other clients). The gateway parks the first click's
    opening transaction before any of it runs; meanwhile a second click on the same link
    sees nothing half-claimed, completes the install, and, once released, the first one
    finds the finished outcome: both land on `next`, one exchange, one installation."""
    w = world(e2e)
    callback_url = browser.authorize(w.team, start=browser.start())
    next_url = dict(parse_qsl(urlsplit(callback_url).query))["next"]
    gateway = e2e.kv.gateway
    first: list[httpx.Response] = []

    def click() -> None:
        with httpx.Client(timeout=30, cookies=browser.client.cookies) as client:
            first.append(client.get(callback_url))

    with gateway.hold(command="SET", key_glob="vi:code:*", path="/multi-exec") as opening:
        held = threading.Thread(target=click)
        held.start()
        assert opening.wait_held(timeout=20), "the claim did not come as one transaction"
        assert e2e.kv_keys() == []  # none of it ran: not the code's claim, not the mark
        second = browser.get(callback_url)
        assert second.status_code == 302
        [inst] = installations(e2e)
    held.join(30)

    assert first[0].status_code == 302
    assert {first[0].headers["location"], second.headers["location"]} == {next_url}
    assert oauth_calls(e2e) == 1
    assert installations(e2e) == [inst]
    assert len(e2e.kv_keys("vi:state:*")) == 1


def test_reinstall_on_the_same_scope_refreshes_the_token(e2e: Any, browser: Browser) -> None:
    """Vercel's answer to installing again on a scope that has the integration: a new
    code for the same configuration (vercel-api.md §1.2). The stored token is replaced,
    the record keeps its creation time, and there is still one installation."""
    w = world(e2e)
    assert browser.follow(browser.authorize(w.team, start=browser.start()))[-1].status_code == 200
    [first] = installations(e2e)
    old_token = store_of(e2e).token(first)

    callback_url = browser.authorize(w.team, start=browser.start())
    assert dict(parse_qsl(urlsplit(callback_url).query))["configurationId"] == (
        first.configuration_id
    )
    chain = browser.follow(callback_url)

    assert [r.status_code for r in chain] == [302, 200]
    [second] = installations(e2e)
    new_token = store_of(e2e).token(second)
    assert second.configuration_id == first.configuration_id
    assert new_token != old_token
    assert second.created_at == first.created_at < second.updated_at
    store = store_of(e2e)
    assert store.all_installations() == [first.configuration_id]
    assert store.installations_for_owner(w.team) == [first.configuration_id]
    assert_no_secret(browser.responses, [old_token, new_token])


# ---------------------------------------------------------------------------- states


def test_state_replay(e2e: Any, browser: Browser) -> None:
    """A used state: replaying the whole finished link is a refresh (done, nothing
    exchanged); the used state with a fresh code is refused before Vercel is asked, so
    the fresh code stays unspent."""
    w = world(e2e)
    start = browser.start()
    state = dict(parse_qsl(urlsplit(start).query))["state"]
    callback_url = browser.authorize(w.user, start=start)
    assert browser.follow(callback_url)[0].status_code == 302
    cfg = installations(e2e)[0].configuration_id

    assert browser.get(callback_url).status_code == 302
    fresh = e2e.emulator.mint_code(cfg, state=state)
    before, calls = kv_dump(e2e), oauth_calls(e2e)

    refused = browser.get(fresh["redirectUrl"])

    assert "already used" in is_page(refused, 400)
    assert 'href="/install"' in refused.text  # start again from our site
    assert oauth_calls(e2e) == calls == 1
    assert e2e.emulator.state()["codes"]["unused"] == 1
    assert kv_dump(e2e) == before


def test_state_from_another_browser_is_refused_and_burned(e2e: Any, browser: Browser) -> None:
    """A state only completes in the browser that started the install. Shown to another
    browser (or one without the cookie) it is refused before the code is exchanged, and
    it is burned: a leaked state can't be tried twice."""
    w = world(e2e)
    callback_url = browser.authorize(w.user, start=browser.start())
    assert e2e.kv_keys() == []  # nothing was stored for the state

    with httpx.Client(timeout=30) as other:
        refused = other.get(callback_url)
    assert "another browser" in is_page(refused, 400)
    assert oauth_calls(e2e) == 0
    [mark] = e2e.kv_keys("vi:state:*")
    assert kv_dump(e2e) == {mark: "used"}  # burned; the code's claim was given back

    # The rightful browser must start again; that works.
    assert "already used" in is_page(browser.get(callback_url), 400)
    chain = browser.follow(browser.authorize(w.user, start=browser.start()))
    assert [r.status_code for r in chain] == [302, 200]


def test_state_from_a_second_browser_with_its_own_cookie_is_refused(
    e2e: Any, browser: Browser
) -> None:
    """The other browser has a valid cookie of its own (it started an install too): only
    the comparison of the state's browser with this cookie can stop it."""
    w = world(e2e)
    callback_url = browser.authorize(w.user, start=browser.start())
    other = Browser(e2e)
    try:
        other.start()  # its own state and cookie
        assert other.client.cookies.get(STATE_COOKIE)
        assert other.client.cookies.get(STATE_COOKIE) != browser.client.cookies.get(STATE_COOKIE)
        refused = other.get(callback_url)
    finally:
        other.close()
    assert "another browser" in is_page(refused, 400)
    assert oauth_calls(e2e) == 0
    assert installations(e2e) == []


def test_callback_without_the_state_cookie_is_refused(e2e: Any, browser: Browser) -> None:
    w = world(e2e)
    callback_url = browser.authorize(w.user, start=browser.start())
    browser.client.cookies.clear()
    assert "another browser" in is_page(browser.get(callback_url), 400)
    assert installations(e2e) == []


def signed_state(e2e: Any, browser: Browser, *, issued: float) -> str:
    """A state as /install would have signed it at `issued` for this browser."""
    from lib.install import issue_state

    browser.start()  # sets the browser's cookie
    return issue_state(store_of(e2e).keyring, browser.client.cookies[STATE_COOKIE], now=issued)


@pytest.mark.parametrize("age", [STATE_TTL_S + 1, STATE_TTL_S * 3])
def test_expired_state_is_refused(e2e: Any, browser: Browser, age: int) -> None:
    """The expiry is signed into the state: an old one is refused; nothing is exchanged."""
    import time

    w = world(e2e)
    state = signed_state(e2e, browser, issued=time.time() - age)
    minted = e2e.emulator.mint_code(scope=w.user, state=state)

    refused = browser.get(minted["redirectUrl"])

    assert "expired" in is_page(refused, 400)
    assert oauth_calls(e2e) == 0
    assert installations(e2e) == []


def test_state_near_its_end_is_still_accepted(e2e: Any, browser: Browser) -> None:
    import time

    w = world(e2e)
    state = signed_state(e2e, browser, issued=time.time() - STATE_TTL_S + 30)
    minted = e2e.emulator.mint_code(scope=w.user, state=state)
    assert browser.get(minted["redirectUrl"]).status_code == 302


@pytest.mark.parametrize("part", ["exp", "id", "browser", "mac", "version", "old form"])
def test_forged_state_is_refused_before_kv_or_vercel(e2e: Any, browser: Browser, part: str) -> None:
    """Any change to a signed state breaks its MAC (a later expiry, another browser's
    digest, …); so does a key it was not signed with. Refused with the way to start
    again, without a KV request or a Vercel call. A state of the earlier stored form
    (a random id) is refused the same way."""
    import time

    w = world(e2e)
    state = signed_state(e2e, browser, issued=time.time())
    version, exp, ident, digest, mac = state.split(".")
    forged = {
        "exp": f"{version}.{int(exp) + 3600}.{ident}.{digest}.{mac}",
        "id": f"{version}.{exp}.{ident[::-1]}.{digest}.{mac}",
        "browser": f"{version}.{exp}.{ident}.{'A' * 22}.{mac}",
        "mac": f"{version}.{exp}.{ident}.{digest}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "version": f"v2.{exp}.{ident}.{digest}.{mac}",
        "old form": "s" * 32,
    }[part]
    minted = e2e.emulator.mint_code(scope=w.user, state=forged)
    e2e.kv.gateway.reset_stats()

    refused = browser.get(minted["redirectUrl"])

    text = is_page(refused, 400)
    assert "not valid" in text
    assert 'href="/install"' in text
    assert e2e.kv.gateway.stats()["requests"] == 0
    assert oauth_calls(e2e) == 0
    assert e2e.kv_keys() == []


@pytest.mark.parametrize(
    "cfg", ["icfg_abc", "icfg_" + "a" * 23, "icfg_" + "a" * 25, "icfg_" + "a" * 22 + "-_"]
)
def test_configuration_id_not_of_vercels_form_spends_nothing(
    e2e: Any, browser: Browser, cfg: str
) -> None:
    """`icfg_` and 24 alphanumerics, or the link is refused before the code is spent."""
    w = world(e2e)
    minted = e2e.emulator.mint_code(scope=w.user)
    assert minted["configurationId"].startswith("icfg_")
    assert len(minted["configurationId"]) == 5 + 24
    e2e.kv.gateway.reset_stats()

    refused = browser.get(with_query(minted["redirectUrl"], configurationId=cfg))

    assert "configuration is not valid" in is_page(refused, 400)
    assert oauth_calls(e2e) == 0
    assert e2e.kv.gateway.stats()["requests"] == 0
    assert e2e.emulator.state()["codes"]["unused"] == 1


# ----------------------------------------------------------------- forged parameters


def test_mismatched_configuration_or_team_is_refused(e2e: Any, browser: Browser) -> None:
    """The token Vercel returns must be for the configuration and team the link names.
    Vercel spends the code either way, but nothing is stored."""
    w = world(e2e)
    personal = e2e.emulator.install(w.user)["configurationId"]
    team = e2e.emulator.install(w.team)["configurationId"]
    forgeries: list[dict[str, str | None]] = [
        {"configurationId": team},  # another configuration
        {"teamId": w.team},  # a personal install "on a team"
        {"configurationId": "icfg_" + "z" * 24},
    ]
    for forged in forgeries:
        minted = e2e.emulator.mint_code(personal)
        before = kv_dump(e2e)
        refused = browser.get(with_query(minted["redirectUrl"], **forged))
        assert "does not match" in is_page(refused, 400)
        assert kv_dump(e2e) == before
    # A team install whose link names another team. (One naming no team is accepted on
    # the token's word: test_callback_platform.py.)
    minted = e2e.emulator.mint_code(team)
    before = kv_dump(e2e)
    refused = browser.get(with_query(minted["redirectUrl"], teamId="team_" + "y" * 24))
    assert "does not match" in is_page(refused, 400)
    assert kv_dump(e2e) == before
    assert installations(e2e) == []
    assert exchanged_ok(e2e) == 4


def evil_nexts(emulator_url: str) -> list[str]:
    """Each tricky form of an open redirect, aimed at the emulator's origin."""
    origin = urlsplit(emulator_url)
    host, port = origin.hostname, origin.port
    assert host
    assert port
    return [
        "//evil.com",
        "//evil.com/x",
        "///evil.com",
        f"http://{host}:{port}.evil.com/",
        f"http://{host}.evil.com:{port}/",
        f"http://{host}:{port}@evil.com/",
        f"http://user:pass@{host}:{port}/",
        f"http://evil.com/@{host}:{port}",
        f"http://evil.com#@{host}:{port}",
        f"http://{host}:{port}\\@evil.com/",
        f"http:\\\\{host}:{port}",
        "http:\\\\evil.com",
        "http:/evil.com",
        "http:evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        f"https://{host}:{port}/",  # another scheme
        f"http://{host}:{port + 1}/",  # another port
        f"http://{host}/",  # the default port is another port here
        f"ftp://{host}:{port}/",
        "javascript:alert(document.domain)",
        f"javascript://{host}:{port}/%0aalert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http%3A%2F%2Fevil.com",
        "%2F%2Fevil.com",
        "%6A%61%76%61%73%63%72%69%70%74:alert(1)",
        f" http://{host}:{port}/",
        f"http://{host}:{port}/\t",
        f"\x00http://{host}:{port}/",
        f"http://{host}:{port}/\r\nSet-Cookie: x=1",
        f"http://{host}:{port}/\u2028",
        f"http://{host}:{port}/é",
        f'http://{host}:{port}/"><script>alert(1)</script>',
        "http://evil.com",
        "https://evil.com",
        "evil.com",
        "",
    ]


def test_open_redirect_attempts_are_never_followed(e2e: Any, browser: Browser) -> None:
    """Every tricky `next` (see `evil_nexts`) is ignored: the install completes, the user
    sees our success page, there is no Location header, and nothing on the page links
    outside our site. The real `next` is followed (the control)."""
    w = world(e2e)
    cfg = e2e.emulator.install(w.user)["configurationId"]
    for evil in evil_nexts(e2e.emulator_url):
        minted = e2e.emulator.mint_code(cfg)
        response = browser.get(with_query(minted["redirectUrl"], next=evil))
        text = is_page(response, 200)
        assert "location" not in response.headers
        assert "The integration is installed" in text
        assert "evil.com" not in text
        assert "<script>" not in text
        assert "javascript:" not in text
    minted = e2e.emulator.mint_code(cfg)
    control = browser.get(minted["redirectUrl"])
    assert control.status_code == 302
    assert control.headers["location"] == minted["next"]


def test_markup_in_source_is_refused_and_never_echoed(e2e: Any, browser: Browser) -> None:
    w = world(e2e)
    minted = e2e.emulator.mint_code(scope=w.user)
    markup = '"><script>alert(1)</script>'
    response = browser.get(with_query(minted["redirectUrl"], source=markup))
    text = is_page(response, 400)
    assert "<script>" not in text
    assert markup not in text
    assert installations(e2e) == []


# ------------------------------------------------------------------- fuzzing


_TEXT = st.text(max_size=80) | st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300
)
# Past every limit we set (code 512, state 128, next 2048), within an HTTP request line.
_HUGE = st.sampled_from([513, 2049, 6000]).map(lambda n: "a" * n)


_FIELDS = ("code", "configurationId", "teamId", "next", "source", "state")


def _values(valid: str, extra: list[str]) -> st.SearchStrategy[list[str]]:
    """A field's values when fuzzed: absent, empty, random, huge, or repeated."""
    one = st.one_of(st.just(valid), st.sampled_from(extra) if extra else st.nothing(), _TEXT, _HUGE)
    return st.one_of(
        st.just([]), st.just([""]), one.map(lambda v: [v]), st.lists(one, min_size=2, max_size=3)
    )


@st.composite
def _fuzzed(
    draw: st.DrawFn, redirect_url: str, others: dict[str, list[str]]
) -> list[tuple[str, str]]:
    """The Redirect URL's query with one to three fields fuzzed, in any order."""
    real = dict(parse_qsl(urlsplit(redirect_url).query))
    fuzzed = draw(st.sets(st.sampled_from(_FIELDS), min_size=1, max_size=3), label="fuzzed")
    out: list[tuple[str, str]] = []
    for name in _FIELDS:
        if name in fuzzed:
            values = draw(_values(real.get(name, ""), others.get(name, [])), label=name)
        else:
            values = [real[name]] if name in real else []
        out += [(name, v) for v in values]
    return draw(st.permutations(out))


def test_every_field_fuzzed(e2e: Any, browser: Browser, capfd: pytest.CaptureFixture[str]) -> None:
    """Random, huge, empty, missing and repeated values for every parameter, mixed with
    valid ones and with the tricky `next` forms: never a 5xx, never a token in a
    response, a failed callback leaves KV exactly as it was, and there is never more
    than the one installation of the scope (with its right owner)."""
    w = world(e2e)
    cfg = e2e.emulator.install(w.team)["configurationId"]
    other = e2e.emulator.install(w.user)["configurationId"]
    browser.start()
    others = {
        "configurationId": [other, "icfg_" + "a" * 24, "icfg_\n", "icfg_é"],
        "teamId": [w.user, "team_" + "b" * 24, f"{w.team}\n"],
        "next": evil_nexts(e2e.emulator_url),
        "source": ["marketplace", "<b>x</b>", "external"],
        "state": ["A" * 32, "A" * 15, "A" * 200],
        "code": ["a" * 513, "x y"],
    }
    seen_tokens: set[str] = set()
    outcomes: dict[bool, int] = {True: 0, False: 0}

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        minted = e2e.emulator.mint_code(cfg)
        base = f"{e2e.dev_url}/callback"
        query = data.draw(_fuzzed(minted["redirectUrl"], others))
        assume(len(urlencode(query)) < 60_000)  # what an HTTP request line can carry
        before = kv_dump(e2e)
        response = browser.client.get(f"{base}?{urlencode(query)}")
        assert response.status_code < 500, response.text[:300]
        done = response.status_code == 302 or (
            response.status_code == 200 and "The integration is installed" in response.text
        )
        if response.status_code == 302:
            assert response.headers["location"] == minted["next"]
        insts = installations(e2e)
        assert [i.configuration_id for i in insts] in ([], [cfg])
        assert store_of(e2e).all_installations() in ([], [cfg])
        assert store_of(e2e).installations_for_owner(w.team) in ([], [cfg])
        for inst in insts:
            assert inst.owner_id == w.team == inst.team_id
            seen_tokens.add(store_of(e2e).token(inst))
        outcomes[done] += 1
        if not done:
            assert kv_dump(e2e) == before
        assert_no_secret([response], sorted(seen_tokens))

    run()
    assert outcomes[True] > 0, outcomes  # some examples still installed
    assert outcomes[False] > 0, outcomes
    logs = capfd.readouterr()
    assert_no_secret_logged(logs.out + logs.err, sorted(seen_tokens))


# ----------------------------------------------------------- when the exchange fails


def test_used_code_without_installation_asks_to_restart(e2e: Any, browser: Browser) -> None:
    """A code spent elsewhere (here: exchanged directly against Vercel) with no
    installation on record: 400, a page that says to start again, with a link to do so."""
    w = world(e2e)
    minted = e2e.emulator.mint_code(scope=w.user)
    spent = httpx.post(
        f"{e2e.emulator_url}/v2/oauth/access_token",
        data={
            "client_id": e2e.env["VERCEL_CLIENT_ID"],
            "client_secret": e2e.env["VERCEL_CLIENT_SECRET"],
            "code": minted["code"],
            "redirect_uri": e2e.env["VERCEL_REDIRECT_URI"],
        },
        timeout=10,
    )
    assert spent.status_code == 200
    before = kv_dump(e2e)

    refused = browser.get(minted["redirectUrl"])

    text = is_page(refused, 400)
    assert "already used or has expired" in text
    slug = e2e.env["INTEGRATION_SLUG"]
    assert f'href="{e2e.emulator_url}/integrations/{slug}/new"' in text
    assert kv_dump(e2e) == before
    assert_no_secret([refused], [spent.json()["access_token"]])


def test_expired_code_asks_to_restart(e2e: Any, browser: Browser) -> None:
    w = world(e2e)
    callback_url = browser.authorize(w.user, start=browser.start())
    e2e.emulator.advance_clock(31 * 60)
    before = kv_dump(e2e)

    refused = browser.get(callback_url)

    assert "expired" in is_page(refused, 400)
    assert kv_dump(e2e) == before  # the state went back too: nothing was used


def test_wrong_client_secret_is_a_misconfiguration(
    e2e: Any,
    browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Our credentials wrong: 500, a page that says the integration is misconfigured,
    an error line for the operator, and nothing kept (the state goes back, so once the
    operator fixes the secret the same link completes)."""
    from lib.app import reset_services

    w = world(e2e)
    callback_url = browser.authorize(w.user, start=browser.start())
    wrong = "wrong-client-secret-0123456789"
    monkeypatch.setenv("VERCEL_CLIENT_SECRET", wrong)
    reset_services()
    before = kv_dump(e2e)

    refused = browser.get(callback_url)

    text = is_page(refused, 500)
    assert "misconfigured" in text
    assert kv_dump(e2e) == before
    lines = [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")
    ]
    errors = [line for line in lines if line["level"] == "error"]
    assert any("client credentials" in line["msg"] for line in errors)
    assert wrong not in json.dumps(lines)
    assert wrong not in text

    monkeypatch.setenv("VERCEL_CLIENT_SECRET", e2e.env["VERCEL_CLIENT_SECRET"])
    reset_services()
    assert [r.status_code for r in browser.follow(callback_url)] == [302, 200]


@pytest.mark.parametrize(
    ("kind", "status"),
    [("502", 502), ("500", 502), ("503", 503), ("429", 503), ("timeout", 503), ("reset", 503)],
)
def test_vercel_down_asks_to_retry(
    e2e: Any, browser: Browser, monkeypatch: pytest.MonkeyPatch, kind: str, status: int
) -> None:
    """Vercel failing the exchange: 502 when it answered with an error, 503 when it did
    not answer (or asked us to wait); both say to retry, with Retry-After. Nothing is
    kept, so the advice is true: reloading the same link once Vercel is back completes
    the install. Our exchange budget is cut to 1 s for the timeout case."""
    from lib.app import reset_services

    monkeypatch.setenv("VERCEL_TIMEOUT_SECONDS", "1")
    reset_services()
    w = world(e2e)
    callback_url = browser.authorize(w.team, start=browser.start())
    e2e.emulator.set_faults([{"route": OAUTH, "probability": 1.0, "kinds": [kind], "timeoutS": 3}])
    before = kv_dump(e2e)

    failed = browser.get(callback_url)

    text = is_page(failed, status)
    assert failed.headers["retry-after"].isdigit()
    assert "reload this page" in text
    assert kv_dump(e2e) == before
    assert installations(e2e) == []

    e2e.emulator.clear_faults()
    assert [r.status_code for r in browser.follow(callback_url)] == [302, 200]
    assert len(installations(e2e)) == 1


def test_storage_down_at_the_start_is_a_503(e2e: Any, browser: Browser) -> None:
    w = world(e2e)
    callback_url = browser.authorize(w.user)
    e2e.kv.gateway.set_faults(error_rate=1.0, error_status=503)
    try:
        failed = browser.get(callback_url)
    finally:
        e2e.kv.gateway.clear_faults()
    text = is_page(failed, 503)
    assert "storage" in text
    assert "Nothing was lost" in text  # true: nothing was spent yet
    assert 'href="">Retry' in text
    assert failed.headers["retry-after"].isdigit()
    assert oauth_calls(e2e) == 0
    assert [r.status_code for r in browser.follow(callback_url)] == [302, 200]


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Each Set-Cookie of a response: name -> {"value": …, lower-cased attributes…}."""
    out: dict[str, dict[str, str]] = {}
    for name, header in response.headers.multi_items():
        if name.lower() != "set-cookie":
            continue
        first, *attrs = [part.strip() for part in header.split(";")]
        key, value = first.split("=", 1)
        parsed = {"value": value}
        for attr in attrs:
            k, _, v = attr.partition("=")
            parsed[k.lower()] = v
        out[key] = parsed
    return out


def kept_name(callback_url: str) -> str:
    """The name of the cookie that keeps this link's exchange (one per link)."""
    from lib.install import CallbackParams, kept_cookie

    code = dict(parse_qsl(urlsplit(callback_url).query))["code"]
    return kept_cookie(CallbackParams(code, None, None, None, None, None))


def leave_unsaved(e2e: Any, browser: Browser, callback_url: str) -> httpx.Response:
    """The browser follows `callback_url`; the code is spent at Vercel, then KV fails the
    closing write and all else until this returns (the failed attempt's "pending" claim
    is left, as the outage leaves it). Returns the answer: "not saved yet"."""
    gateway = e2e.kv.gateway
    answers: list[httpx.Response] = []
    # The closing write: the one single-command request naming a record (the claim reads
    # it inside its /multi-exec). Cancelled, not released: no `with`, whose exit would
    # let it run.
    closing = gateway.hold(key_glob="vi:inst:*", path="/")
    click = threading.Thread(target=lambda: answers.append(browser.get(callback_url)))
    click.start()
    try:
        assert closing.wait_held(timeout=20)
        gateway.set_faults(error_rate=1.0, error_status=503)  # KV goes down
        closing.cancel()  # the closing write fails without running (its retry too)
        click.join(30)
    finally:
        gateway.clear_faults()
    [failed] = answers
    assert "not saved yet" in is_page(failed, 503)
    return failed


def drop_pending_claims(e2e: Any) -> None:
    """What 60 s do to the claims an outage could not give back: they expire."""
    dump = kv_dump(e2e)
    for key in e2e.kv_keys("vi:code:*"):
        if dump[key] == "pending":
            e2e.kv.gateway.backend.execute([b"DEL", key.encode()])


def test_a_completed_install_survives_kv_failing_after_the_exchange(
    e2e: Any, browser: Browser, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 11, invariant 5, with the gateway's faults: the code is spent at Vercel, then
    KV fails the closing write (and everything after it). The page says so, with Retry;
    what the exchange returned is kept sealed in an HttpOnly cookie for /callback only. A
    reload during the outage says the same (never "still being completed"); once KV is
    back, a reload stores the installation without a new code, provisions it, and sends
    the browser on to `next`. The code was spent once."""
    from lib.install import KEPT_TTL_S, is_kept_cookie

    w = world(e2e)
    callback_url = browser.authorize(w.team, start=browser.start())
    query = dict(parse_qsl(urlsplit(callback_url).query))
    cfg = query["configurationId"]
    gateway = e2e.kv.gateway
    answers: list[httpx.Response] = []
    # The closing write: the one single-command request naming the record (the claim
    # reads it inside its /multi-exec).
    # (Cancelled, not released: no `with`, whose exit would let it run.)
    closing = gateway.hold(key_glob=f"vi:inst:{cfg}", path="/")
    click = threading.Thread(target=lambda: answers.append(browser.get(callback_url)))
    click.start()
    assert closing.wait_held(timeout=20)
    assert exchanged_ok(e2e) == 1  # the code is spent
    gateway.set_faults(error_rate=1.0, error_status=503)  # KV goes down
    closing.cancel()  # the closing write fails without running (its retry too)
    click.join(30)
    [failed] = answers

    text = is_page(failed, 503)
    assert "not saved yet" in text
    assert '<a class="button" href="">Retry</a>' in text  # this very URL, not echoed
    assert "Nothing was lost" not in text
    assert failed.headers["retry-after"].isdigit()
    kept = set_cookies(failed)[kept_name(callback_url)]
    assert kept["path"] == "/callback"
    assert kept["max-age"] == str(KEPT_TTL_S)
    assert kept["samesite"] == "Lax"
    assert "httponly" in kept
    assert kept["value"] not in text
    assert installations(e2e) == []

    # A reload while KV is still down: the same honest page, never "still being completed".
    during = browser.get(callback_url)
    text = is_page(during, 503)
    assert "not saved yet" in text
    assert "still being completed" not in text
    assert 'href="">Retry' in text
    assert not any(map(is_kept_cookie, set_cookies(during)))  # the browser keeps what it has

    gateway.clear_faults()  # KV is back
    chain = browser.follow(callback_url)

    assert [r.status_code for r in chain] == [302, 200]
    assert chain[0].headers["location"] == query["next"]
    assert set_cookies(chain[0])[kept_name(callback_url)]["max-age"] == "0"  # its work is done
    assert not any(map(is_kept_cookie, browser.client.cookies))
    [inst] = installations(e2e)
    assert inst.configuration_id == cfg
    assert inst.owner_id == w.team
    assert store_of(e2e).installations_for_owner(w.team) == [cfg]
    assert sorted(provisioned_projects(e2e, cfg)) == sorted(w.projects[w.team])
    assert oauth_calls(e2e) == 1  # spent once: no new code, no second exchange
    assert e2e.emulator.state()["codes"]["unused"] == 0
    token = store_of(e2e).token(inst)
    assert token not in kept["value"]
    assert_no_secret(browser.responses, [token])
    logs = capfd.readouterr()
    assert_no_secret_logged(logs.out + logs.err, [token, kept["value"]])

    # And the link is done for good.
    assert browser.get(callback_url).status_code == 302
    assert oauth_calls(e2e) == 1


def test_the_kept_cookie_is_secure_when_deployed(e2e: Any) -> None:
    """Served on a public host (here: the function called directly, as Vercel's edge
    would, with that Host), the kept exchange's cookie is Secure as well."""
    from api.callback import app

    w = world(e2e)
    minted = e2e.emulator.mint_code(scope=w.user)
    link = "/callback?" + urlsplit(minted["redirectUrl"]).query
    gateway = e2e.kv.gateway
    closing = gateway.hold(key_glob="vi:inst:*", path="/")
    answers: list[httpx.Response] = []

    def click() -> None:
        with httpx.Client(
            transport=httpx.WSGITransport(app=app), base_url="http://127.0.0.1:3000"
        ) as client:
            answers.append(client.get(link, headers={"Host": "integration.example.com"}))

    thread = threading.Thread(target=click)
    thread.start()
    assert closing.wait_held(timeout=20)
    gateway.set_faults(error_rate=1.0, error_status=503)
    closing.cancel()
    thread.join(30)
    gateway.clear_faults()
    kept = set_cookies(answers[0])[kept_name(link)]
    assert {"secure", "httponly"} <= set(kept)
    assert (kept["samesite"], kept["path"]) == ("Lax", "/callback")


def test_a_kept_exchange_opens_only_for_its_own_link(e2e: Any, browser: Browser) -> None:
    """The sealed cookie is bound to its link's configuration and code: altered, or
    presented with another link, it is ignored, and that link runs as if it were absent
    (here: the spent code is refused honestly, with the way to start again)."""
    w = world(e2e)
    callback_url = browser.authorize(w.user)  # marketplace-style: no state
    leave_unsaved(e2e, browser, callback_url)
    name = kept_name(callback_url)
    kept = browser.client.cookies[name]

    other = e2e.emulator.mint_code(scope=w.team)  # another link, same browser
    assert browser.follow(other["redirectUrl"])[0].status_code == 302
    assert {i.owner_id for i in installations(e2e)} == {w.team}  # not the kept one
    assert browser.client.cookies[name] == kept  # still there for its own link

    # The failed attempt could not give its claim back (KV was down): it expires in 60 s.
    drop_pending_claims(e2e)
    browser.client.cookies.set(name, kept[:-2] + ("AA" if kept[-2:] != "AA" else "BB"))
    refused = browser.get(callback_url)
    assert "already used or has expired" in is_page(refused, 400)
    assert {i.owner_id for i in installations(e2e)} == {w.team}


def test_provisioning_failure_still_completes_the_install(e2e: Any, browser: Browser) -> None:
    """Env var writes failing: the install is done (the user goes on to `next`), and the
    installation stays pending for the sweep."""
    w = world(e2e)
    callback_url = browser.authorize(w.user, start=browser.start())
    e2e.emulator.set_faults(
        [{"route": "POST /v10/projects/*", "probability": 1.0, "kinds": ["500"]}]
    )
    chain = browser.follow(callback_url)
    assert [r.status_code for r in chain] == [302, 200]
    [inst] = installations(e2e)
    assert store_of(e2e).pending() == [inst.configuration_id]


def test_head_spends_nothing(e2e: Any, browser: Browser) -> None:
    w = world(e2e)
    minted = e2e.emulator.mint_code(scope=w.user)
    response = browser.client.head(minted["redirectUrl"])
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert oauth_calls(e2e) == 0


def test_success_page_when_there_is_no_next(e2e: Any, browser: Browser) -> None:
    w = world(e2e)
    minted = e2e.emulator.mint_code(scope=w.user)
    response = browser.get(with_query(minted["redirectUrl"], next=None))
    text = is_page(response, 200)
    assert "The integration is installed" in text
    assert '<link rel="stylesheet" href="/styles.css">' in text
    assert 'role="status"' in text
    names = {p["name"] for p in e2e.emulator.state()["projects"] if p["accountId"] == w.user}
    assert all(f"Provisioned: {name}" in text for name in names)


def test_code_record_lives_as_long_as_a_code(e2e: Any, browser: Browser) -> None:
    w = world(e2e)
    assert browser.follow(browser.authorize(w.user))[0].status_code == 302
    [code_key] = e2e.kv_keys("vi:code:*")
    ttl = e2e.kv.gateway.backend.execute([b"TTL", code_key.encode()])
    assert CODE_TTL_S - 60 < int(ttl) <= CODE_TTL_S
