"""`python -m dev.emulator`: the emulator alone on EMULATOR_PORT (default 4000).

Settings come from the same variables as the rest of the stack: VERCEL_CLIENT_ID,
VERCEL_CLIENT_SECRET, VERCEL_CLIENT_SECRET_PREVIOUS (a secret rotation: the old secret
also works for the code exchange), INTEGRATION_SLUG, VERCEL_REDIRECT_URI, plus EMULATOR_WEBHOOK_URL,
EMULATOR_CONFIGURATION_URL and EMULATOR_TIME_SCALE; the Redirect, Webhook and
Configuration URLs default to the functions dev server on DEV_PORT (3000). Sign in with
Vercel's App: VERCEL_APP_CLIENT_ID, VERCEL_APP_CLIENT_SECRET and VERCEL_APP_REDIRECT_URI
(its Authorization Callback URL, default `/configure` on the dev server, where the product completes the sign-in).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from dev.emulator.app import create_app
from dev.emulator.config import (
    DEFAULT_APP_CLIENT_ID,
    DEFAULT_APP_CLIENT_SECRET,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_SLUG,
    EmulatorConfig,
)
from dev.serve import start


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def main() -> int:
    port = int(_env("EMULATOR_PORT", "4000"))
    dev_url = f"http://127.0.0.1:{_env('DEV_PORT', '3000')}"
    config = EmulatorConfig(
        client_id=_env("VERCEL_CLIENT_ID", DEFAULT_CLIENT_ID),
        client_secret=_env("VERCEL_CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
        previous_client_secret=_env("VERCEL_CLIENT_SECRET_PREVIOUS", "") or None,
        slug=_env("INTEGRATION_SLUG", DEFAULT_SLUG),
        redirect_uri=_env("VERCEL_REDIRECT_URI", f"{dev_url}/callback"),
        webhook_url=_env("EMULATOR_WEBHOOK_URL", f"{dev_url}/webhook"),
        configuration_url=_env("EMULATOR_CONFIGURATION_URL", f"{dev_url}/configure"),
        time_scale=float(_env("EMULATOR_TIME_SCALE", "1")),
        app_client_id=_env("VERCEL_APP_CLIENT_ID", DEFAULT_APP_CLIENT_ID),
        app_client_secret=_env("VERCEL_APP_CLIENT_SECRET", DEFAULT_APP_CLIENT_SECRET),
        app_redirect_uris=(_env("VERCEL_APP_REDIRECT_URI", f"{dev_url}/configure"),),
    )
    emulator = create_app(config)
    server = start(emulator, port=port)
    emulator.configure(public_url=server.url)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(f"Vercel API emulator on {server.url}", flush=True)
    print(f"  Install page:  {server.url}/integrations/{config.slug}/new", flush=True)
    print(f"  Control API:   {server.url}/_emulator/state", flush=True)
    print(f"  Redirect URL:  {config.redirect_uri}", flush=True)
    print(f"  Webhook URL:   {config.webhook_url}", flush=True)
    print(f"  Sign in:       {server.url}/.well-known/oauth-authorization-server", flush=True)
    stop.wait()
    server.stop()
    emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
