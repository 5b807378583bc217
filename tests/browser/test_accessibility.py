"""Every page a person sees, in Chromium: axe-core finds no violation at all, and no page
is wider than the screen (no sideways scrolling), on a laptop and on a 390 px phone, in
the light and the dark colour scheme. A screenshot of each is kept.

axe is injected into the page, which our CSP (rightly) refuses, so these contexts bypass
CSP; the CSP itself is proven by the person tests, which run with it and fail on any
console error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lib.web import session
from tests.browser.support import PHONE, axe_violations, page_width, shoot

SCHEMES = ("light", "dark")
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": PHONE}

Prepare = Callable[[Any], None]


def _session_cookie(e2e: Any, cfg: str) -> list[dict[str, Any]]:
    keyring = e2e.services().store.keyring
    value = session.issue(keyring, cfg)
    return [{"name": session.SESSION_COOKIE, "value": value, "url": e2e.dev_url}]


def _check(
    browser: Any,
    axe_source: str,
    artifacts: Path,
    name: str,
    url: str,
    *,
    cookies: list[dict[str, Any]] | None = None,
    then: Prepare | None = None,
) -> None:
    found: dict[str, Any] = {}
    for scheme in SCHEMES:
        for size, viewport in SIZES.items():
            context = browser.new_context(
                bypass_csp=True,
                color_scheme=scheme,
                viewport=viewport,
                is_mobile=size == "phone",
            )
            try:
                if cookies:
                    context.add_cookies(cookies)
                page = context.new_page()
                assert page.goto(url) is not None
                page.wait_for_load_state("load")
                if then is not None:
                    then(page)
                shoot(page, artifacts, f"a11y-{name}-{size}-{scheme}")
                width = page_width(page)
                if width > viewport["width"]:
                    found[f"{size}/{scheme} width"] = width
                violations = axe_violations(page, axe_source)
                if violations:
                    found[f"{size}/{scheme}"] = violations
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
        ("configure-400", "/configure"),
        ("configure-sign-in-refused", "/configure?code=abc&state=" + "s" * 32),
    ],
)
def test_static_and_error_pages(
    signin: Any, browser: Any, axe_source: str, artifacts: Path, name: str, path: str
) -> None:
    _check(browser, axe_source, artifacts, name, signin.dev_url + path)


def _installed(e2e: Any) -> str:
    e2e.emulator.add_user_env("web", "ACME_PROJECT_ID", "mine", owner="acme", type="plain")
    return str(e2e.install("acme")["configurationId"])


def test_configuration_page(signin: Any, browser: Any, axe_source: str, artifacts: Path) -> None:
    cfg = _installed(signin)
    url = f"{signin.dev_url}/configure?configurationId={cfg}"
    cookies = _session_cookie(signin, cfg)
    _check(browser, axe_source, artifacts, "configure", url, cookies=cookies)

    def confirm(page: Any) -> None:
        page.get_by_role("button", name="Rotate secrets…").click()
        page.get_by_role("heading", name="Rotate secrets?").wait_for()

    _check(browser, axe_source, artifacts, "rotate-confirm", url, cookies=cookies, then=confirm)


def test_sign_in_expired_and_not_found_pages(
    signin: Any, browser: Any, axe_source: str, artifacts: Path
) -> None:
    cfg = _installed(signin)
    url = f"{signin.dev_url}/configure?configurationId={cfg}"
    _check(browser, axe_source, artifacts, "configure-sign-in", url)
    expired = [{"name": session.SESSION_COOKIE, "value": "expired", "url": signin.dev_url}]
    _check(browser, axe_source, artifacts, "configure-expired", url, cookies=expired)
    gone = "icfg_removedremovedremoved00"
    _check(
        browser,
        axe_source,
        artifacts,
        "configure-404",
        f"{signin.dev_url}/configure?configurationId={gone}",
        cookies=_session_cookie(signin, gone),
    )


def test_sign_in_not_set_up_page(e2e: Any, browser: Any, axe_source: str, artifacts: Path) -> None:
    cfg = _installed(e2e)
    url = f"{e2e.dev_url}/configure?configurationId={cfg}"
    _check(browser, axe_source, artifacts, "configure-not-set-up", url)


def test_axe_does_find_violations(browser: Any, axe_source: str) -> None:
    """The checker is live: a page with known problems fails it."""
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


def test_the_width_check_does_find_a_wide_page(browser: Any) -> None:
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.set_content('<html><body><div style="width: 800px">wide</div></body></html>')
        assert page_width(page) > PHONE["width"]
    finally:
        context.close()


def test_landing_page_fits_a_phone_and_works_by_keyboard(
    e2e: Any, browser: Any, artifacts: Path
) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(e2e.dev_url + "/")
        assert page_width(page) <= PHONE["width"]
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
