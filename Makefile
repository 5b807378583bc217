# The two commands: `make dev` and `make test`. Both bootstrap .venv themselves.
PY := .venv/bin/python

.PHONY: venv browser-deps dev test lint typecheck unit bench clean

venv:
	@bash dev/bootstrap.sh

# The accessibility checker (axe-core) for tests/browser, from its lock file; reinstalled
# when the lock file changes. The browser is Debian's chromium (apt), never downloaded.
AXE_STAMP := tests/browser/node_modules/.package-lock.json

browser-deps: $(AXE_STAMP)

$(AXE_STAMP): tests/browser/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error; \
	else \
	  echo "make: npm not found: accessibility tests will skip (and fail under CI=true)"; \
	fi

dev: venv
	@$(PY) -m dev.stack

lint: venv
	@$(PY) -m ruff check api lib dev tests
	@$(PY) -m ruff format --check api lib dev tests

typecheck: venv
	@$(PY) -m mypy

unit: venv browser-deps
	@$(PY) -m pytest

test: lint typecheck unit

bench: venv
	@$(PY) -m dev.bench

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts tests/browser/node_modules
