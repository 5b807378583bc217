"""The emulator's dashboard shows what an install wrote, and its pages fit a phone.

HTTP tests check the variables (plain in clear, encrypted as "Encrypted", sensitive
masked); the browser test opens the consent page, a configuration page and a project's
variables in Chromium at 390 px, light and dark, and requires no sideways scrolling and
0 axe-core violations. Without Chromium or axe-core the browser test skips saying how to
install them, and fails under CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.dev.emulator.support import Installation, Stack

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
AXE_JS = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SECRET_ENCRYPTED = "encrypted-value-never-shown"
SECRET_SENSITIVE = "sensitive-value-never-shown"


def _seed_vars(stack: Stack) -> tuple[Installation, str]:
    team = stack.team()["id"]
    web = next(p["id"] for p in stack.projects_of(team) if p["name"] == "web")
    installation = stack.install(team, "selected", [web])
    api = stack.api(installation)
    created = api.post(
        "/v10/projects/web/env",
        json=[
            {
                "key": "PLAIN_URL",
                "value": "https://example.test",
                "type": "plain",
                "target": ["production", "preview"],
            },
            {
                "key": "API_KEY",
                "value": SECRET_ENCRYPTED,
                "type": "encrypted",
                "target": ["development"],
            },
            {
                "key": "DB_PASSWORD",
                "value": SECRET_SENSITIVE,
                "type": "sensitive",
                "target": ["production"],
            },
        ],
    )
    assert created.status_code == 201, created.text
    assert created.json()["failed"] == []
    stack.control(
        "POST", "/projects/web/env", json={"key": "BY_HAND", "value": "x", "owner": "acme"}
    )
    path = f"/acme/~/integrations/{stack.config.slug}/{installation.configuration_id}"
    return installation, path


def test_configuration_page_lists_the_variables_masked(stack: Stack) -> None:
    _, path = _seed_vars(stack)
    page = stack.client().get(path).text
    assert "<h2>Environment variables</h2>" in page
    assert 'href="/acme/web/settings/environment-variables"' in page
    assert "PLAIN_URL" in page
    assert "https://example.test" in page
    assert "Production, Preview" in page
    assert "API_KEY</code> Encrypted" in page
    assert "DB_PASSWORD" in page
    assert "(Sensitive)" in page
    assert SECRET_ENCRYPTED not in page
    assert SECRET_SENSITIVE not in page
    assert f"added by {stack.config.name}" in page
    assert "added by a person" in page
    # Only the granted project: `api` is another project of acme.
    assert 'href="/acme/api/settings/environment-variables"' not in page


def test_project_variables_page(stack: Stack) -> None:
    _seed_vars(stack)
    client = stack.client()
    page = client.get("/acme/web/settings/environment-variables")
    assert page.status_code == 200
    assert "PLAIN_URL" in page.text
    assert SECRET_SENSITIVE not in page.text
    assert "Changes apply to new deployments." in page.text
    empty = client.get("/acme/docs/settings/environment-variables")
    assert "No environment variables." in empty.text
    assert client.get("/acme/nope/settings/environment-variables").status_code == 404
    home = client.get("/").text
    assert 'href="/acme/web/settings/environment-variables"' in home
    assert 'href="/dev-user/my-blog/settings/environment-variables"' in home


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = None
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing = f"Chromium ({CHROMIUM}) is missing: apt-get install -y chromium"
    elif not AXE_JS.is_file():
        missing = "axe-core is missing: npm ci --prefix tests/browser"
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: {missing}", pytrace=False)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            headless=True,
        )
        yield launched
        launched.close()


def _consent_url(stack: Stack) -> str:
    query = (
        f"client_id={stack.config.app_client_id}"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fconfigure&response_type=code"
        "&scope=openid+email+profile&state=s&nonce=n&code_challenge_method=S256"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    return f"{stack.url}/oauth/authorize?{query}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_fit_a_phone_without_axe_violations(stack: Stack, browser: Any, scheme: str) -> None:
    _, path = _seed_vars(stack)
    pages = [
        _consent_url(stack),
        stack.url + path,
        stack.url + "/acme/web/settings/environment-variables",
        stack.url + "/",
    ]
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, color_scheme=scheme
    )
    axe = AXE_JS.read_text(encoding="utf-8")
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        for url in pages:
            answer = page.goto(url)
            assert answer is not None
            assert answer.status == 200, url
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{urlsplit(url).path} scrolls sideways by {overflow}px"
            page.add_script_tag(content=axe)
            violations = page.evaluate("async () => (await axe.run(document)).violations")
            assert [v["id"] for v in violations] == [], urlsplit(url).path
        assert errors == []
    finally:
        context.close()
