"""/callback against Vercel as it really is (issue 12), through the emulator's variants:
a Redirect URL without `teamId`, `next` on www.vercel.com, and an install cancelled on
Vercel (`error` instead of `code`)."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from tests.api.test_callback import (
    Browser,
    exchanged_ok,
    installations,
    is_page,
    kv_dump,
    with_query,
    world,
)


@pytest.fixture
def browser(e2e: Any) -> Iterator[Browser]:
    b = Browser(e2e)
    yield b
    b.close()


@pytest.fixture
def variants(e2e: Any) -> Iterator[Any]:
    try:
        yield e2e.emulator
    finally:
        e2e.emulator.configure(
            callback_omit_team_id=False, callback_omit_configuration_id=False, next_origin=None
        )


def test_team_install_without_team_id_in_the_link_is_accepted(
    e2e: Any, browser: Browser, variants: Any
) -> None:
    """Vercel turned personal accounts into teams; whether the Redirect URL then carries
    `teamId` is not pinned down. The token names the team: that is what is stored."""
    w = world(e2e)
    cfg = e2e.emulator.install(w.team)["configurationId"]
    variants.configure(callback_omit_team_id=True)
    minted = e2e.emulator.mint_code(cfg)
    assert "teamId=" not in minted["redirectUrl"]
    done = browser.get(minted["redirectUrl"])
    assert done.status_code == 302, done.text[:300]
    assert done.headers["location"] == minted["next"]
    (inst,) = [i for i in installations(e2e) if i.configuration_id == cfg]
    assert inst.team_id == w.team
    assert inst.owner_id == w.team


def test_a_team_id_that_differs_is_still_refused(e2e: Any, browser: Browser) -> None:
    w = world(e2e)
    cfg = e2e.emulator.install(w.team)["configurationId"]
    minted = e2e.emulator.mint_code(cfg)
    before = kv_dump(e2e)
    refused = browser.get(with_query(minted["redirectUrl"], teamId="team_" + "q" * 24))
    assert "does not match" in is_page(refused, 400)
    assert kv_dump(e2e) == before


def test_next_on_www_vercel_com_is_followed(e2e: Any, browser: Browser, variants: Any) -> None:
    w = world(e2e)
    cfg = e2e.emulator.install(w.user)["configurationId"]
    variants.configure(next_origin="https://www.vercel.com")
    minted = e2e.emulator.mint_code(cfg)
    assert minted["next"].startswith("https://www.vercel.com/")
    done = browser.get(minted["redirectUrl"])
    assert done.status_code == 302, done.text[:300]
    assert done.headers["location"] == minted["next"]


@pytest.mark.parametrize(
    "evil",
    [
        "https://www.vercel.com.evil.com/x",
        "http://www.vercel.com/x",
        "https://www.vercel.com:8443/x",
        "https://www.vercel.com@evil.com/x",
        "https://wwww.vercel.com/x",
    ],
)
def test_look_alikes_of_www_vercel_com_are_not_followed(
    e2e: Any, browser: Browser, evil: str
) -> None:
    w = world(e2e)
    cfg = e2e.emulator.install(w.user)["configurationId"]
    minted = e2e.emulator.mint_code(cfg)
    response = browser.get(with_query(minted["redirectUrl"], next=evil))
    text = is_page(response, 200)
    assert "location" not in response.headers
    assert "evil.com" not in text


def test_cancelled_install_is_a_friendly_page_with_no_write_and_no_call(
    e2e: Any, browser: Browser
) -> None:
    w = world(e2e)
    cfg = e2e.emulator.install(w.user)["configurationId"]
    minted = e2e.emulator.mint_code(cfg)
    e2e.emulator.reset_calls()
    before = kv_dump(e2e)
    query = {
        "error": "access_denied",
        "error_description": "The user cancelled <b>the</b> install",
        "configurationId": cfg,
        "next": minted["next"],
    }
    response = browser.get(f"{e2e.dev_url}/callback?{urlencode(query)}")
    text = is_page(response, 400)
    assert "cancelled on Vercel" in text
    assert "<b>the</b>" not in text  # the description is never echoed
    assert "The install was cancelled" in text
    # The way back: Vercel's `next`, so its install popup can close.
    assert 'href="' + html.escape(minted["next"]) + '"' in text
    assert "Back to Vercel" in text
    assert kv_dump(e2e) == before
    assert e2e.emulator.call_counts()["routes"] == {}
    assert exchanged_ok(e2e) == 0


def _started_here(e2e: Any, browser: Browser) -> str:
    """An install begun on our site (/install): the link then carries our state."""
    started = browser.get(f"{e2e.dev_url}/install")
    assert started.status_code in (302, 303), started.text[:300]
    return str(started.headers["location"])


def test_without_configuration_id_our_state_lets_the_token_name_it(
    e2e: Any, browser: Browser, variants: Any
) -> None:
    variants.configure(callback_omit_configuration_id=True)
    w = world(e2e)
    cfg = e2e.emulator.install(w.team)["configurationId"]
    minted = e2e.emulator.mint_code(cfg)
    assert "configurationId=" not in minted["redirectUrl"]
    # Without our state nothing vouches for the link: refused, nothing stored.
    before = kv_dump(e2e)
    refused = browser.get(minted["redirectUrl"])
    assert "configuration is missing" in is_page(refused, 400)
    assert kv_dump(e2e) == before
    # With the state of an install begun here, the token names the installation.
    vercel_page = _started_here(e2e, browser)
    state = dict(parse_qsl(urlsplit(vercel_page).query))["state"]
    minted = e2e.emulator.mint_code(cfg)
    done = browser.get(with_query(minted["redirectUrl"], state=state))
    assert done.status_code == 302, done.text[:300]
    assert done.headers["location"] == minted["next"]
    (inst,) = [i for i in installations(e2e) if i.configuration_id == cfg]
    assert inst.team_id == w.team
    # The same link again (a refresh): answered as done, no second exchange.
    exchanged = exchanged_ok(e2e)
    again = browser.get(with_query(minted["redirectUrl"], state=state))
    assert again.status_code in (200, 302), again.text[:300]
    assert exchanged_ok(e2e) == exchanged
