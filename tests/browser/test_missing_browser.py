"""Without Chromium the browser tests skip locally, naming the install command, and fail
under CI=true: a CI run can never pass by not running them."""

from __future__ import annotations

import os
import subprocess
import sys

from dev.stack import ROOT

TARGET = "tests/browser/test_accessibility.py::test_axe_does_find_violations"


def _run(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["CHROMIUM_PATH"] = "/nonexistent/chromium"
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", TARGET, "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_locally_the_tests_skip_and_say_how_to_install_chromium() -> None:
    result = _run(ci=False)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 skipped" in result.stdout
    assert "apt-get install -y chromium" in result.stdout


def test_in_ci_a_missing_chromium_fails_the_run() -> None:
    result = _run(ci=True)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "skipped" not in result.stdout
    assert "CI: Chromium (/nonexistent/chromium) is missing" in result.stdout
