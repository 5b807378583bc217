"""The local stack in one process: no sockets, no server threads.

The Vercel API emulator, the KV gateway (over the embedded engine) and our functions
(`/name` and `/api/name` serve `api/name.py`'s `app`, as vercel.json's rewrites do) are
WSGI apps; every HTTP call between them goes through `httpx.WSGITransport`. The product code is the same as over
the network — the `upstash-redis` SDK, the Vercel client, the rewrites — only the
transport under the shared HTTP clients differs (`lib.kv.client.use_transport`,
`lib.vercel.transport.use_transport`). This is what makes thousands of lifecycle
schedules affordable (tests/invariants, `make soak`).
"""

from __future__ import annotations

import base64
import importlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from wsgiref.types import WSGIApplication

import httpx

from dev.emulator import EmulatorConfig
from dev.emulator import create_app as create_emulator
from dev.emulator.app import Emulator
from dev.kv_engine import Engine
from dev.kv_gateway import Backend, Gateway
from dev.kv_gateway import create_app as create_gateway

__all__ = ["InProcess", "Router", "running"]

# Settings allow plain http for this machine only. Nothing listens on these ports: a
# request that escaped the router would fail to connect instead of reaching a server.
FUNCTIONS_URL = "http://127.0.0.1:1"
VERCEL_URL = "http://127.0.0.1:2"
KV_URL = "http://127.0.0.1:3"
KV_TOKEN = "inprocess-kv-token"  # noqa: S105 - a local test gateway
_ENV_DROPPED = ("KV_REST_API_URL", "KV_REST_API_TOKEN", "VERCEL_ENV", "INTEGRATION_SPEC_PATH")


class Router(httpx.BaseTransport):
    """Sends each request to the WSGI app serving its origin; an unknown origin is a
    connection error, as it would be on the network."""

    def __init__(self, apps: Mapping[str, WSGIApplication]) -> None:
        self._by_origin = {
            _origin(httpx.URL(url)): httpx.WSGITransport(app=app) for url, app in apps.items()
        }

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._by_origin.get(_origin(request.url))
        if transport is None:
            raise httpx.ConnectError(f"no in-process app at {request.url.host}", request=request)
        return transport.handle_request(request)


def _origin(url: httpx.URL) -> tuple[str, int | None]:
    return url.host, url.port


def functions(environ: dict[str, Any], start_response: Any) -> Any:
    """Our functions by path, imported on first use. (dev/devserver.py does the same
    from vercel.json and each file's source on every request: too slow for a soak.)"""
    parts = [p for p in environ.get("PATH_INFO", "/").split("/") if p]
    name = parts[-1] if parts and len(parts) <= 2 and parts[:-1] in ([], ["api"]) else ""
    if not name.isidentifier() or name.startswith("_"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such function"]
    try:
        module = importlib.import_module(f"api.{name}")
    except ModuleNotFoundError:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such function"]
    return module.app(environ, start_response)


@dataclass
class InProcess:
    """Handles on the in-process stack; `http()` talks to our functions."""

    emulator: Emulator
    gateway: Gateway
    router: Router
    env: dict[str, str]

    def http(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(transport=self.router, base_url=FUNCTIONS_URL, **kwargs)

    def install(
        self,
        scope: str,
        selection: Literal["all", "selected"] = "all",
        projects: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """A full install through our /callback, as the emulator's install page does it."""
        minted = self.emulator.mint_code(
            scope=scope, project_selection=selection, projects=projects
        )
        with self.http() as client:
            response = client.get(minted["redirectUrl"])
        assert response.status_code in (302, 200), (response.status_code, response.text[:500])
        return {**minted, "response": response}


@contextmanager
def running(
    *,
    client_secret: str,
    admin_token: str,
    cron_secret: str,
    backend: Backend | None = None,
) -> Iterator[InProcess]:
    """The stack, with os.environ set as Vercel would set it; restored afterwards."""
    from lib.app import reset_services
    from lib.kv import client as kv_client
    from lib.vercel import transport as vercel_transport

    backend = backend or Engine(description="embedded engine (in process)")
    gateway = create_gateway(KV_TOKEN, backend)
    emulator = create_emulator(EmulatorConfig(client_secret=client_secret))
    emulator.configure(
        public_url=VERCEL_URL,
        redirect_uri=f"{FUNCTIONS_URL}/callback",
        webhook_url=None,
        time_scale=0.001,
    )
    router = Router({FUNCTIONS_URL: functions, VERCEL_URL: emulator, KV_URL: gateway})
    env = {
        "VERCEL_CLIENT_ID": emulator.config.client_id,
        "VERCEL_CLIENT_SECRET": client_secret,
        "VERCEL_REDIRECT_URI": f"{FUNCTIONS_URL}/callback",
        "INTEGRATION_SLUG": emulator.config.slug,
        "TOKEN_ENCRYPTION_KEY": "inprocess:"
        + base64.b64encode(b"in-process-test-key-32-bytes-ok!").decode(),
        "UPSTASH_REDIS_REST_URL": KV_URL,
        "UPSTASH_REDIS_REST_TOKEN": KV_TOKEN,
        "VERCEL_API_URL": VERCEL_URL,
        "VERCEL_DASHBOARD_URL": VERCEL_URL,
        "ADMIN_TOKEN": admin_token,
        "CRON_SECRET": cron_secret,
    }
    saved = dict(os.environ)
    for name in _ENV_DROPPED:
        os.environ.pop(name, None)
    os.environ.update(env)
    kv_client.use_transport(router)
    vercel_transport.use_transport(router)
    reset_services()
    try:
        yield InProcess(emulator, gateway, router, env)
    finally:
        kv_client.use_transport(None)
        vercel_transport.use_transport(None)
        reset_services()
        emulator.close()
        backend.close()
        os.environ.clear()
        os.environ.update(saved)
