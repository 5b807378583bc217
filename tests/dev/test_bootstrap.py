"""dev/bootstrap.sh (the first step of `make dev`): a first run says what it is doing.

Run against a copy of the script in a scratch project whose Python is a stand-in that
answers as pip does (no network, no real install), so what a new user sees is checked
line by line, and a failing pip still fails the run.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A stand-in interpreter: `-c` prints a version, `-m venv DIR` makes DIR/bin/python (a copy
# of itself), `-m pip install -r …` prints pip's lines (or fails when FAKE_PIP_FAILS is set).
FAKE_PYTHON = r"""#!/usr/bin/env bash
if [ "$1" = "-c" ]; then echo 3.12.9; exit 0; fi
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
if [[ " $* " == *" -r "* ]]; then
  echo "Collecting httpx (from -r requirements.txt (line 1))"
  echo "  Downloading httpx-0.28.1-py3-none-any.whl (73 kB)"
  echo "Collecting anyio (from httpx)"
  echo "Requirement already satisfied: idna in ./x"
  if [ -n "${FAKE_PIP_FAILS:-}" ]; then echo "ERROR: no network" >&2; exit 1; fi
  echo "Installing collected packages: anyio, httpx"
  echo "Successfully installed anyio-4.0 httpx-0.28.1"
fi
exit 0
"""


def _project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "dev").mkdir()
    shutil.copy(ROOT / "dev" / "bootstrap.sh", tmp_path / "dev" / "bootstrap.sh")
    (tmp_path / "requirements.txt").write_text("httpx\n")
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\n")
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    python = bin_dir / "python3.12"
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    # Only the stand-in Python is found (plus the tools the script itself uses).
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return tmp_path, env


def _run(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "dev/bootstrap.sh"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_first_run_shows_each_step_and_each_package(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    first = _run(project, env)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0].startswith("bootstrap: first run: setting up .venv (about a minute")
    assert lines[1].startswith("bootstrap: creating .venv with ")
    assert lines[2:] == [
        "bootstrap: installing requirements into .venv (Python 3.12.9)",
        "bootstrap: upgrading pip...",
        "bootstrap: fetching the packages of requirements-dev.txt...",
        "bootstrap:   [1] httpx",
        "bootstrap:   [2] anyio",
        "bootstrap: installing 2 package(s)...",
        "bootstrap: requirements installed",
        "bootstrap: ready",
    ]
    assert first.stdout == ""
    second = _run(project, env)  # nothing changed: nothing to do, nothing said
    assert (second.returncode, second.stderr) == (0, "")


def test_a_failing_install_fails_the_run_and_says_why(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    failed = _run(project, {**env, "FAKE_PIP_FAILS": "1"})
    assert failed.returncode != 0
    assert "ERROR: no network" in failed.stderr
    assert "bootstrap: ready" not in failed.stderr
    assert not (project / ".venv" / ".requirements.sha256").exists()  # retried next time
    assert os.access(project / ".venv" / "bin" / "python", os.X_OK)
