# userhub: the two commands (see README). Windows/PowerShell equivalents are in the README.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test test-quick test-scaleout dev lint check install install-dev clean newman bench soak under-load translations

# Translation catalogues: each messages.po is compiled to the messages.mo Flask-Babel reads.
TRANSLATIONS := src/userhub/translations
CATALOGUES   := $(patsubst %.po,%.mo,$(wildcard $(TRANSLATIONS)/*/LC_MESSAGES/messages.po))

# axe-core, which the browser tests run in every page, from tests/browser/package-lock.json,
# and newman, which tests/test_postman_collection.py runs, from postman/package-lock.json:
# installed when missing or when the lock changes (npm ci writes node_modules/.package-lock.json).
AXE    := tests/browser/node_modules/.package-lock.json
NEWMAN := postman/node_modules/.package-lock.json
# Defined before the rules that need it: make expands a rule's prerequisites as it reads it.
# The fastapi-users reference app's own venv, inside .venv: fastapi-users-db-sqlalchemy needs
# SQLAlchemy < 2.1, userhub 2.1 (bench/peers/fastapi_users_app.py).
FASTAPI_USERS := $(VENV)/fastapi-users/.installed

## make run: install from the lock, upgrade the schema, serve on http://127.0.0.1:5000
run: $(VENV)/.installed-prod $(CATALOGUES)
	$(BIN)/flask --app userhub db upgrade
	$(BIN)/userhub serve

## make install: install userhub and its pinned dependencies (requirements/prod.txt) into .venv
## and compile the translations, without touching a database or starting a server: what a
## deployment runs before `flask --app userhub db upgrade` and `userhub serve`
install: $(VENV)/.installed-prod $(CATALOGUES)

## make install-dev: the same with the test, lint and bench tools (requirements/dev.txt)
install-dev: $(VENV)/.installed-dev $(CATALOGUES)

## make test: install the test tools from the lock and run the whole suite, in parallel
## (pytest-xdist, TEST_WORKERS processes; each its own MySQL database, <name>_gw0, _gw1...,
## and Redis database, the one named then downwards: /15, /14...). Serially: TEST_WORKERS=0
test: $(VENV)/.installed-dev $(CATALOGUES) $(AXE) $(NEWMAN)
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

## make test-quick: the inner loop: SQLite only (no MySQL, Redis, browser, contract fuzzing,
## newman or the wheel's build and install), in parallel
test-quick: $(VENV)/.installed-dev $(CATALOGUES)
	env -u USERHUB_TEST_DATABASE_URL -u USERHUB_TEST_REDIS_URL -u USERHUB_FORBID_SKIPS \
		$(BIN)/python -m pytest $(XDIST) \
		-m "not scaleout and not browser and not contract and not newman and not wheel" \
		$(PYTEST_ARGS)

# Measured on this project's 2-core machines: 2 workers (see the commit). --dist loadfile: a
# module's tests run in one worker, so a module's live servers, proxy and browser start once and
# its timed tests never meet a second copy of themselves (xdist_group + --dist loadgroup would
# be finer, but does nothing with pytest 9.2: pytest-xdist#1386). No reordering: the files of
# the longest tests go first (conftest.py sorts them to the front).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## make test-scaleout: nginx, 3 userhub instances, Redis and a 3-node Galera cluster on this
## machine (deploy/localcluster.py), with an instance and a database node killed under load
test-scaleout: $(VENV)/.installed-dev $(CATALOGUES)
	@for tool in nginx rsync; do command -v $$tool >/dev/null || MISSING="$$MISSING $$tool"; done; \
	test -e /usr/lib/galera/libgalera_smm.so || MISSING="$$MISSING galera-4"; \
	if [ -n "$$MISSING" ]; then apt-get update -qq && apt-get install -y -qq $$MISSING >/dev/null; fi
	$(BIN)/python -m pytest -m scaleout tests/test_scaleout.py $(PYTEST_ARGS)

## make dev: Flask's reloading debug server, for development only (never in production):
## app.py, which upgrades the schema and starts the mail sender (mail lands in instance/mail/)
dev: $(VENV)/.installed-prod $(CATALOGUES)
	$(BIN)/python app.py

## make lint: ruff, mypy, and the layer contracts (import-linter, pyproject.toml)
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests app.py setup.py scripts bench deploy
	$(BIN)/ruff format --check src tests app.py setup.py scripts bench deploy
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

## make newman: the Postman collection, run twice by newman against `userhub serve` on MariaDB
newman: $(VENV)/.installed-dev $(NEWMAN)
	bash scripts/newman.sh

## make bench: the load benchmark, with userhub before issue 18, userhub before server-side
## sessions and the reference apps in the same run, and the 10,000-user import (MariaDB up;
## installs wrk if missing)
bench: $(VENV)/.installed-dev $(CATALOGUES) $(FASTAPI_USERS)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/import_users.py --users 10000
	$(BIN)/python bench/import_users.py --users 10000 --database-url "$(BENCH_MYSQL_URL)"
	$(BIN)/python bench/run.py $(BENCH_ARGS)

$(FASTAPI_USERS): requirements/bench-fastapi-users.txt | $(VENV)/bin/python
	$(PYTHON) -m venv $(VENV)/fastapi-users
	$(VENV)/fastapi-users/bin/python -m pip --disable-pip-version-check -q install -r $<
	touch $@

BENCH_MYSQL_URL ?= mysql+pymysql://root@127.0.0.1:3306/userhub_bench?charset=utf8mb4

## make soak: 60 s, 256 connections, mixed reads and writes on MariaDB; fails on any 5xx or
## socket error (the earlier 64: make soak SOAK_ARGS="--connections 64")
soak: $(VENV)/.installed-dev $(CATALOGUES)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

## make under-load: userhub on MariaDB under userhub serve, granian WSGI and gunicorn gthread
## (4, 32, 128 threads), 8 to 256 connections, every status counted; fails on any 5xx or socket
## error (bench/under_load.py)
under-load: $(VENV)/.installed-dev $(CATALOGUES)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/under_load.py $(UNDER_LOAD_ARGS)

## make translations: collect the strings to translate into each messages.po (new ones empty)
translations: $(VENV)/.installed-dev
	$(BIN)/pybabel -q extract -F babel.cfg -k _l --no-location --sort-output --project userhub \
		-o $(TRANSLATIONS)/messages.pot .
	$(BIN)/pybabel -q update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) -w 100 \
		--no-fuzzy-matching --ignore-obsolete
	rm $(TRANSLATIONS)/messages.pot

$(AXE): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

$(NEWMAN): postman/package-lock.json
	npm ci --prefix postman --no-audit --no-fund --loglevel=error

%.mo: %.po | $(VENV)/.installed-prod
	$(BIN)/pybabel -q compile -i $< -o $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-prod: requirements/prod.txt pyproject.toml | $(VENV)/bin/python
	$(PIP) install -r requirements/prod.txt
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements/dev.txt pyproject.toml | $(VENV)/bin/python
	$(PIP) install -r requirements/dev.txt
	$(PIP) install --no-deps -e .
	touch $@ $(VENV)/.installed-prod

## make lock: re-pin every dependency (needs uv: pip install uv)
lock:
	uv pip compile pyproject.toml --extra otel --universal --python-version 3.11 -o requirements/prod.txt
	uv pip compile pyproject.toml --extra otel --group pyproject.toml:test --group pyproject.toml:lint \
		--group pyproject.toml:bench --universal --python-version 3.11 -o requirements/dev.txt
	uv pip compile --group pyproject.toml:bench-fastapi-users --universal --python-version 3.11 \
		-o requirements/bench-fastapi-users.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
