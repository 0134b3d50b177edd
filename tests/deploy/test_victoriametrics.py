"""Every dashboard query against a real VictoriaMetrics (Debian 1.79) scraping metricsd.

docs/scaling.md names VictoriaMetrics as a long-term store the dashboards work against.
VictoriaMetrics scrapes a metricsd under steady beacon traffic itself
(-promscrape.config, 1 s), then every panel and variable query of every dashboard runs
through its Prometheus-compatible API: none may error, and the API and Web Vitals panels
(which need no PostgreSQL) must return data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.deploy import dashboards as db
from tests.e2e.test_prometheus import Traffic, _has_data
from tests.fixtures.binaries import require_binary
from tests.fixtures.launch import launch
from tests.fixtures.prometheus import Prometheus, PrometheusError

# Dashboards served by beacon traffic alone; every panel of them must have data here.
DATA_DASHBOARDS = {"metricsd-api", "metricsd-web-vitals"}


@pytest.fixture
async def make_victoriametrics(
    tmp_path: Path,
) -> AsyncIterator[Callable[[list[str]], Awaitable[Prometheus]]]:
    """Factory: VictoriaMetrics scraping `targets` every second; its query API client."""
    binary = require_binary("victoria-metrics")
    started: list[Prometheus] = []

    async def start(targets: list[str]) -> Prometheus:
        config = tmp_path / "scrape.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "metricsd",
                                "static_configs": [{"targets": targets}]}],
        }), encoding="utf-8")
        try:
            run = await launch("victoria-metrics", tmp_path, lambda port, attempt: (
                binary, f"-storageDataPath={tmp_path / f'vm-data-{attempt}'}",
                f"-httpListenAddr=127.0.0.1:{port}", f"-promscrape.config={config}",
                "-retentionPeriod=1d", "-search.latencyOffset=0s", "-search.disableCache",
            ), "/health")
        except AssertionError as exc:
            raise PrometheusError(str(exc)) from None
        server = Prometheus(run.url, config, run.log_path, run.process, 1.0)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


async def _failures(vm: Prometheus) -> tuple[list[str], int]:
    allowed = {(e.dashboard, e.panel) for e in db.allowed_empty()}
    failures: list[str] = []
    count = 0
    for path in db.dashboard_files():
        board = db.load(path)
        for var in db.variables(board).values():
            if var["type"] != "query":
                continue
            selector, label = db.parse_label_values(db.variable_query(var))
            params = {"match[]": db.substitute(selector)} if selector else {}
            count += 1
            try:
                await vm.api(f"label/{label}/values", **params)
            except PrometheusError as exc:
                failures.append(f"{board['uid']}: variable ${var['name']}: {exc}")
        for query in db.queries(board):
            count += 1
            where = f"{board['uid']} / {query.panel} / {query.ref}"
            try:
                result = await vm.query(db.substitute(query.expr))
            except PrometheusError as exc:
                failures.append(f"{where}: error {exc}")
                continue
            if (board["uid"] in DATA_DASHBOARDS and not _has_data(result)
                    and (board["uid"], query.panel) not in allowed):
                failures.append(f"{where}: no data for {db.substitute(query.expr)}")
    return failures, count


async def test_every_dashboard_query_runs_on_victoriametrics(
    make_config: Any, serve_metricsd: Any, make_victoriametrics: Any
) -> None:
    address = await serve_metricsd(make_config({}))
    async with aiohttp.ClientSession() as session:
        traffic = Traffic(session, address)
        await traffic.steady()
        vm = await make_victoriametrics([address])
        deadline = time.monotonic() + 60
        while True:  # steady traffic until VictoriaMetrics has a few scrapes of increases
            await traffic.steady()
            await asyncio.sleep(0.5)
            scraped = await vm.query('count_over_time(up{job="metricsd"}[1m])')
            if scraped and float(scraped[0]["value"][1]) >= 6:
                break
            assert time.monotonic() < deadline, f"no scrapes:\n{vm.log_tail()}"
        failures, count = await _failures(vm)
        with pytest.raises(PrometheusError):  # the check can fail: a bad query is an error
            await vm.query("sum(rate(metricsd_api_requests_total[1m])")
    assert count > 50
    assert failures == [], "\n".join(failures)
