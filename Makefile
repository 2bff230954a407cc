# Revenue Agent System: `make run` runs it on embedded defaults, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test lint format bench clean constraints

UV_VERSION := 0.13.9
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check

# uv installs the tree several times faster than pip; it comes from PyPI into the venv. Where it
# cannot be had (no wheel for the platform, an offline mirror without it), pip does the job.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if $(PIP) install uv==$(UV_VERSION) 2>/dev/null && $(BIN)/uv --version >/dev/null 2>&1; then \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt; \
	else \
	  $(PIP) install --upgrade pip && $(PIP) install -r requirements-dev.txt; \
	fi
	touch $(STAMP)

install: $(STAMP)

## Run the whole system on embedded defaults: SQLite, no Redis, a local fake Stripe, demo data.
run: install
	DJANGO_DEBUG=1 $(BIN)/python -m revenue_site.devrun

## Run the test suite (SQLite by default; PostgreSQL + Redis when DATABASE_URL / REDIS_URL are set).
test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	DJANGO_DEBUG=1 $(BIN)/mypy .
	DJANGO_DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run

## Re-pin the whole tree: resolve the direct pins in a clean venv and write constraints.txt.
constraints:
	rm -rf .venv-constraints && $(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --disable-pip-version-check \
	  -r <(grep -v '^-c' requirements.txt) -r <(grep -v '^-[rc]' requirements-dev.txt)
	{ sed -n '1,/^[^#]/{/^#/p}' constraints.txt; \
	  .venv-constraints/bin/python -m pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-constraints
	@echo "constraints.txt re-pinned; review with git diff constraints.txt"

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks: every bench/*.py on PostgreSQL + Redis, one table of figures against their
## same-run baselines and targets, written to docs/benchmarks.md; see bench/README.md.
## BENCH_ONLY=clicks.py,webhooks.py runs a subset; SOAK_SECONDS (default 600) sets the soak's load.
bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .venv-constraints db.sqlite3* test_db.sqlite3* .run staticfiles test-artifacts
