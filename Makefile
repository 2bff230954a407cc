# Revenue Agent System: `make run` runs it on embedded defaults, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test lint format bench clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
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

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks print figures against a same-run baseline; see bench/README.md.
bench: install
	@shopt -s nullglob; for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) db.sqlite3* test_db.sqlite3* .run staticfiles test-artifacts
