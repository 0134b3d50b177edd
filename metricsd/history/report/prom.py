"""report.source.prometheus_url: the same figures read from a Prometheus-compatible API.

A fleet of metricsd instances is scraped by one Prometheus (or VictoriaMetrics); the
report's latency figures there come from `histogram_quantile` over the bucket increases
summed across instances, and counts from counter increases. Bucket interpolation is the
method's error (it depends on the bucket bounds, not on a 1% sketch): each figure says so.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from metricsd.history.report.figures import API_LABELS
from metricsd.history.report.period import Period

API_BUCKETS = "metricsd_api_request_duration_seconds_bucket"
API_REQUESTS = "metricsd_api_requests_total"
VITAL_BUCKETS = {"LCP": "metricsd_web_vitals_lcp_seconds_bucket",
                 "INP": "metricsd_web_vitals_inp_seconds_bucket",
                 "CLS": "metricsd_web_vitals_cls_bucket"}


class PrometheusError(Exception):
    """The server did not answer a query usefully."""


def quantile_query(q: float, metric: str, by: tuple[str, ...], seconds: int) -> str:
    group = ", ".join((*by, "le"))
    return f"histogram_quantile({q}, sum by ({group}) (increase({metric}[{seconds}s])))"


class PrometheusSource:
    """Instant queries at the period's end over a range of the period's length."""

    def __init__(self, url: str, session: aiohttp.ClientSession, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.session = session
        self.timeout = timeout

    async def query(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        async with self.session.get(
                f"{self.url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"},
                timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
            body = await resp.json(content_type=None)
        if body.get("status") != "success":
            raise PrometheusError(f"{expr}: {body.get('error', resp.status)}")
        out = []
        for item in body["data"]["result"]:
            value = float(item["value"][1])
            out.append((item["metric"], value))
        return out

    async def figures(self, period: Period) -> dict[str, Any]:
        """Per-route p95/p99, requests and 5xx, and fleet-wide p95/p99 and vitals p75."""
        seconds = max(60, int(period.seconds))
        at = period.end
        p95 = await self.query(quantile_query(0.95, API_BUCKETS, API_LABELS, seconds), at)
        p99 = await self.query(quantile_query(0.99, API_BUCKETS, API_LABELS, seconds), at)
        by = ", ".join(API_LABELS)
        reqs = await self.query(f"sum by ({by}) (increase({API_REQUESTS}[{seconds}s]))", at)
        errs = await self.query(
            f'sum by ({by}) (increase({API_REQUESTS}{{status_class="5xx"}}[{seconds}s]))', at)
        fleet95 = await self.query(quantile_query(0.95, API_BUCKETS, (), seconds), at)
        fleet99 = await self.query(quantile_query(0.99, API_BUCKETS, (), seconds), at)
        vitals = {}
        for name, metric in VITAL_BUCKETS.items():
            rows = await self.query(quantile_query(0.75, metric, (), seconds), at)
            vitals[name] = _finite(rows[0][1]) if rows else None

        def key(labels: dict[str, str]) -> tuple[str, ...]:
            return tuple(labels.get(k, "") for k in API_LABELS)

        routes: dict[tuple[str, ...], dict[str, Any]] = {}
        for labels, v in p95:
            routes.setdefault(key(labels), {})["p95"] = _finite(v)
        for labels, v in p99:
            routes.setdefault(key(labels), {})["p99"] = _finite(v)
        for labels, v in reqs:
            routes.setdefault(key(labels), {})["requests"] = v
        for labels, v in errs:
            routes.setdefault(key(labels), {})["errors_5xx"] = v
        return {"routes": routes,
                "api_p95": _finite(fleet95[0][1]) if fleet95 else None,
                "api_p99": _finite(fleet99[0][1]) if fleet99 else None,
                "vitals_p75": vitals, "range_seconds": seconds}


def _finite(value: float) -> float | None:
    return value if value == value and value not in (float("inf"), float("-inf")) else None
