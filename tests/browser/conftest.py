"""Real-browser fixtures: Debian's Chromium driven by Playwright, on the e2e stack.

Nothing here downloads a browser: Playwright's Python wheel carries its driver, and the
browser is the system's `/usr/bin/chromium` (`CHROMIUM_PATH` overrides). Without it the
tests skip locally with the command that installs it; with `CI=true` they fail instead,
so a CI run can never go green by skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dev.stack import ROOT

CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "artifacts" / "browser"
# What the machine needs (Chromium's own start-up traffic is refused by a closed network).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _missing(what: str, install: str) -> None:
    message = f"{what} is missing; install it with: {install}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for these tests (closed before other packages run); each
    test opens its own context."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _missing(f"Chromium ({CHROMIUM})", "apt-get update && apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture(scope="package")
def axe_source() -> str:
    """axe-core, the accessibility engine, from the lock file's exact version."""
    if not AXE_JS.is_file():
        _missing("axe-core (tests/browser/node_modules)", "npm ci --prefix tests/browser")
    return AXE_JS.read_text(encoding="utf-8")


@pytest.fixture(scope="package")
def artifacts() -> Path:
    """Screenshots land here (gitignored); CI keeps the folder as the run's artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def configuration_url(e2e: Any) -> Iterator[str]:
    """Register our /configure as the integration's Configuration URL (as in the console)."""
    url = f"{e2e.dev_url}/configure"
    e2e.emulator.configure(configuration_url=url)
    yield url
    e2e.emulator.configure(configuration_url=None)


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) at a laptop's size."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def signin(e2e: Any) -> Iterator[Any]:
    """Sign in with Vercel against the emulator (as `make dev` sets it up), the Vercel
    App's Authorization Callback URL being our /configure."""
    from lib.app import reset_services
    from lib.web.signin import reset_jwks_cache

    names = (
        "VERCEL_APP_CLIENT_ID",
        "VERCEL_APP_CLIENT_SECRET",
        "VERCEL_APP_REDIRECT_URI",
        "VERCEL_OIDC_ISSUER_DEV",
        "VERCEL_OIDC_JWKS_URL_DEV",
    )
    config = e2e.emulator.config
    redirect = f"{e2e.dev_url}/configure"
    saved = config.app_redirect_uris
    e2e.emulator.configure(app_redirect_uris=(redirect,))
    os.environ.update(
        {
            "VERCEL_APP_CLIENT_ID": config.app_client_id,
            "VERCEL_APP_CLIENT_SECRET": config.app_client_secret,
            "VERCEL_APP_REDIRECT_URI": redirect,
            "VERCEL_OIDC_ISSUER_DEV": e2e.emulator_url,
            "VERCEL_OIDC_JWKS_URL_DEV": f"{e2e.emulator_url}/.well-known/jwks",
        }
    )
    reset_services()
    reset_jwks_cache()
    try:
        yield e2e
    finally:
        for name in names:
            os.environ.pop(name, None)
        e2e.emulator.configure(app_redirect_uris=saved)
        reset_services()
        reset_jwks_cache()
