# artifact-store — the commands a developer and CI use. See CONTRIBUTING.md.
SHELL := /bin/bash
# Evaluated at each use, so a uv installed by `make install` is found right after.
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN = $(UV) run --no-sync
export UV_COMPILE_BYTECODE := 1

.PHONY: install test lint type migrate migrate-fresh check demo dev bench bench-quick bench-report reliability

install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet uv
	$(UV) sync --all-extras --locked

test: install
	$(RUN) pytest $(PYTEST_ARGS)

# The reliability suite's long form (docs/reliability.md): >= 200 crash trials per
# operation, minutes of concurrent writers, sweeps and readers, and 1 GiB through the HTTP
# gateway (2 workers; cut and resumed both ways), and a simulated year of a daily Dagster
# pipeline under the shipped retention schedules. `make test` runs their short forms.
reliability: install
	ARTIFACTSTORE_RELIABILITY_LONG=1 ARTIFACTSTORE_HTTP_LONG=1 ARTIFACTSTORE_CLIENT_LONG=1 \
	ARTIFACTSTORE_SIMULATED_DAYS=365 \
		$(RUN) pytest tests/reliability tests/http/test_serve.py tests/client/test_long.py \
		tests/dagster/test_keep_current.py $(PYTEST_ARGS)

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports --no-logo

type: install
	$(RUN) mypy

migrate: install
	mkdir -p var
	$(RUN) artifactstore migrate

migrate-fresh: install
	rm -f var/artifactstore.db var/artifactstore.db-wal var/artifactstore.db-shm
	$(MAKE) migrate

check: lint type test

# The main job on the embedded default: the example Dagster pipeline (SQLite registry,
# local blobs, Dagster home under var/), a retention dry run, packages and lineage.
demo: install
	$(RUN) python -m examples.evidence_pipeline.demo

# The Dagster UI on the example pipeline.
dev: install
	mkdir -p var/dagster
	DAGSTER_HOME=$(CURDIR)/var/dagster ARTIFACTSTORE_DATABASE_URL=$${ARTIFACTSTORE_DATABASE_URL:-sqlite:///$(CURDIR)/var/artifactstore.db} ARTIFACTSTORE_STORAGE_URL=$${ARTIFACTSTORE_STORAGE_URL:-$(CURDIR)/var/blobs} $(RUN) dagster dev -m examples.evidence_pipeline.definitions

# Speed and memory targets (ratios measured within one run; see benchmarks/README.md).
bench: install
	for b in benchmarks/bench_*.py; do $(RUN) python $$b || exit 1; done

bench-quick: install
	for b in benchmarks/bench_*.py; do $(RUN) python $$b --quick || exit 1; done

# Markdown tables and PNG plots under docs/performance/ from benchmarks/results/*.json.
bench-report: install
	$(RUN) python benchmarks/report.py
