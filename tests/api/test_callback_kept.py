"""/callback's kept exchange, end to end, and the repeats of finished links: a kept
exchange passes the checks a fresh one does and never stores an older token over a newer
install; each link keeps its own; another link's says nothing of this one; a finished
link says what became of its installation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from lib.install import KEPT_MAX, is_kept_cookie
from tests.api.test_callback import (
    Browser,
    count_provisioning_round_trips,
    drop_pending_claims,
    installations,
    is_page,
    kept_name,
    kv_dump,
    leave_unsaved,
    oauth_calls,
    set_cookies,
    store_of,
    with_query,
    world,
)


@pytest.fixture
def browser(e2e: Any) -> Iterator[Browser]:
    b = Browser(e2e)
    yield b
    b.close()


def configuration_of(callback_url: str) -> str:
    return dict(parse_qsl(urlsplit(callback_url).query))["configurationId"]


def kept_cookies(browser: Browser) -> dict[str, str]:
    return {c.name: c.value or "" for c in browser.client.cookies.jar if is_kept_cookie(c.name)}


@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_an_older_kept_exchange_never_replaces_a_newer_install(
    e2e: Any, browser: Browser, named: bool
) -> None:
    """The first callback ends "not saved yet"; the person starts again from Vercel for
    the same configuration and that install stores token T2. Reloading the old tab
    (within the kept cookie's 15 minutes) must not store the older T1 over it: it answers
    "installed" (on to `next`), writes nothing and drops the kept cookie."""
    w = world(e2e)
    first = browser.authorize(w.team, start=browser.start())
    cfg = configuration_of(first)
    old_link = first if named else with_query(first, configurationId=None)
    leave_unsaved(e2e, browser, old_link)
    assert kept_name(old_link) in browser.client.cookies
    drop_pending_claims(e2e)

    again = e2e.emulator.mint_code(cfg)  # started again from Vercel: a new code
    assert [r.status_code for r in browser.follow(again["redirectUrl"])] == [302, 200]
    [newer] = installations(e2e)
    newer_token = store_of(e2e).token(newer)
    before, calls = kv_dump(e2e), oauth_calls(e2e)

    reloaded = browser.get(old_link)

    assert reloaded.status_code == 302
    assert reloaded.headers["location"] == dict(parse_qsl(urlsplit(first).query))["next"]
    [inst] = installations(e2e)
    assert store_of(e2e).token(inst) == newer_token  # T2 stays
    assert inst == newer
    assert kv_dump(e2e) == before  # nothing written (the claim it took went back)
    assert oauth_calls(e2e) == calls
    assert set_cookies(reloaded)[kept_name(old_link)]["max-age"] == "0"


def test_an_install_resumed_from_the_kept_exchange_is_checked_like_an_exchange(
    e2e: Any, browser: Browser
) -> None:
    """The kept exchange is for the team the link named. The same link altered to name
    another team is refused "doesn't match", as a fresh exchange would be: nothing is
    stored and the exchange stays kept for the real link, which then completes."""
    w = world(e2e)
    link = browser.authorize(w.team, start=browser.start())
    leave_unsaved(e2e, browser, link)
    kept = browser.client.cookies[kept_name(link)]
    drop_pending_claims(e2e)

    refused = browser.get(with_query(link, teamId="team_zzzzzzzz"))

    assert "does not match its installation" in is_page(refused, 400)
    assert installations(e2e) == []
    assert not any(map(is_kept_cookie, set_cookies(refused)))  # kept for the real link
    assert browser.client.cookies[kept_name(link)] == kept

    assert [r.status_code for r in browser.follow(link)] == [302, 200]
    [inst] = installations(e2e)
    assert (inst.owner_id, inst.team_id) == (w.team, w.team)
    assert oauth_calls(e2e) == 1


def test_two_unsaved_installs_in_one_browser_both_finish(
    e2e: Any, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each link keeps its exchange in a cookie of its own: the second outage does not
    take the first link's place, and each Retry completes its install without a new code,
    in at most 3 KV round trips besides provisioning."""
    w = world(e2e)
    a = browser.authorize(w.team, start=browser.start())
    leave_unsaved(e2e, browser, a)
    b = browser.authorize(w.user, start=browser.start())
    leave_unsaved(e2e, browser, b)
    assert set(kept_cookies(browser)) == {kept_name(a), kept_name(b)}
    drop_pending_claims(e2e)

    gateway = e2e.kv.gateway
    provisioning = count_provisioning_round_trips(e2e, monkeypatch)
    for link in (a, b):
        gateway.reset_stats()
        assert browser.get(link).status_code == 302
        assert gateway.stats()["requests"] - provisioning[-1] <= 3

    assert {i.owner_id for i in installations(e2e)} == {w.team, w.user}
    assert oauth_calls(e2e) == 2  # each code spent once
    assert kept_cookies(browser) == {}


def test_kept_cookies_per_browser_are_bounded(e2e: Any, browser: Browser) -> None:
    """Never more than `KEPT_MAX` kept exchanges ride along with every /callback."""
    for i in range(KEPT_MAX + 2):
        browser.client.cookies.set(f"vi_kept_{i:08x}", "x", domain="127.0.0.1", path="/callback")
    w = world(e2e)
    link = browser.authorize(w.user, start=browser.start())

    failed = leave_unsaved(e2e, browser, link)

    assert kept_name(link) in set_cookies(failed)
    assert kept_name(link) in kept_cookies(browser)
    assert len(kept_cookies(browser)) == KEPT_MAX


def test_another_links_kept_exchange_does_not_make_an_outage_read_as_unsaved(
    e2e: Any, browser: Browser
) -> None:
    """KV down before the exchange: nothing was spent, whatever this browser keeps for
    another link (or holds under this link's name without its exchange in it)."""
    w = world(e2e)
    a = browser.authorize(w.team, start=browser.start())
    leave_unsaved(e2e, browser, a)
    b = e2e.emulator.mint_code(scope=w.user)["redirectUrl"]
    gateway = e2e.kv.gateway

    for misplaced in (False, True):
        if misplaced:
            other = browser.client.cookies[kept_name(a)]
            browser.client.cookies.set(kept_name(b), other, domain="127.0.0.1", path="/callback")
        gateway.set_faults(error_rate=1.0, error_status=503)
        try:
            outage = browser.get(b)
        finally:
            gateway.clear_faults()
        text = is_page(outage, 503)
        assert "Nothing was lost" in text
        assert "not saved yet" not in text
        assert "Vercel completed the install" not in text
    assert oauth_calls(e2e) == 1  # A's alone


def test_a_finished_link_reloaded_after_an_uninstall_says_it_was_removed(
    e2e: Any, browser: Browser
) -> None:
    """Never Vercel's "installed" page for an installation that is gone; nothing written."""
    w = world(e2e)
    link = browser.authorize(w.team, start=browser.start())
    assert browser.follow(link)[0].status_code == 302
    e2e.emulator.delete_configuration(configuration_of(link), sync=True)
    e2e.emulator.drain(10)
    assert installations(e2e) == []
    before, calls = kv_dump(e2e), oauth_calls(e2e)

    reloaded = browser.get(link)

    text = is_page(reloaded, 410)
    assert "removed" in text
    assert "Back to Vercel" in text  # its `next` still lets Vercel's popup close
    assert kv_dump(e2e) == before
    assert oauth_calls(e2e) == calls


def test_a_reloaded_link_without_configuration_id_links_to_no_empty_configuration(
    e2e: Any, browser: Browser
) -> None:
    """A link with our state but no `configurationId` or `next`: the first answer names
    the installation; a reload cannot (the code's mark holds a digest), so it offers no
    link at all rather than one that fails."""
    w = world(e2e)
    link = with_query(
        browser.authorize(w.user, start=browser.start()), configurationId=None, next=None
    )
    first = is_page(browser.get(link), 200)
    [inst] = installations(e2e)
    assert f'href="/configure?configurationId={inst.configuration_id}"' in first

    again = is_page(browser.get(link), 200)

    assert "The integration is installed" in again
    assert "configurationId=" not in again
