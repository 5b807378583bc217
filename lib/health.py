"""What `/health` reports: is this deployment configured, and can it reach its KV?

Operators paste two URLs into the Integration Console and deploy; this is the page that
tells them whether that worked. Anyone may ask whether it is healthy (`status` only:
"ok", "degraded" when the KV does not answer, "misconfigured"); the detailed report —
which variables are wrong (by name, never a value), which settings are set, URLs, the
encryption key id, the KV round trip and the deployed version — needs the admin token,
since every one of those helps an attacker map the deployment.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from lib.kv.client import KVError, get_kv
from lib.settings import Settings, SettingsError, get_settings

__all__ = ["admin_token", "check", "public"]

# A variable named in a problem ("VERCEL_CLIENT_ID is not set"): what to go and fix.
_VARIABLE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def check() -> tuple[int, dict[str, Any]]:
    """(HTTP status, the detailed report). 503 when misconfigured or the KV does not
    answer. For operators only: `public` is what anyone else sees."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        variables = sorted({v for p in exc.problems for v in _VARIABLE.findall(p)})
        return 503, {
            "status": "misconfigured",
            "problems": exc.problems,
            "variables": variables,
            "version": _version(),
        }
    report: dict[str, Any] = {
        "status": "ok",
        "config": _config(settings),
        "kv": _kv(settings),
        "version": _version(),
    }
    if not report["kv"]["ok"]:
        report["status"] = "degraded"
        return 503, report
    return 200, report


def public(report: dict[str, Any]) -> dict[str, Any]:
    """What an unauthenticated caller (a monitor, anyone) may see: healthy or not."""
    return {"status": report["status"]}


def admin_token() -> str | None:
    """The token that unlocks the detailed report: the admin API's (`/provision`). Read
    straight from the environment when the settings are invalid, so an operator can
    still see what is wrong with them."""
    try:
        return get_settings().admin_token
    except SettingsError:
        return os.environ.get("ADMIN_TOKEN", "").strip() or None


def _version() -> dict[str, str | None]:
    # Vercel's system environment variables
    # (https://vercel.com/docs/environment-variables/system-environment-variables).
    return {
        "commit": (os.environ.get("VERCEL_GIT_COMMIT_SHA") or "")[:12] or None,
        "deployment": os.environ.get("VERCEL_DEPLOYMENT_ID") or None,
        "environment": os.environ.get("VERCEL_ENV") or None,
    }


def _config(settings: Settings) -> dict[str, Any]:
    return {
        "kv_source": settings.kv.source,
        "vercel_api_url": settings.vercel_api_url,
        "dashboard_url": settings.dashboard_url,
        "encryption_key_id": settings.encryption_key.key_id,
        "old_encryption_keys": len(settings.old_encryption_keys),
        "on_vercel": settings.on_vercel,
        # Which optional features are usable; presence only, never values.
        "install_flow": bool(settings.redirect_uri),
        "external_install": bool(settings.integration_slug),
        "admin_api": bool(settings.admin_token),
        "cron_sweep": bool(settings.cron_secret),
    }


def _kv(settings: Settings) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        kv = get_kv(settings.kv.url, settings.kv.token, timeout_s=settings.kv_timeout_s)
        reply = kv.ping()
    except KVError as exc:
        return {"ok": False, "error": type(exc).__name__, "detail": str(exc)}
    latency = round((time.perf_counter() - started) * 1000, 2)
    return {"ok": reply == "PONG", "latency_ms": latency}
