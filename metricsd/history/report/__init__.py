"""Reports: one period's figures from the history file (or a Prometheus API), rendered.

`make_report` is what the CLI (`metricsd report`), GET /reports/<period> and the weekly
schedule all call.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp

from metricsd.config import ReportConfig
from metricsd.history.report import build as builder
from metricsd.history.report import figures
from metricsd.history.report.period import Period
from metricsd.history.report.prom import PrometheusSource


def read_figures(path: str | Path | None, period: Period) -> figures.Figures:
    """A period's figures from the history file; empty when there is no file."""
    if path is None or not Path(path).exists():
        return figures.Figures(period)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        return figures.read(conn, period)
    finally:
        conn.close()


def from_history(path: str | Path | None, period: Period, config: ReportConfig, now: float,
                 advice: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report from the history file alone (blocking: call in a thread)."""
    cur = read_figures(path, period)
    prev = read_figures(path, period.previous())
    source = {"kind": "history", "path": str(path) if path else None,
              "method": builder.HISTORY_METHOD}
    return builder.build(cur, prev, config, now, source, advice)


def _prom_targets(report: dict[str, Any], cur: dict[str, Any], prev: dict[str, Any],
                  config: ReportConfig, method: str) -> None:
    t = config.targets

    def ms(v: float | None) -> float | None:
        return None if v is None else v * 1000.0

    replace = {
        "API p95": (ms(cur["api_p95"]), ms(prev["api_p95"]), t.api_p95_ms, " ms"),
        "API p99": (ms(cur["api_p99"]), ms(prev["api_p99"]), t.api_p99_ms, " ms"),
        "LCP p75": (cur["vitals_p75"]["LCP"], prev["vitals_p75"]["LCP"], t.lcp_p75_s, " s"),
        "CLS p75": (cur["vitals_p75"]["CLS"], prev["vitals_p75"]["CLS"], t.cls_p75, ""),
        "INP p75": (ms(cur["vitals_p75"]["INP"]), ms(prev["vitals_p75"]["INP"]),
                    t.inp_p75_ms, " ms"),
    }
    for i, row in enumerate(report["targets"]):
        if row["name"] in replace:
            value, before, limit, unit = replace[row["name"]]
            report["targets"][i] = builder._target(row["name"], value, before, limit, True,
                                                   unit, method)


async def from_prometheus(url: str, path: str | Path | None, period: Period,
                          config: ReportConfig, now: float, session: aiohttp.ClientSession,
                          advice: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """API latency and Web Vitals from Prometheus; the rest (statements, alerts) from the
    local history file when there is one. Every figure names its source and method."""
    report = await asyncio.to_thread(from_history, path, period, config, now, advice)
    src = PrometheusSource(url, session, config.source.timeout)
    cur = await src.figures(period)
    prev = await src.figures(period.previous())
    method = (f"Prometheus {url}: histogram_quantile over sum by (le) of "
              f"increase(..._bucket[{cur['range_seconds']}s]) across instances "
              "(bucket-interpolated)")
    _prom_targets(report, cur, prev, config, method)
    routes = []
    for key, v in cur["routes"].items():
        old = prev["routes"].get(key, {})
        p95, prev95 = v.get("p95"), old.get("p95")
        delta = p95 - prev95 if p95 is not None and prev95 is not None else None
        routes.append({
            **dict(zip(figures.API_LABELS, key, strict=True)),
            "requests": round(v.get("requests", 0.0)),
            "errors_5xx": round(v.get("errors_5xx", 0.0)),
            "p95_ms": None if p95 is None else p95 * 1000,
            "p99_ms": None if v.get("p99") is None else v["p99"] * 1000,
            "previous_p95_ms": None if prev95 is None else prev95 * 1000,
            "p95_change_ms": None if delta is None else delta * 1000,
            "p95_change_ratio": (p95 / prev95 - 1) if delta is not None and prev95 else None,
            "previous_requests": round(old.get("requests", 0.0)), "source": method})
    routes.sort(key=lambda r: (-r["requests"], r.get("route", "")))
    report["routes"] = routes
    changed = [r for r in routes if r["p95_change_ms"] is not None]
    report["regressions"]["routes"] = sorted(
        (r for r in changed if r["p95_change_ms"] > 0), key=lambda r: -r["p95_change_ms"]
    )[:config.top]
    report["improvements"]["routes"] = sorted(
        (r for r in changed if r["p95_change_ms"] < 0), key=lambda r: r["p95_change_ms"]
    )[:config.top]
    report["source"] = {"kind": "prometheus", "url": url, "method": method,
                        "other_sections": "history file" if path else "none"}
    return report


async def make_report(period: Period, config: ReportConfig, history_path: str | Path | None,
                      now: float, session: aiohttp.ClientSession | None = None,
                      advice: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report of `period` from the configured source."""
    url = config.source.prometheus_url
    if url is None:
        return await asyncio.to_thread(from_history, history_path, period, config, now, advice)
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await from_prometheus(url, history_path, period, config, now, own, advice)
    return await from_prometheus(url, history_path, period, config, now, session, advice)
