#!/usr/bin/env bash
# Creates .venv (preferring Python 3.12, the version Vercel runs) and installs the
# requirements whenever they change. Idempotent: a second call is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.requirements.sha256"

pick_python() {
  local candidates=()
  if command -v pyenv >/dev/null 2>&1; then
    local root
    root=$(pyenv root 2>/dev/null || true)
    for v in "$root"/versions/3.12*/bin/python3.12 "$root"/versions/3.13*/bin/python3.13; do
      [ -x "$v" ] && candidates+=("$v")
    done
  fi
  for n in python3.12 python3.13 python3 python; do
    command -v "$n" >/dev/null 2>&1 && candidates+=("$(command -v "$n")")
  done
  for c in "${candidates[@]}"; do
    # pyenv shims exist for versions that are not active; ask the interpreter itself.
    if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

# Progress goes to stderr, one line per step and per package, so a first run (about a
# minute: a virtual environment and every requirement) never looks stuck.
say() { echo "bootstrap: $*" >&2; }

# pip's own output, condensed as it streams: one line per package it fetches, then what it
# installs; the rest (download sizes, "Requirement already satisfied", …) is dropped.
# A failing pip still fails the script (pipefail); its errors are on stderr, not filtered.
progress() {
  awk '
    /^Collecting / { n++; printf "bootstrap:   [%d] %s\n", n, $2; fflush(); next }
    /^Installing collected packages:/ {
      printf "bootstrap: installing %d package(s)...\n", n; fflush(); next
    }
    /^Successfully installed/ { done = 1 }
    END { if (done) { print "bootstrap: requirements installed" } }
  ' >&2
}

if [ ! -x "$VENV/bin/python" ]; then
  PY=$(pick_python) || { echo "bootstrap: no Python >= 3.11 found (3.12 preferred)" >&2; exit 1; }
  say "first run: setting up $VENV (about a minute; later runs skip this)"
  say "creating $VENV with $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
  "$PY" -m venv "$VENV"
fi

want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  say "installing requirements into $VENV (Python $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
  say "upgrading pip..."
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1
  say "fetching the packages of requirements-dev.txt..."
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
    -r requirements-dev.txt 2> >(grep -v "is ignored: it is neither" >&2) | progress
  echo "$want" > "$STAMP"
  say "ready"
fi
