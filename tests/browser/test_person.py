"""A person's path through the product in a real browser, on the `make dev` stack:
our functions behind the dev server (vercel.json headers and all), the emulated Vercel,
Redis. Runs with our CSP in force: a blocked resource is a console error, which fails.

The configuration page learns who the visitor is through Sign in with Vercel (the
emulator's consent page), never through Vercel's install flow.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lib.web.session import SESSION_COOKIE, SESSION_TTL_S
from tests.browser.support import (
    choose_projects,
    choose_scope,
    page_width,
    shoot,
    sign_in_with_vercel,
    watched,
)


def _api_keys(e2e: Any) -> dict[str, set[str]]:
    """ACME_API_KEY's values per project, as the emulated Vercel holds them."""
    return {
        p["name"]: {e["value"] for e in p["env"] if e["key"] == "ACME_API_KEY"}
        for p in e2e.emulator.state()["projects"]
    }


def _now(page: Any) -> float:
    return float(page.evaluate("Date.now() / 1000"))


def _projects_table(page: Any) -> Any:
    return page.get_by_role("table", name="Environment variables in each project")


def test_install_sign_in_resync_rotate_disable_enable_remove(
    signin: Any, context: Any, configuration_url: str, artifacts: Path
) -> None:
    e2e = signin
    page = context.new_page()
    watch = watched(page, tolerate=[f"{e2e.emulator_url}/favicon.ico"])

    # Our landing page → "Add to Vercel" → Vercel's install pages.
    page.goto(e2e.dev_url + "/")
    shoot(page, artifacts, "01-landing")
    page.get_by_role("link", name="Add to Vercel").first.click()
    page.wait_for_url(f"{e2e.emulator_url}/integrations/**")
    shoot(page, artifacts, "02-vercel-choose-scope")
    choose_scope(page, "Acme Inc")
    shoot(page, artifacts, "03-vercel-choose-projects")
    choose_projects(page, ["web", "api"])
    page.wait_for_url(re.compile(r"/installed$"))
    [configuration] = e2e.emulator.state()["configurations"]
    cfg = configuration["id"]
    assert page.get_by_text("is installed on Acme Inc").is_visible()
    shoot(page, artifacts, "04-vercel-installed")
    assert {n for n, values in _api_keys(e2e).items() if values} == {"web", "api"}
    codes_issued = e2e.emulator.state()["codes"]["issued"]

    # Vercel's "Configure" → our sign-in page → Vercel's consent → our page.
    page.get_by_role("link", name="Configure").click()
    page.wait_for_url(f"{configuration_url}?configurationId={cfg}")
    assert page.get_by_role("heading", name="Sign in to manage this configuration").is_visible()
    shoot(page, artifacts, "05-configure-sign-in")
    page.get_by_role("link", name="Sign in with Vercel").click()
    page.wait_for_url(f"{e2e.emulator_url}/oauth/authorize?**")
    shoot(page, artifacts, "06-vercel-consent")
    page.get_by_role("button", name="Allow").click()
    _projects_table(page).wait_for()
    assert page.url == f"{configuration_url}?configurationId={cfg}"
    shoot(page, artifacts, "07-configure")
    # Signing in installed nothing and asked Vercel for no install code.
    state = e2e.emulator.state()
    assert len(state["configurations"]) == 1
    assert state["codes"]["issued"] == codes_issued

    [cookie] = [c for c in context.cookies(configuration_url) if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/configure"
    assert 0 < cookie["expires"] - _now(page) <= SESSION_TTL_S + 5
    assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts

    assert page.get_by_text("Team Acme Inc").is_visible()
    rows = _projects_table(page).get_by_role("row")
    assert rows.count() == 3  # header + web + api
    for name in ("web", "api"):
        row = rows.filter(has=page.get_by_role("rowheader", name=name))
        assert row.get_by_text("in sync").is_visible()
        assert row.get_by_role("link", name=f"Variables on Vercel for {name}").is_visible()
    html = page.content()
    assert not [v for values in _api_keys(e2e).values() for v in values if v in html]

    # Resync: the banner shows once; a reload does not repeat it.
    page.get_by_role("button", name="Resync now").click()
    page.get_by_role("status").filter(has_text="Resync finished").wait_for()
    shoot(page, artifacts, "08-configure-resynced")
    page.reload()
    _projects_table(page).wait_for()
    assert page.get_by_text("Resync finished").count() == 0

    # Rotate: a confirmation step says what happens to the old values.
    before = _api_keys(e2e)
    page.get_by_role("button", name="Rotate secrets…").click()
    page.get_by_role("heading", name="Rotate secrets?").wait_for()
    assert page.get_by_text("keep the old values until you redeploy them").is_visible()
    shoot(page, artifacts, "09-rotate-confirm")
    assert _api_keys(e2e) == before
    page.get_by_role("button", name="Yes, rotate secrets").click()
    page.get_by_role("status").filter(has_text="Secrets rotated").wait_for()
    shoot(page, artifacts, "10-configure-rotated")
    after = _api_keys(e2e)
    for name in ("web", "api"):
        assert after[name]
        assert not after[name] & before[name], name
    page.reload()
    _projects_table(page).wait_for()
    assert page.get_by_text("Secrets rotated").count() == 0

    # Disable on Vercel's dashboard: the page says so in words and offers nothing.
    dashboard = f"{e2e.emulator_url}/acme/~/integrations/{e2e.env['INTEGRATION_SLUG']}/{cfg}"
    page.goto(dashboard)
    page.get_by_role("button", name="Disable").click()
    e2e.emulator.drain(timeout=10)
    page.goto(f"{configuration_url}?configurationId={cfg}")
    page.get_by_text("Disabled on Vercel").wait_for()
    assert page.get_by_role("button", name="Resync now").count() == 0
    assert "integration_configuration_disabled" not in page.content()
    shoot(page, artifacts, "11-configure-disabled")

    # Enable: the next load shows it active again, with its actions.
    page.goto(dashboard)
    page.get_by_role("button", name="Enable").click()
    e2e.emulator.drain(timeout=10)
    page.goto(f"{configuration_url}?configurationId={cfg}")
    page.get_by_role("button", name="Resync now").wait_for()
    assert page.get_by_text("Disabled on Vercel").count() == 0
    assert page.get_by_text("Active", exact=True).is_visible()
    shoot(page, artifacts, "12-configure-enabled")
    watch.assert_clean()

    # Remove: the page is a branded "not found" with the way back to Vercel.
    page.goto(dashboard)
    page.get_by_role("button", name="Remove integration").click()
    e2e.emulator.drain(timeout=10)
    response = page.goto(f"{configuration_url}?configurationId={cfg}")
    assert response is not None
    assert response.status == 404
    assert page.get_by_role("heading", name="This configuration was not found").is_visible()
    assert page.get_by_role("link", name="Back to Vercel").is_visible()
    shoot(page, artifacts, "13-configure-removed")
    assert page_width(page) <= 1280


def test_refusals_are_clear_pages(
    signin: Any, browser: Any, configuration_url: str, artifacts: Path
) -> None:
    e2e = signin
    cfg = e2e.install("acme")["configurationId"]
    for who, decision, heading, status in (
        ("outsider", "Allow", "You don't have access to this configuration", 403),
        ("dev-user", "Cancel", "You cancelled signing in", 401),
    ):
        e2e.emulator.sign_in(who)
        context = browser.new_context()
        context.set_default_timeout(15_000)
        try:
            page = context.new_page()
            page.goto(f"{configuration_url}?configurationId={cfg}")
            with page.expect_response(
                lambda r: r.url.startswith(configuration_url) and "state=" in r.url
            ) as answer:
                sign_in_with_vercel(page, decision)
            assert answer.value.status == status
            assert page.get_by_role("heading", name=heading).is_visible()
            assert page.get_by_role("link", name="Back to Vercel").is_visible()
            assert not [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
            shoot(page, artifacts, f"refused-{who}-{decision.lower()}")
        finally:
            context.close()


def test_the_same_path_works_with_javascript_off(
    signin: Any, browser: Any, configuration_url: str
) -> None:
    e2e = signin
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        watch = watched(page, tolerate=[f"{e2e.emulator_url}/favicon.ico"])
        page.goto(e2e.dev_url + "/")
        page.get_by_role("link", name="Add to Vercel").first.click()
        choose_scope(page, "Dev User")
        choose_projects(page, None)
        page.wait_for_url(re.compile(r"/installed$"))
        page.get_by_role("link", name="Configure").click()
        sign_in_with_vercel(page)
        _projects_table(page).wait_for()
        before = _api_keys(e2e)
        assert len({v for n in ("my-blog", "portfolio", "notes-app") for v in before[n]}) == 1
        page.get_by_role("button", name="Rotate secrets…").click()
        page.get_by_role("button", name="Yes, rotate secrets").click()
        page.get_by_text("Secrets rotated").wait_for()
        after = _api_keys(e2e)
        for name in ("my-blog", "portfolio", "notes-app"):
            assert after[name]
            assert not after[name] & before[name], name
        watch.assert_clean()
    finally:
        context.close()
