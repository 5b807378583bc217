# The two commands: `make dev` and `make test`. Both bootstrap .venv themselves.
PY := .venv/bin/python

.PHONY: venv dev test lint typecheck unit bench clean

venv:
	@bash dev/bootstrap.sh

dev: venv
	@$(PY) -m dev.stack

lint: venv
	@$(PY) -m ruff check api lib dev tests
	@$(PY) -m ruff format --check api lib dev tests

typecheck: venv
	@$(PY) -m mypy

unit: venv
	@$(PY) -m pytest

test: lint typecheck unit

bench: venv
	@$(PY) -m dev.bench

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts
