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
