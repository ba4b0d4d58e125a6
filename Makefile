# artifact-store — the commands a developer and CI use. See CONTRIBUTING.md.
SHELL := /bin/bash
# Evaluated at each use, so a uv installed by `make install` is found right after.
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN = $(UV) run --no-sync
export UV_COMPILE_BYTECODE := 1

.PHONY: install test lint type migrate migrate-fresh check

install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet uv
	$(UV) sync --all-extras --locked

test: install
	$(RUN) pytest $(PYTEST_ARGS)

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

type: install
	$(RUN) mypy

migrate: install
	mkdir -p var
	$(RUN) artifactstore migrate

migrate-fresh: install
	rm -f var/artifactstore.db var/artifactstore.db-wal var/artifactstore.db-shm
	$(MAKE) migrate

check: lint type test
