"""`make dev`: the KV gateway, the Vercel API emulator and the functions dev server.

All three run on threads of this one process, so Ctrl-C or SIGTERM stops everything
and nothing is left behind. Every setting has a development default below; the same
environment variable production uses overrides it, and `DEV_PORT`, `EMULATOR_PORT`,
`KV_PORT` (0 = any free port) and `REDIS_URL` (the gateway's backing Redis) move the
servers. A restart starts from a clean slate: the emulator is seeded afresh, and what an
earlier run stored in a real Redis is deleted (`forget_earlier_runs`; `DEV_KEEP_KV=1`
keeps it). The defaults are applied to `os.environ` before any function is loaded, so
functions read their configuration exactly as they do on Vercel.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, TextIO

from dev import kv_gateway
from dev.devserver import create_app as create_devserver
from dev.devserver import discover_functions
from dev.serve import RunningServer, start

__all__ = [
    "DEFAULT_PORTS",
    "DEVELOPMENT_SETTINGS",
    "ROOT",
    "Stack",
    "apply_settings",
    "development_settings",
    "forget_earlier_runs",
    "main",
    "start_stack",
]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORTS = {"DEV_PORT": 3000, "EMULATOR_PORT": 4000, "KV_PORT": 8079}

# The development value of every setting (see the README for what each one means).
# Placeholders are the local servers' URLs. None of these may ever reach production.
DEVELOPMENT_SETTINGS: dict[str, str] = {
    "VERCEL_CLIENT_ID": "oac_devclient0000000000000000",
    "VERCEL_CLIENT_SECRET": "dev-only-client-secret-not-for-production",
    "VERCEL_REDIRECT_URI": "{dev_url}/callback",
    "INTEGRATION_SLUG": "dev-integration",
    # "dev:" key id + base64("DEV-ONLY-KEY-never-use-in-prod!!"): public, so worthless.
    "TOKEN_ENCRYPTION_KEY": "dev:REVWLU9OTFktS0VZLW5ldmVyLXVzZS1pbi1wcm9kISE=",
    "UPSTASH_REDIS_REST_URL": "{kv_url}",
    "UPSTASH_REDIS_REST_TOKEN": "dev-only-kv-token-not-for-production",
    "VERCEL_API_URL": "{emulator_url}",
    "VERCEL_DASHBOARD_URL": "{emulator_url}",
    "CRON_SECRET": "dev-only-cron-secret-not-for-production",
    "ADMIN_TOKEN": "dev-only-admin-token-not-for-production",
    # Sign in with Vercel: the Vercel App (a client of its own, not the integration's
    # oac_ one), registered with the emulator. The names follow Vercel's guide
    # (https://vercel.com/docs/sign-in-with-vercel/getting-started: VERCEL_APP_CLIENT_SECRET).
    "VERCEL_APP_CLIENT_ID": "cl_devapp00000000000000000000000",
    "VERCEL_APP_CLIENT_SECRET": "dev-only-app-client-secret-not-for-production",
    "VERCEL_APP_REDIRECT_URI": "{dev_url}/configure",
    # Only the local stack points the ID token's issuer and JWKS at the emulator; the
    # product accepts these only for a loopback URL (in production both are Vercel's).
    # The authorize and token endpoints follow VERCEL_DASHBOARD_URL and VERCEL_API_URL.
    "VERCEL_OIDC_ISSUER_DEV": "{emulator_url}",
    "VERCEL_OIDC_JWKS_URL_DEV": "{emulator_url}/.well-known/jwks",
}


def development_settings(*, dev_url: str, emulator_url: str, kv_url: str) -> dict[str, str]:
    """`DEVELOPMENT_SETTINGS` for servers at these URLs."""
    urls = {"dev_url": dev_url, "emulator_url": emulator_url, "kv_url": kv_url}
    return {name: value.format(**urls) for name, value in DEVELOPMENT_SETTINGS.items()}


def apply_settings(defaults: dict[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Fill in each unset (or empty) variable; the names that took their default."""
    applied = []
    for name, value in defaults.items():
        if not environ.get(name, "").strip():
            environ[name] = value
            applied.append(name)
    return applied


def _port(environ: MutableMapping[str, str], name: str) -> int:
    raw = environ.get(name, "").strip() or str(DEFAULT_PORTS[name])
    if not raw.isdigit() or int(raw) > 65535:
        raise SystemExit(f"dev.stack: {name} must be a port number (0-65535), got {raw!r}")
    port = int(raw)
    if port == 0:  # the URLs go into the settings before the servers start
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
    return port


def _optional(module: str) -> ModuleType | None:
    """Import a part of the stack that may not be in this checkout yet.

    Missing (or still an empty directory) means None; any other import error propagates.
    Once dev/emulator/ is complete, this can become a plain import.
    """
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None
    return imported if hasattr(imported, "create_app") else None


@dataclass
class Stack:
    """The running servers, by role, and what to tell the person who started them."""

    root: Path
    servers: dict[str, RunningServer] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    defaults_used: list[str] = field(default_factory=list)
    on_stop: list[Callable[[], object]] = field(default_factory=list)
    queue: Any = None  # dev.queue.local.LocalQueue when the queue SDK is installed

    def url(self, role: str) -> str:
        return self.servers[role].url

    def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.stop()
        self.servers.clear()
        while self.on_stop:
            self.on_stop.pop()()


def _serve(stack: Stack, role: str, app: Any, port: int, env_name: str) -> RunningServer:
    try:
        server = start(app, "127.0.0.1", port)
    except OSError as exc:
        stack.stop()
        raise SystemExit(
            f"dev.stack: cannot listen on port {port} ({exc}); set {env_name}"
        ) from exc
    stack.servers[role] = server
    return server


def _start_kv_gateway(stack: Stack, port: int, environ: MutableMapping[str, str]) -> None:
    """Backed by Redis at REDIS_URL (default 127.0.0.1:6379) if it answers, else embedded."""
    backend = kv_gateway.open_backend(environ.get("REDIS_URL") or None)
    stack.on_stop.append(backend.close)
    cleared = 0 if environ.get("DEV_KEEP_KV") == "1" else forget_earlier_runs(backend, environ)
    app = kv_gateway.create_app(environ["UPSTASH_REDIS_REST_TOKEN"], backend)
    _serve(stack, "kv", app, port, "KV_PORT")
    stack.notes["kv"] = f"backed by {backend.description}"
    if cleared:
        stack.notes["kv"] += (
            f"; cleared {cleared} key(s) of an earlier run (DEV_KEEP_KV=1 keeps them)"
        )


def forget_earlier_runs(backend: kv_gateway.Backend, environ: MutableMapping[str, str]) -> int:
    """Delete what an earlier `make dev` stored under the integration's key prefix.

    The emulator keeps nothing across restarts (its accounts, configurations and tokens
    are seeded afresh), so installations a real Redis still holds would name
    configurations and tokens that no longer exist: every page would say "reinstall".
    A restart starts clean instead; only keys under `KV_KEY_PREFIX` (default `vi:`) are
    touched, and the embedded engine starts empty anyway. Returns how many were deleted."""
    prefix = (environ.get("KV_KEY_PREFIX") or "vi:").encode()
    pattern = re.sub(rb"([*?\[\]\\])", rb"\\\1", prefix) + b"*"
    deleted, cursor = 0, b"0"
    while True:
        reply = backend.execute([b"SCAN", cursor, b"MATCH", pattern, b"COUNT", b"1000"])
        assert isinstance(reply, list)
        next_cursor, keys = reply
        assert isinstance(next_cursor, bytes)
        assert isinstance(keys, list)
        names = [k for k in keys if isinstance(k, bytes)]
        if names:
            count = backend.execute([b"DEL", *names])
            deleted += count if isinstance(count, int) else 0
        if next_cursor == b"0":
            return deleted
        cursor = next_cursor


def _start_emulator(
    stack: Stack, port: int, dev_url: str, environ: MutableMapping[str, str]
) -> None:
    emulator = _optional("dev.emulator")
    if emulator is None:
        stack.notes["emulator"] = "not started: dev/emulator is not in this checkout yet"
        return
    config = emulator.EmulatorConfig(
        client_id=environ["VERCEL_CLIENT_ID"],
        client_secret=environ["VERCEL_CLIENT_SECRET"],
        integration_slug=environ["INTEGRATION_SLUG"],
        public_url=f"http://127.0.0.1:{port}",
        redirect_uri=environ["VERCEL_REDIRECT_URI"],
        webhook_url=f"{dev_url}/webhook",
        configuration_url=f"{dev_url}/configure",
        app_client_id=environ["VERCEL_APP_CLIENT_ID"],
        app_client_secret=environ["VERCEL_APP_CLIENT_SECRET"],
        app_redirect_uris=(environ["VERCEL_APP_REDIRECT_URI"],),
    )
    _serve(stack, "emulator", emulator.create_app(config), port, "EMULATOR_PORT")
    stack.notes["emulator"] = "seeded demo accounts and projects; Sign in with Vercel"


def start_stack(
    environ: MutableMapping[str, str] | None = None,
    root: Path = ROOT,
    say: Callable[[str], object] = lambda _line: None,
) -> Stack:
    """Start every server, filling the development settings into `environ`; `say` is
    told each step as it starts (`main` prints them, so a slow start never looks stuck).

    Functions read `os.environ` (as on Vercel), so only the default makes a working
    stack; another mapping is for checking how settings and ports are resolved.
    """
    environ = os.environ if environ is None else environ
    for name in DEFAULT_PORTS:  # resolve 0 once, so every URL agrees
        environ[name] = str(_port(environ, name))
    ports = {name: int(environ[name]) for name in DEFAULT_PORTS}
    dev_url = f"http://127.0.0.1:{ports['DEV_PORT']}"
    stack = Stack(root)
    stack.defaults_used = apply_settings(
        development_settings(
            dev_url=dev_url,
            emulator_url=f"http://127.0.0.1:{ports['EMULATOR_PORT']}",
            kv_url=f"http://127.0.0.1:{ports['KV_PORT']}",
        ),
        environ,
    )
    say(f"Starting the KV gateway on port {ports['KV_PORT']}…")
    _start_kv_gateway(stack, ports["KV_PORT"], environ)
    say(f"Starting the Vercel API emulator on port {ports['EMULATOR_PORT']}…")
    _start_emulator(stack, ports["EMULATOR_PORT"], dev_url, environ)
    say(f"Starting the functions dev server on port {ports['DEV_PORT']}…")
    _serve(stack, "dev", create_devserver(root), ports["DEV_PORT"], "DEV_PORT")
    say("Starting the queue…")
    _start_queue(stack, dev_url, environ)
    return stack


def _start_queue(stack: Stack, dev_url: str, environ: MutableMapping[str, str]) -> None:
    """Vercel Queues, locally: the SDK's embedded queue, delivering to the dev server's
    functions over HTTP as Vercel does (dev/queue/local.py). Functions publish to it
    through the variables the SDK reads; VERCEL_REGION is what Vercel sets."""
    try:
        from dev.queue.local import LocalQueue
    except ModuleNotFoundError as exc:
        stack.notes["queue"] = f"not started: {exc.name} missing (install requirements-dev.txt)"
        return
    queue = LocalQueue(stack.root, dev_url).start()
    stack.on_stop.append(queue.stop)
    apply_settings({**queue.env(), "VERCEL_REGION": "dev1"}, environ)
    stack.queue = queue
    topics = ", ".join(sorted({t.topic for t in queue.triggers})) or "no triggers"
    stack.notes["queue"] = f"{queue.base_url}   embedded (vercel-queue), topics: {topics}"


def _banner(stack: Stack, environ: MutableMapping[str, str], out: TextIO) -> None:
    dev = stack.url("dev")
    emulator = stack.servers.get("emulator")
    kv = stack.servers.get("kv")
    lines = [
        "Local stack is running (Ctrl-C to stop).",
        "",
        f"  Functions dev server  {dev}   public/, api/*.py, vercel.json",
        f"  Vercel API emulator   {emulator.url if emulator else '-'}   "
        + stack.notes.get("emulator", ""),
        f"  KV gateway            {kv.url if kv else '-'}   {stack.notes.get('kv', '')}",
        f"  Queue                 {stack.notes.get('queue', '-')}",
        "",
        "Open:",
        f"  Landing page          {dev}/",
    ]
    if emulator:
        slug = environ["INTEGRATION_SLUG"]
        lines.append(f"  Install (emulator)    {emulator.url}/integrations/{slug}/new")
        lines.append(
            f"  Sign in with Vercel   {emulator.url}/.well-known/oauth-authorization-server"
        )
        lines.append(
            f"  Who is signed in      {emulator.url}/_emulator/signed-in-user"
            ' (PUT {"username": "outsider"} to switch)'
        )
    lines.append(f"  Health                {dev}/health")
    routes = ", ".join(fn.route for fn in discover_functions(stack.root)) or "none yet"
    lines += ["", f"Functions: {routes}"]
    overridden = [n for n in DEVELOPMENT_SETTINGS if n not in stack.defaults_used]
    lines.append(f"Settings from your environment: {', '.join(overridden) or 'none'}")
    lines.append("(every other setting uses its development default; see the README)")
    out.write("\n".join(lines) + "\n")
    out.flush()


def main(environ: MutableMapping[str, str] | None = None, out: TextIO = sys.stdout) -> int:
    """Run the stack until SIGINT or SIGTERM."""
    environ = os.environ if environ is None else environ
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    try:
        stack = start_stack(environ, say=say)
        say("")
        try:
            _banner(stack, environ, out)
            stop.wait()
            out.write("Stopping…\n")
            out.flush()
        finally:
            stack.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
