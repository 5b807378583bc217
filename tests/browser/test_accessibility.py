"""Accessibility of every page a person sees, checked by axe-core in Chromium.

axe is injected into the page, which our CSP (rightly) refuses, so these contexts bypass
CSP; the CSP itself is proven by the person tests, which run with it and fail on any
console error. Each page is checked in the light and the dark colour scheme (contrast
differs), and a screenshot of each is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lib.web import session
from tests.browser.support import axe_violations, shoot

SCHEMES = ("light", "dark")


def _configure_url(e2e: Any) -> str:
    """The configuration page, with the session /callback would have issued."""
    e2e.emulator.add_user_env("web", "ACME_PROJECT_ID", "mine", owner="acme", type="plain")
    cfg = e2e.install("acme")["configurationId"]
    return f"{e2e.dev_url}/configure?configurationId={cfg}"


def _check(browser: Any, e2e: Any, axe_source: str, artifacts: Path, name: str, url: str) -> None:
    found = {}
    for scheme in SCHEMES:
        context = browser.new_context(
            bypass_csp=True, color_scheme=scheme, viewport={"width": 1280, "height": 860}
        )
        try:
            if "/configure" in url:
                cfg = url.split("configurationId=")[1]
                keyring = e2e.services().store.keyring
                context.add_cookies(
                    [
                        {
                            "name": session.SESSION_COOKIE,
                            "value": session.issue(keyring, cfg),
                            "url": e2e.dev_url,
                        }
                    ]
                )
            page = context.new_page()
            response = page.goto(url)
            assert response is not None
            page.wait_for_load_state("load")
            shoot(page, artifacts, f"a11y-{name}-{scheme}")
            violations = axe_violations(page, axe_source)
            if violations:
                found[scheme] = violations
        finally:
            context.close()
    assert not found, found


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("landing", "/"),
        ("docs", "/docs"),
        ("privacy", "/privacy"),
        ("install-error", "/callback?code=abc&configurationId=icfg_abc&state=" + "s" * 32),
    ],
)
def test_static_and_error_pages_have_no_serious_violations(
    e2e: Any, browser: Any, axe_source: str, artifacts: Path, name: str, path: str
) -> None:
    _check(browser, e2e, axe_source, artifacts, name, e2e.dev_url + path)


def test_configuration_page_has_no_serious_violations(
    e2e: Any, browser: Any, axe_source: str, artifacts: Path
) -> None:
    _check(browser, e2e, axe_source, artifacts, "configure", _configure_url(e2e))


def test_axe_does_find_violations(browser: Any, axe_source: str) -> None:
    """The checker is live: a page with known serious problems fails it."""
    context = browser.new_context(bypass_csp=True)
    try:
        page = context.new_page()
        page.set_content(
            '<html><body><img src="x.png"><button></button>'
            '<p class="x">low contrast</p></body></html>'
        )
        ids = {v["id"] for v in axe_violations(page, axe_source)}
    finally:
        context.close()
    assert {"image-alt", "button-name"} <= ids


def test_landing_page_fits_a_phone_and_works_by_keyboard(
    e2e: Any, browser: Any, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(e2e.dev_url + "/")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        shoot(page, artifacts, "landing-phone")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("location.hash") == "#main"
        for _ in range(20):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Add to Vercel":
                break
        else:
            raise AssertionError("'Add to Vercel' is not reachable with the keyboard")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{e2e.emulator_url}/integrations/**")
    finally:
        context.close()
