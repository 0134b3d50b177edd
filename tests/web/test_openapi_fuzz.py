"""Property-based fuzzing of a running metricsd with schemathesis, driven by the OpenAPI file.

One metricsd process (ingest tokens, admin auth, CORS allow-list, a rule file, a real
PostgreSQL target and one that is down) serves every operation of metricsd/web/openapi.yaml;
schemathesis generates requests that follow the document and requests that break it.
Every answer must be below 500 and match the document: status code, content type,
headers and body schema. Runs are derandomized, so CI replays the same cases.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from metricsd.web.openapi import SPEC_PATH

INGEST_TOKEN = "fuzz-ingest-token"
ADMIN_TOKEN = "fuzz-admin-token"
# Hypothesis examples per operation with credentials (a fifth of that without); with the
# coverage phase's cases every operation that takes input gets a few hundred requests.
CASES_PER_OPERATION = int(os.environ.get("METRICSD_FUZZ_CASES", "200"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
RULES = """\
groups:
  - name: fuzz
    rules:
      - alert: AnyApiTraffic
        expr: metricsd_api_request_window_seconds{quantile="0.95"} > 0
        labels: {severity: page}
        annotations: {summary: "p95 of {{ $labels.route }} is {{ $value }}"}
"""

schema = schemathesis.openapi.from_path(str(SPEC_PATH))
CASES: collections.Counter[str] = collections.Counter()  # requests sent per operation


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: object, token: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(resp.status)


@pytest.fixture(scope="module")
def metricsd_url(pg_cluster, tmp_path_factory) -> Iterator[str]:
    """metricsd as a process on a free port, with data in every view."""
    from tests.fixtures.pg import run_sql

    tmp = tmp_path_factory.mktemp("fuzz")
    database = f"metricsd_fuzz_{os.getpid()}"
    run_sql(pg_cluster.dsn, f'DROP DATABASE IF EXISTS "{database}"',
            f'CREATE DATABASE "{database}"')
    dsn = pg_cluster.dsn_for(database)
    run_sql(dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
            "CREATE TABLE orders (id int primary key, total numeric)",
            "CREATE INDEX orders_total ON orders (total)",
            "INSERT INTO orders SELECT g, g FROM generate_series(1, 500) g",
            "SELECT count(*) FROM orders WHERE total > 10")
    (tmp / "alerts.yml").write_text(RULES)
    config = {
        "ingest": {"tokens": [INGEST_TOKEN], "cors_origins": ["https://shop.example"]},
        "admin": {"token": ADMIN_TOKEN},
        "alerting": {"rules": str(tmp / "alerts.yml"), "evaluation_interval": "1s"},
        "postgres": {"scrape_interval": "2s", "targets": [
            {"name": "main", "dsn": dsn},
            {"name": "down", "dsn": f"postgresql://nobody@127.0.0.1:{_free_port()}/none"},
        ]},
        "history": {"path": str(tmp / "history.sqlite"), "flush_interval": "1s"},
    }
    (tmp / "metricsd.yml").write_text(json.dumps(config))  # JSON is YAML
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp / "metricsd.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "metricsd", "--config", str(tmp / "metricsd.yml"),
         "--listen", f"127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("metricsd did not start") from None
                time.sleep(0.1)
        timing = {"service": "shop", "route": "/orders/1", "method": "GET", "status": 200}
        _post(f"{url}/v1/beacons/timings", [dict(timing, duration_ms=d, status=s)
              for d in (5.0, 40.0, 300.0) for s in (200, 503)], INGEST_TOKEN)
        _post(f"{url}/v1/beacons/vitals", [
            {"name": "LCP", "value": 2100.0, "id": "v1", "page": "/p/1"},
            {"name": "CLS", "value": 0.02, "id": "v2", "page": "/p/1"}])
        time.sleep(2.5)  # a scrape of both targets and an alert evaluation
        yield url
        log.flush()
        log.seek(0)
        # Client input must never log a traceback; what shutdown logs is not at issue here.
        before_shutdown = log.read()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print("\nfuzz requests per operation:", json.dumps(dict(sorted(CASES.items())), indent=1))
        log.close()
        run_sql(pg_cluster.dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    assert "Traceback" not in before_shutdown, before_shutdown[-4000:]
    inputs = [op.label for op in (r.ok() for r in schema.get_all_operations())
              if op.body or any(True for _ in op.iter_parameters())]
    if CASES_PER_OPERATION >= 200 and set(CASES) >= set(inputs):  # a whole run, not -k
        assert {label: CASES[label] for label in inputs if CASES[label] < 200} == {}


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """One keep-alive connection for all cases: a new TCP connection each is most of the time."""
    with requests.Session() as s:
        yield s


def _auth(case: schemathesis.Case) -> dict[str, str]:
    token = INGEST_TOKEN if case.path.startswith("/v1/beacons/") else ADMIN_TOKEN
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(max_examples=CASES_PER_OPERATION, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_with_credentials(case: schemathesis.Case, metricsd_url: str,
                              session: requests.Session) -> None:
    CASES[case.operation.label] += case.method.upper() == case.operation.method.upper()
    response = case.call(base_url=metricsd_url, session=session, headers=_auth(case),
                         timeout=30)
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=max(10, CASES_PER_OPERATION // 5), derandomize=True, database=None,
          deadline=None, suppress_health_check=list(HealthCheck))
def test_api_without_credentials(case: schemathesis.Case, metricsd_url: str,
                                 session: requests.Session) -> None:
    CASES[case.operation.label] += case.method.upper() == case.operation.method.upper()
    response = case.call(base_url=metricsd_url, session=session, timeout=30)
    case.validate_response(response, checks=CHECKS)
