"""A person's path through the product in a real browser, on the `make dev` stack:
our functions behind the dev server (vercel.json headers and all), the emulated Vercel,
Redis. Runs with our CSP in force: a blocked resource is a console error, which fails.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lib.web.session import SESSION_COOKIE, SESSION_TTL_S
from tests.browser.support import choose_projects, choose_scope, shoot, watched


def _api_keys(e2e: Any) -> dict[str, set[str]]:
    """ACME_API_KEY's values per project, as the emulated Vercel holds them."""
    return {
        p["name"]: {e["value"] for e in p["env"] if e["key"] == "ACME_API_KEY"}
        for p in e2e.emulator.state()["projects"]
    }


def test_install_then_configure_then_resync(
    e2e: Any, context: Any, configuration_url: str, artifacts: Path
) -> None:
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

    # Our /callback did its work and sent the browser on to Vercel's `next` page.
    page.wait_for_url(re.compile(r"/installed$"))
    assert page.url.startswith(e2e.emulator_url)
    [configuration] = e2e.emulator.state()["configurations"]
    cfg = configuration["id"]
    assert page.url.endswith(f"/{cfg}/installed")
    assert page.get_by_text("is installed on Acme Inc").is_visible()
    shoot(page, artifacts, "04-vercel-installed")
    assert {n for n, values in _api_keys(e2e).items() if values} == {"web", "api"}

    # Vercel's "Configure" → our page → verification through Vercel → our page.
    page.get_by_role("link", name="Configure").click()
    page.wait_for_url(f"{e2e.emulator_url}/integrations/**")
    choose_scope(page, "Acme Inc")
    assert page.get_by_text("already installed").is_visible()
    shoot(page, artifacts, "05-vercel-reverify")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{configuration_url}?configurationId={cfg}")
    shoot(page, artifacts, "06-configure")

    [cookie] = [c for c in context.cookies(configuration_url) if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"
    assert 0 < cookie["expires"] - _now(page) <= SESSION_TTL_S + 5
    assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts

    projects = page.get_by_role("table", name="Environment variables in each project")
    rows = projects.get_by_role("row")
    assert rows.count() == 3  # header + web + api
    for name in ("web", "api"):
        row = projects.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name))
        assert row.get_by_text("in sync").is_visible()
    html = page.content()
    assert not [v for values in _api_keys(e2e).values() for v in values if v in html]

    page.get_by_role("button", name="Resync now").click()
    page.wait_for_url(re.compile(r"done=resync$"))
    assert page.get_by_role("status").filter(has_text="Resync finished").is_visible()
    shoot(page, artifacts, "07-configure-resynced")

    watch.assert_clean()
    assert any(u.startswith(e2e.dev_url + "/callback?") for u in watch.urls)


def _now(page: Any) -> float:
    return float(page.evaluate("Date.now() / 1000"))


def test_the_same_path_works_with_javascript_off(
    e2e: Any, browser: Any, configuration_url: str
) -> None:
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
        choose_scope(page, "Dev User")
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(re.compile(r"/configure\?configurationId=icfg_"))
        before = _api_keys(e2e)
        assert len({v for n in ("my-blog", "portfolio", "notes-app") for v in before[n]}) == 1

        # Rotation sits behind a disclosure that needs no script.
        page.get_by_text("Rotate secrets…").click()
        page.get_by_role("button", name="Rotate secrets").click()
        page.wait_for_url(re.compile(r"done=rotate$"))
        assert page.get_by_text("Secrets rotated").is_visible()
        after = _api_keys(e2e)
        for name in ("my-blog", "portfolio", "notes-app"):
            assert after[name]
            assert not after[name] & before[name], name
        watch.assert_clean()
    finally:
        context.close()
