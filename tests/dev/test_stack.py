import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dev.stack import (
    DEVELOPMENT_SETTINGS,
    ROOT,
    apply_settings,
    development_settings,
    start_stack,
)
from lib.settings import load_settings

URLS = {
    "dev_url": "http://127.0.0.1:3000",
    "emulator_url": "http://127.0.0.1:4000",
    "kv_url": "http://127.0.0.1:8079",
}


def test_development_defaults_are_a_valid_configuration() -> None:
    settings = load_settings(development_settings(**URLS))
    assert settings.kv.url == "http://127.0.0.1:8079"
    assert settings.vercel_api_url == settings.dashboard_url == "http://127.0.0.1:4000"
    assert settings.redirect_uri == "http://127.0.0.1:3000/callback"
    assert settings.encryption_key.key_id == "dev"
    assert settings.encryption_key.key == b"DEV-ONLY-KEY-never-use-in-prod!!"
    # Every setting the design notes list has a development default.
    assert set(DEVELOPMENT_SETTINGS) >= {
        "VERCEL_CLIENT_ID",
        "VERCEL_CLIENT_SECRET",
        "VERCEL_REDIRECT_URI",
        "INTEGRATION_SLUG",
        "TOKEN_ENCRYPTION_KEY",
        "UPSTASH_REDIS_REST_URL",
        "UPSTASH_REDIS_REST_TOKEN",
        "VERCEL_API_URL",
        "VERCEL_DASHBOARD_URL",
        "CRON_SECRET",
        "ADMIN_TOKEN",
    }


def test_the_same_variables_production_uses_override_the_defaults() -> None:
    environ = {"VERCEL_CLIENT_ID": "oac_mine", "ADMIN_TOKEN": "  "}
    applied = apply_settings(development_settings(**URLS), environ)
    assert environ["VERCEL_CLIENT_ID"] == "oac_mine"
    assert "VERCEL_CLIENT_ID" not in applied
    assert environ["ADMIN_TOKEN"] == DEVELOPMENT_SETTINGS["ADMIN_TOKEN"]  # blank counts as unset
    assert set(applied) == set(DEVELOPMENT_SETTINGS) - {"VERCEL_CLIENT_ID"}


@pytest.mark.parametrize("value", ["abc", "-1", "70000"])
def test_a_bad_port_is_refused_by_name(value: str) -> None:
    with pytest.raises(SystemExit, match="DEV_PORT"):
        start_stack({"DEV_PORT": value})


def test_a_busy_port_is_reported_with_its_variable() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        environ = {"DEV_PORT": str(port), "EMULATOR_PORT": "0", "KV_PORT": "0"}
        with pytest.raises(SystemExit, match="DEV_PORT"):
            start_stack(environ)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def has_part(module: str) -> bool:
    """Whether a part of the stack that lands separately is in this checkout."""
    try:
        imported = __import__(module, fromlist=["create_app"])
    except ModuleNotFoundError:
        return False
    return hasattr(imported, "create_app")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_make_dev_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    ports = {"DEV_PORT": free_port(), "EMULATOR_PORT": free_port(), "KV_PORT": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in DEVELOPMENT_SETTINGS}
    env.update({k: str(v) for k, v in ports.items()})
    env["INTEGRATION_SLUG"] = "from-my-env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dev.stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    dev = f"http://127.0.0.1:{ports['DEV_PORT']}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                home = httpx.get(dev + "/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the dev server never answered"
                time.sleep(0.05)
        assert home.status_code == 200
        assert "<html" in home.text.lower()
        health = httpx.get(dev + "/health", timeout=10)
        assert health.headers["content-type"] == "application/json"
        assert health.status_code == 200, health.text  # configured, and the KV answers
        assert health.json()["kv"]["ok"] is True
        if has_part("dev.emulator"):
            install = f"http://127.0.0.1:{ports['EMULATOR_PORT']}/integrations/from-my-env/new"
            assert httpx.get(install, timeout=10).status_code == 200
        assert children_of(proc.pid) == []  # threads only: nothing can be left behind
    finally:
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"dev.stack did not stop within 5 s of {sig.name}:\n{out}\n{err}")
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"Landing page          {dev}/" in out
    assert f"{dev}/health" in out
    assert "Settings from your environment: INTEGRATION_SLUG" in out
    for port in ports.values():
        assert not listening(port), f"port {port} still open after {sig.name}"


def test_dev_key_is_labelled_as_such() -> None:
    key = DEVELOPMENT_SETTINGS["TOKEN_ENCRYPTION_KEY"].split(":", 1)[1]
    assert b"DEV-ONLY" in base64.b64decode(key)
