# The two commands: `make run` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app app
PORT   ?= 5000
PGBIN  ?= /usr/lib/postgresql/15/bin
# axe-core for the browser tests' accessibility checks: test tooling only, never served (version pinned in package.json)
AXE    := tests/tooling/node_modules/axe-core/axe.min.js
# Translations: the .po catalogues are the source; their .mo files are built here, never committed
PO     := $(wildcard translations/*/LC_MESSAGES/messages.po)
MO     := $(PO:.po=.mo)

.PHONY: translations run serve test bench install install-test system-test-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt $(VENV)/.installed
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test system-test-deps $(AXE)

$(AXE): tests/tooling/package.json | system-test-deps
	cd tests/tooling && npm install --no-audit --no-fund --no-package-lock
	touch $@

# Debian's Chromium (Playwright's own browser download is not used), PostgreSQL and poppler-utils
# (pdftotext, which the tests use to read the portal's PDFs back), installed when missing and we are
# root; otherwise say what to install.
system-test-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v pdftotext >/dev/null 2>&1 || missing="$$missing poppler-utils"; \
	[ -x $(PGBIN)/initdb ] || missing="$$missing postgresql"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install:$$missing (e.g. sudo apt-get install$$missing)"; exit 1; fi; \
	fi

%.mo: %.po $(VENV)/.installed
	$(BIN)/pybabel compile -i $< -o $@ --statistics

translations: $(MO)

run: install $(MO)
	$(FLASK) db-upgrade
	PUBLIC_URL=$${PUBLIC_URL:-http://127.0.0.1:$(PORT)} $(FLASK) demo --if-empty
	@echo ""
	@echo "  Customer portal: http://127.0.0.1:$(PORT)/"
	@echo "  Demo login:      demo@example.com / demo-portal-2026"
	@echo "  Staff pages:     http://127.0.0.1:$(PORT)/staff/ (first: $(FLASK) create-staff you@your-isp.example)"
	@echo ""
	PUBLIC_URL=$${PUBLIC_URL:-http://127.0.0.1:$(PORT)} $(BIN)/gunicorn --workers 2 --threads 4 --bind 127.0.0.1:$(PORT) --access-logfile - 'app:create_app()'

# Production: gunicorn on BIND (default 127.0.0.1:8000, behind nginx: docs/deploy.md), workers sized to the
# cores, an access log without secrets, and never demo data (the app refuses to start while demo logins exist).
WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
BIND    ?= 127.0.0.1:8000
serve: install $(MO)
	@test -n "$$PUBLIC_URL" || { echo "make serve: set PUBLIC_URL to the portal's address, e.g. https://pay.your-isp.example"; exit 1; }
	$(FLASK) db-upgrade
	PRODUCTION=true exec $(BIN)/gunicorn --workers $(WORKERS) --threads 4 --bind $(BIND) \
	  --logger-class views.access_log.RedactingLogger --access-logfile - \
	  --access-logformat '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"' 'app:create_app()'

# The whole suite on SQLite, then every test whose database the --db option chooses again on a PostgreSQL
# server the tests start themselves (tests/pg_support.py). Browser tests are not repeated; SQLite-only ones are skipped.
test: install-test $(MO)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m "not browser" --db=postgresql $(PYTEST_ARGS)

bench: install-test
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "please install wrk (e.g. sudo apt-get install wrk); the load rows will be skipped"; fi; }
	$(BIN)/python -m bench
	@command -v wrk >/dev/null 2>&1 && $(BIN)/python -m bench.scale || true

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
