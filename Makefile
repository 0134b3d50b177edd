# metricsd: `make run` starts the daemon with embedded defaults, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Debian packages the real-part tests need: PostgreSQL server, promtool/Prometheus,
# headless Chromium, wrk for benchmarks, Node/npm for the web-vitals browser test.
SYSDEPS := postgresql postgresql-contrib prometheus chromium wrk nodejs npm

.PHONY: run test lint bench demo sysdeps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[uvloop]'
	touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e '.[test,uvloop]'
	touch $@

run: $(STAMP)  ## start metricsd on 127.0.0.1:9811 with embedded defaults
	$(VENV)/bin/metricsd $(if $(CONFIG),--config $(CONFIG))

sysdeps:  ## install the Debian packages tests need (only as root, only what is missing)
	@missing=""; for p in $(SYSDEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "not root: install$$missing yourself, or tests needing them are skipped"; fi

test: $(TEST_STAMP) sysdeps  ## install what tests need and run the whole suite
	$(VENV)/bin/ruff check metricsd tests bench
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check metricsd tests bench

bench: $(TEST_STAMP) sysdeps  ## benchmarks; results go to docs/benchmarks.md by hand
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .bench
