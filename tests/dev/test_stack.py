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
        "VERCEL_APP_CLIENT_ID",
        "VERCEL_APP_CLIENT_SECRET",
        "VERCEL_APP_REDIRECT_URI",
        "VERCEL_OIDC_ISSUER_DEV",
        "VERCEL_OIDC_JWKS_URL_DEV",
    }


def test_the_same_variables_production_uses_override_the_defaults() -> None:
    environ = {"VERCEL_CLIENT_ID": "oac_mine", "ADMIN_TOKEN": "  "}
    applied = apply_settings(development_settings(**URLS), environ)
    assert environ["VERCEL_CLIENT_ID"] == "oac_mine"
    assert "VERCEL_CLIENT_ID" not in applied
    assert environ["ADMIN_TOKEN"] == DEVELOPMENT_SETTINGS["ADMIN_TOKEN"]  # blank counts as unset
    assert set(applied) == set(DEVELOPMENT_SETTINGS) - {"VERCEL_CLIENT_ID"}


def test_sign_in_with_vercel_points_at_the_emulator_only_on_loopback() -> None:
    settings = development_settings(**URLS)
    assert settings["VERCEL_OIDC_ISSUER_DEV"] == "http://127.0.0.1:4000"
    assert settings["VERCEL_OIDC_JWKS_URL_DEV"] == "http://127.0.0.1:4000/.well-known/jwks"
    assert settings["VERCEL_APP_REDIRECT_URI"] == "http://127.0.0.1:3000/configure"
    assert settings["VERCEL_APP_CLIENT_ID"] != settings["VERCEL_CLIENT_ID"]
    assert "DEV" in settings["VERCEL_APP_CLIENT_SECRET"].upper()


def test_the_stack_registers_the_vercel_app_with_the_emulator() -> None:
    """The App's id, secret and callback from the environment reach the emulator: the
    consent page accepts that callback and the token endpoint that secret."""
    if not has_part("dev.emulator"):
        pytest.skip("dev/emulator is not in this checkout")
    environ = {
        "DEV_PORT": "0",
        "EMULATOR_PORT": "0",
        "KV_PORT": "0",
        "VERCEL_APP_CLIENT_ID": "cl_mine",
        "VERCEL_APP_CLIENT_SECRET": "my-app-secret",
    }
    stack = start_stack(environ)
    try:
        emulator = stack.url("emulator")
        meta = httpx.get(emulator + "/.well-known/oauth-authorization-server", timeout=10).json()
        assert meta["issuer"] == environ["VERCEL_OIDC_ISSUER_DEV"] == emulator
        assert meta["jwks_uri"] == environ["VERCEL_OIDC_JWKS_URL_DEV"]
        params = {
            "client_id": "cl_mine",
            "redirect_uri": environ["VERCEL_APP_REDIRECT_URI"],
            "response_type": "code",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
        consent = httpx.get(emulator + "/oauth/authorize", params=params, timeout=10)
        assert consent.status_code == 200
        assert "Allow" in consent.text
        code = httpx.post(
            emulator + "/oauth/authorize", data={**params, "decision": "allow"}, timeout=10
        ).headers["location"]
        token = httpx.post(
            emulator + "/login/oauth/token",
            auth=("cl_mine", "my-app-secret"),
            data={
                "grant_type": "authorization_code",
                "code": code.split("code=", 1)[1].split("&", 1)[0],
                "redirect_uri": environ["VERCEL_APP_REDIRECT_URI"],
                # RFC 7636 appendix B: the verifier of the challenge above.
                "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            },
            timeout=10,
        )
        assert token.status_code == 200, token.text
        assert token.json()["id_token"].count(".") == 2
    finally:
        stack.stop()


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
        assert health.json() == {"status": "ok"}
        operator = {"Authorization": f"Bearer {DEVELOPMENT_SETTINGS['ADMIN_TOKEN']}"}
        detail = httpx.get(dev + "/health", headers=operator, timeout=10)
        assert detail.json()["kv"]["ok"] is True
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
    # Each part says it is starting before the banner, so a slow first start is visible.
    steps = [
        f"Starting the KV gateway on port {ports['KV_PORT']}…",
        f"Starting the Vercel API emulator on port {ports['EMULATOR_PORT']}…",
        f"Starting the functions dev server on port {ports['DEV_PORT']}…",
        "Starting the queue…",
        "Local stack is running",
    ]
    positions = [out.find(step) for step in steps]
    assert -1 not in positions, out
    assert positions == sorted(positions), out
    assert f"{dev}/health" in out
    if has_part("dev.emulator"):
        emulator = f"http://127.0.0.1:{ports['EMULATOR_PORT']}"
        assert f"Sign in with Vercel   {emulator}/.well-known/oauth-authorization-server" in out
    assert "Settings from your environment: INTEGRATION_SLUG" in out
    for port in ports.values():
        assert not listening(port), f"port {port} still open after {sig.name}"


def test_dev_key_is_labelled_as_such() -> None:
    key = DEVELOPMENT_SETTINGS["TOKEN_ENCRYPTION_KEY"].split(":", 1)[1]
    assert b"DEV-ONLY" in base64.b64decode(key)


def test_a_restart_forgets_what_an_earlier_run_stored_under_the_prefix_only() -> None:
    """The emulator starts afresh on every run, so installations a real Redis kept would
    name configurations that no longer exist: a restart clears them (and nothing else)."""
    from dev.kv_engine import Engine
    from dev.stack import forget_earlier_runs

    engine = Engine(description="test")
    try:
        for key in (b"vi:inst:icfg_1", b"vi:all", b"vi:gone:ab", b"other:vi:x", b"vix"):
            engine.execute([b"SET", key, b"1"])
        for n in range(2500):  # more than one SCAN page
            engine.execute([b"SET", b"vi:event:%d" % n, b"done"])
        assert forget_earlier_runs(engine, {}) == 2503
        left = engine.execute([b"KEYS", b"*"])
        assert isinstance(left, list)
        assert sorted(k for k in left if isinstance(k, bytes)) == [b"other:vi:x", b"vix"]
        # A prefix with glob characters is matched literally.
        for key in (b"p[1]:a", b"p1:a"):
            engine.execute([b"SET", key, b"1"])
        assert forget_earlier_runs(engine, {"KV_KEY_PREFIX": "p[1]:"}) == 1
        assert engine.execute([b"EXISTS", b"p1:a"]) == 1
    finally:
        engine.close()


def test_dev_keep_kv_keeps_an_earlier_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from dev import kv_gateway
    from dev import stack as stack_module
    from dev.kv_engine import Engine

    engine = Engine(description="kept")
    engine.execute([b"SET", b"vi:inst:icfg_1", b"{}"])
    monkeypatch.setattr(kv_gateway, "open_backend", lambda _url=None: engine)
    monkeypatch.setattr(stack_module, "_serve", lambda *_args, **_kwargs: None)
    kept = stack_module.Stack(stack_module.ROOT)
    environ = {"UPSTASH_REDIS_REST_TOKEN": "t", "DEV_KEEP_KV": "1"}
    stack_module._start_kv_gateway(kept, 0, environ)
    assert engine.execute([b"EXISTS", b"vi:inst:icfg_1"]) == 1
    cleared = stack_module.Stack(stack_module.ROOT)
    stack_module._start_kv_gateway(cleared, 0, {"UPSTASH_REDIS_REST_TOKEN": "t"})
    assert engine.execute([b"EXISTS", b"vi:inst:icfg_1"]) == 0
    assert "cleared 1 key(s) of an earlier run (DEV_KEEP_KV=1 keeps them)" in cleared.notes["kv"]
    engine.close()
