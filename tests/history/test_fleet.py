"""report.source: a real Prometheus scraping two metricsd; the report's fleet figures are
Prometheus's own histogram_quantile over the same buckets, and say so."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np
import pytest

from metricsd.config import Config
from metricsd.history.report import make_report, render
from metricsd.history.report.period import Period
from tests.fixtures.prometheus import MakePrometheus, ServeMetricsd


async def post(http: aiohttp.ClientSession, target: str, route: str,
               values_ms: np.ndarray) -> None:
    items = [{"service": "shop", "route": route, "method": "GET", "status": 200,
              "duration_ms": float(v)} for v in values_ms]
    async with http.post(f"http://{target}/v1/beacons/timings", json=items) as resp:
        assert resp.status == 202


async def test_fleet_p95_is_histogram_quantile_over_both_instances(
        make_prometheus: MakePrometheus, serve_metricsd: ServeMetricsd,
        make_config: Callable[..., Config]) -> None:
    config = make_config({"ingest": {"rate_limit": {"enabled": False}}})
    a, b = await serve_metricsd(config), await serve_metricsd(config)
    prom = await make_prometheus([a, b], scrape_interval_s=1.0)
    rng = np.random.default_rng(7)
    async with aiohttp.ClientSession() as http:
        for target in (a, b):  # the series exist before the measured traffic
            await post(http, target, "/checkout", np.array([20.0]))
        await prom.wait_scrapes("metricsd", 3, 30)
        start = time.time()
        await post(http, a, "/checkout", rng.lognormal(np.log(40), 0.4, 400))
        await post(http, b, "/checkout", rng.lognormal(np.log(400), 0.3, 100))
        await post(http, b, "/search", rng.lognormal(np.log(80), 0.3, 50))
        await prom.wait_for(
            'sum(metricsd_api_requests_total{route="/checkout"})', lambda r: bool(r) and
            float(r[0]["value"][1]) >= 502, 30)
        await prom.wait_scrapes("metricsd", 2, 30)
    end = time.time()
    period = Period("fleet", start - 30, end, "UTC")
    report_config = make_config({"report": {"source": {"prometheus_url": prom.url}}}).report
    report = await make_report(period, report_config, None, end)
    seconds = int(period.seconds)
    expected = await prom.api("query", query=(
        'histogram_quantile(0.95, sum by (le) (increase('
        f'metricsd_api_request_duration_seconds_bucket{{route="/checkout"}}[{seconds}s])))'),
        time=f"{end:.3f}")
    fleet95 = float(expected["result"][0]["value"][1])
    (row,) = [r for r in report["routes"] if r["route"] == "/checkout"]
    assert row["p95_ms"] == pytest.approx(fleet95 * 1000, rel=1e-9)
    # The fleet's p95 is the slow instance's tail, not an average of two instance p95s.
    assert row["p95_ms"] > 200
    requests = await prom.api("query", query=(
        f'sum(increase(metricsd_api_requests_total{{route="/checkout"}}[{seconds}s]))'),
        time=f"{end:.3f}")
    assert row["requests"] == round(float(requests["result"][0]["value"][1]))
    assert "histogram_quantile" in row["source"] and prom.url in row["source"]
    api95 = next(t for t in report["targets"] if t["name"] == "API p95")
    assert "Prometheus" in api95["method"] and api95["value"] is not None
    assert report["source"]["kind"] == "prometheus"
    html = render.render(report, "html")
    assert prom.url in html and "histogram_quantile" in html


async def test_unreachable_prometheus_is_a_clear_error(make_config: Callable[..., Any]) -> None:
    cfg = make_config({"report": {"source": {"prometheus_url": "http://127.0.0.1:9",
                                             "timeout": 2}}}).report
    with pytest.raises(aiohttp.ClientError):
        await make_report(Period("x", 0, 3600, "UTC"), cfg, None, 3600)


async def test_fleet_operations_and_caches_are_prometheus_figures(
        make_prometheus: MakePrometheus, serve_metricsd: ServeMetricsd,
        make_config: Callable[..., Config]) -> None:
    objectives = {"ai.generate": {"objective_ms": 300, "quantile": 0.95}}
    config = make_config({"ingest": {"rate_limit": {"enabled": False},
                                     "operations": objectives}})
    a, b = await serve_metricsd(config), await serve_metricsd(config)
    prom = await make_prometheus([a, b], scrape_interval_s=1.0)
    rng = np.random.default_rng(11)

    async def ops(http: aiohttp.ClientSession, target: str, values_ms: Any,
                  outcome: str = "ok") -> None:
        items = [{"service": "studio", "operation": "ai.generate", "outcome": outcome,
                  "duration_ms": float(v)} for v in values_ms]
        async with http.post(f"http://{target}/v1/beacons/operations", json=items) as resp:
            assert resp.status == 202, await resp.text()

    async def cache(http: aiohttp.ClientSession, target: str, hits: int, misses: int) -> None:
        async with http.post(f"http://{target}/v1/beacons/cache", json={
                "service": "studio", "cache": "templates", "hits": hits, "misses": misses,
                "evictions": 1}) as resp:
            assert resp.status == 202, await resp.text()

    async with aiohttp.ClientSession() as http:
        for target in (a, b):  # the series exist before the measured traffic
            await ops(http, target, [20.0])
            await ops(http, target, [20.0], "timeout")
            await cache(http, target, 0, 0)
        await prom.wait_scrapes("metricsd", 3, 30)
        start = time.time()
        await ops(http, a, rng.lognormal(np.log(100), 0.4, 300))
        await ops(http, b, rng.lognormal(np.log(900), 0.3, 60))
        await ops(http, b, [50.0] * 7, "timeout")
        await cache(http, a, 900, 100)
        await cache(http, b, 300, 700)
        await prom.wait_for(
            'sum(metricsd_cache_requests_total{cache="templates"})',
            lambda r: bool(r) and float(r[0]["value"][1]) >= 2000, 30)
        await prom.wait_for(
            'sum(metricsd_operations_total{operation="ai.generate"})',
            lambda r: bool(r) and float(r[0]["value"][1]) >= 371, 30)
        await prom.wait_scrapes("metricsd", 2, 30)
    end = time.time()
    period = Period("fleet", start - 30, end, "UTC")
    full = make_config({"report": {"source": {"prometheus_url": prom.url}},
                        "ingest": {"operations": objectives}})
    report = await make_report(period, full.report, None, end, objectives=full.ingest.operations)
    seconds = int(period.seconds)

    async def scalar(expr: str) -> float:
        data = await prom.api("query", query=expr, time=f"{end:.3f}")
        return float(data["result"][0]["value"][1])

    fleet95 = await scalar(
        'histogram_quantile(0.95, sum by (le) (increase(metricsd_operation_duration_seconds_'
        f'bucket{{operation="ai.generate"}}[{seconds}s])))')
    (row,) = report["operations"]
    assert row["p95_ms"] == pytest.approx(fleet95 * 1000, rel=1e-9)
    assert row["p95_ms"] > 300  # b's slow tail, not a mean of two instances' p95
    assert row["objective_value_ms"] == pytest.approx(fleet95 * 1000, rel=1e-9)
    assert row["objective_met"] is False
    timeouts = await scalar('sum(increase(metricsd_operations_total{operation="ai.generate",'
                            f'outcome="timeout"}}[{seconds}s]))')
    assert row["outcomes"]["timeout"] == round(timeouts) and row["errors"] == round(timeouts)
    assert "histogram_quantile" in row["source"] and prom.url in row["source"]
    target = next(t for t in report["targets"] if t["name"] == "ai.generate p95")
    assert target["met"] is False and "Prometheus" in target["method"]
    hits = await scalar('sum(increase(metricsd_cache_requests_total{cache="templates",'
                        f'result="hit"}}[{seconds}s]))')
    misses = await scalar('sum(increase(metricsd_cache_requests_total{cache="templates",'
                          f'result="miss"}}[{seconds}s]))')
    (crow,) = report["caches"]
    assert crow["hit_ratio"] == pytest.approx(hits / (hits + misses), rel=1e-9)
    # Near what was sent to both (1200 / 2000); increase() extrapolates each series.
    assert 0.5 < crow["hit_ratio"] < 0.7
    assert (crow["hits"], crow["misses"]) == (round(hits), round(misses))
    assert crow["target_met"] is False
    app_cache = next(t for t in report["targets"] if t["name"].startswith("App cache"))
    assert app_cache["value"] == crow["hit_ratio"] and "increase(" in app_cache["method"]
    md = render.render(report, "markdown")
    assert "| ai.generate (studio) |" in md and "| templates (studio) |" in md
