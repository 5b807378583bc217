"""What `/health` reports: is this deployment configured, and can it reach its KV?

Operators paste two URLs into the Integration Console and deploy; this is the page that
tells them whether that worked. It names problems (variables, not values) and measures
the KV round trip, and it never reveals a secret.
"""

from __future__ import annotations

import time
from typing import Any

from lib.kv.client import KVError, get_kv
from lib.settings import Settings, SettingsError, get_settings

__all__ = ["check"]


def check() -> tuple[int, dict[str, Any]]:
    """(HTTP status, report). 503 when misconfigured or the KV does not answer."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        return 503, {"status": "misconfigured", "problems": exc.problems}
    report: dict[str, Any] = {"status": "ok", "config": _config(settings), "kv": _kv(settings)}
    if not report["kv"]["ok"]:
        report["status"] = "degraded"
        return 503, report
    return 200, report


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
