# Two commands: `make run` starts the back office, `make test` runs the checks.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The browser tests drive Debian's Chromium; installed from the distribution when missing.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint format install install-dev bench clean

$(VENV)/.runtime-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt | $(CHROMIUM)
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium || \
	  ($(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium)

install: $(VENV)/.runtime-installed

install-dev: $(VENV)/.dev-installed

run: install
	VENV=$(VENV) ./bin/run

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Tests use DATABASE_URL / CELERY_BROKER_URL when set (CI: PostgreSQL and Redis),
# else SQLite and a filesystem broker of their own under var/.
test: lint
	CELERY_BROKER_DIR=$${CELERY_BROKER_DIR:-var/test-broker} $(PY) manage.py makemigrations --check --dry-run
	@# pytest exits 5 when it collected no test: that is a failure, said plainly.
	CELERY_BROKER_DIR=$${CELERY_BROKER_DIR:-var/test-broker} $(VENV)/bin/pytest $(PYTEST_ARGS); \
	status=$$?; [ $$status -ne 5 ] || echo "make test: pytest collected no tests" >&2; exit $$status

# Benchmarks run on PostgreSQL (DATABASE_URL, default a local campaign_central_bench
# database) and write docs/BENCHMARKS.md. `make bench BENCH=name` runs one.
bench: install-dev
	$(PY) -m bench $(BENCH)

clean:
	rm -rf var/test-broker var/test_campaign_central.sqlite3 .pytest_cache
