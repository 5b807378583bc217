"""`python -m dev.emulator` serves alone, says where, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]


def test_runs_alone_with_settings_from_the_environment() -> None:
    env = {
        **os.environ,
        "EMULATOR_PORT": "0",
        "INTEGRATION_SLUG": "from-env",
        "VERCEL_CLIENT_ID": "oac_fromenv",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dev.emulator"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Vercel API emulator on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        install = proc.stdout.readline()
        assert f"{url}/integrations/from-env/new" in install
        config = httpx.get(f"{url}/_emulator/config", timeout=5).json()
        assert config["client_id"] == "oac_fromenv"
        assert config["public_url"] == url
        assert httpx.get(f"{url}/integrations/from-env/new", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
