# plannerweb: `make run` (dashboard with demo data) and `make test` (the whole suite) on a fresh machine.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements-dev.lock | cksum | cut -d' ' -f1)
PG_URL ?= postgres://postgres@127.0.0.1:5432/postgres

.PHONY: setup run test test-sqlite test-postgres lint typecheck fmt bench evaluate clean

setup: $(STAMP)

$(STAMP): requirements.lock requirements-dev.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	rm -f $(VENV)/.installed-* && touch $@

run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo --with-runs
	@echo "plannerweb is starting on http://$(HOST):$(PORT)/  (Ctrl-C to stop)"
	PLANNERWEB_SHOW_DEMO_LOGINS=1 $(BIN)/daphne -b $(HOST) -p $(PORT) plannerweb.asgi:application

test: setup lint typecheck test-sqlite

test-sqlite: setup
	$(BIN)/pytest -m "not postgres"

# CI runs this too, against its PostgreSQL; tests marked `postgres` run only here.
test-postgres: setup
	DATABASE_URL=$(PG_URL) $(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy runs reviews plannerweb

fmt: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The demo golden suite, offline (recorded model answers), in a database of its own.
evaluate: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py evaluate demo --replay --junit var/evaluate-demo.xml

bench: setup
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) var
