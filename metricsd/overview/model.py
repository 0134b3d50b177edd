"""The overview's figures: what the page and its sparkline history show, computed from
the store's window stats, the PostgreSQL snapshots and the alert engine's state.

No I/O: everything comes from what the process already holds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from metricsd.alerting.service import AlertingService
from metricsd.config import OperationConfig
from metricsd.ingest.cache import CacheState
from metricsd.ingest.operations import OUTCOMES
from metricsd.overview.history import History
from metricsd.postgres.state import PgState
from metricsd.store.series import QUANTILES, STATUS_CLASSES, Store
from metricsd.vitals import CORE, VITALS, rating

log = logging.getLogger(__name__)


@dataclass
class Sources:
    """What the overview reads; PostgreSQL and alerting are absent when not configured."""

    store: Store
    pg: PgState | None
    alerts: AlertingService | None
    objectives: Mapping[str, OperationConfig] = field(default_factory=dict)
    caches: CacheState | None = None


SPARK_POINTS = 60  # sparkline resolution: history_minutes are averaged into this many points
MAX_ROUTES = 40  # rows of the per-route table (slowest p95 first); the rest are counted
MAX_PAGES = 40  # rows of the Web Vitals table (busiest first)
MAX_ALERTS = 15  # rows of the alerts table (firing first)
MAX_OPERATIONS = 40  # rows of the operations table (furthest over objective first)
MAX_CACHES = 20  # rows of the cache table (busiest first)
TOP_KEYS_SHOWN = 5  # top keys listed per cache on the page (GET /v1/cache has them all)
REFRESH_DEFAULT_S = 30
# The overall p95 merges every route's window; beyond this many samples each route is
# thinned by a stride (still unbiased in time) and the copy is sorted off the event loop.
OVERALL_MAX_SAMPLES = 1_000_000
OFFLOAD_SAMPLES = 50_000
_Q = {q: i for i, q in enumerate(QUANTILES)}
_5XX = STATUS_CLASSES.index("5xx")

CARD_SERIES = {
    "api_p95": "api.p95_seconds",
    "api_error_ratio": "api.error_ratio",
    "pg_mean_statement": "pg.mean_statement_seconds",
    "pg_cache_hit_ratio": "pg.cache_hit_ratio",
    "pg_connections": "pg.connections",
    "alerts_firing": "alerts.firing",
}
ROUTE_SERIES_PREFIX = "route.p95_seconds:"


def _num(value: Any) -> float | None:
    """A finite float, or None (JSON null, "—" on the page)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q * 100.0)) if len(values) else math.nan


async def api_overview(store: Store, now: float) -> dict[str, Any]:
    """Per-route window rate, p50/p95/p99 and 5xx ratio, plus the overall p95 and ratio.

    Rates are those of /v1/summary (WindowStats.rates: Prometheus's rate() semantics).
    """
    family = store.families["api"]
    stats = store.window_stats(family, now)
    pool = store.pool
    cutoff = now - store.window_seconds
    rates = stats.rates(now, store.window_seconds, pool.capacity, store.started_at)
    routes: list[dict[str, Any]] = []
    windows: list[np.ndarray] = []
    total = sum(int(pool.filled[slot]) for slot in stats.slots)
    stride = max(1, math.ceil(total / OVERALL_MAX_SAMPLES))
    for row, (key, slot) in enumerate(zip(stats.keys, stats.slots, strict=True)):
        count = int(stats.counts[row])
        if count == 0:
            continue
        filled = int(pool.filled[slot])
        stamps = pool.stamps[slot, :filled]
        inside = stamps >= cutoff
        windows.append(pool.values[slot, :filled][inside][::stride])
        errors = int(stats.tag_counts[row, _5XX])
        service, route, method = key
        routes.append({
            "service": service, "route": route, "method": method,
            "requests": count, "rate": float(rates[row]),
            "p50": _num(stats.quantiles[row, _Q[0.5]]),
            "p95": _num(stats.quantiles[row, _Q[0.95]]),
            "p99": _num(stats.quantiles[row, _Q[0.99]]),
            "errors": errors, "error_ratio": errors / count,
        })
    merged = np.concatenate(windows) if windows else np.empty(0)
    if len(merged) > OFFLOAD_SAMPLES:
        p95 = await asyncio.to_thread(_quantile, merged, 0.95)
    else:
        p95 = _quantile(merged, 0.95)
    requests = sum(r["requests"] for r in routes)
    errors = sum(r["errors"] for r in routes)
    routes.sort(key=lambda r: (-(r["p95"] or 0.0), r["service"], r["route"], r["method"]))
    return {
        "routes": routes,
        "requests": requests,
        "rate": sum(r["rate"] for r in routes),
        "p95": _num(p95),
        "error_ratio": errors / requests if requests else None,
        "window_seconds": store.window_seconds,
        "window_samples": pool.capacity,
    }


def operations_overview(
    store: Store, now: float, objectives: Mapping[str, OperationConfig]
) -> list[dict[str, Any]]:
    """Per (service, operation): p50/p95/p99 against its objective and window outcomes."""
    stats = store.window_stats(store.families["operation"], now)
    rows: list[dict[str, Any]] = []
    for row, (service, operation) in enumerate(stats.keys):
        count = int(stats.counts[row])
        if count == 0:
            continue
        config = objectives.get(operation)
        objective = (config.objective_ms / 1000.0
                     if config is not None and config.objective_ms is not None else None)
        quantile = config.quantile if config is not None else 0.95
        value = _num(stats.quantiles[row, _Q[quantile]])
        outcomes = {name: int(stats.tag_counts[row, i]) for i, name in enumerate(OUTCOMES)}
        rows.append({
            "service": service, "operation": operation, "count": count,
            "p50": _num(stats.quantiles[row, _Q[0.5]]),
            "p95": _num(stats.quantiles[row, _Q[0.95]]),
            "p99": _num(stats.quantiles[row, _Q[0.99]]),
            "objective": objective, "objective_quantile": quantile,
            "objective_value": value,
            "over": objective is not None and value is not None and value > objective,
            "outcomes": outcomes, "failed_ratio": (count - outcomes["ok"]) / count,
        })
    rows.sort(key=lambda r: (-((r["objective_value"] or 0.0) / (r["objective"] or math.inf)),
                             -(r["p95"] or 0.0), r["service"], r["operation"]))
    return rows


def cache_overview(state: CacheState | None, now: float) -> list[dict[str, Any]]:
    """Every reported cache, busiest first, with its first few top keys."""
    if state is None:
        return []
    caches = state.view(now)
    for cache in caches:
        cache["top_keys"] = cache["top_keys"][:TOP_KEYS_SHOWN]
    return caches


def vitals_overview(store: Store, now: float) -> dict[str, Any]:
    """p75 per page and vital with its rating, the number Core Web Vitals assesses."""
    pages: dict[str, dict[str, Any]] = {}
    present: list[str] = []
    for name in VITALS:
        stats = store.window_stats(store.families[name], now)
        for row, key in enumerate(stats.keys):
            count = int(stats.counts[row])
            if count == 0:
                continue
            p75 = _num(stats.quantiles[row, _Q[0.75]])
            page = pages.setdefault(key[0], {"page": key[0], "reports": 0, "vitals": {}})
            page["vitals"][name] = {"p75": p75, "rating": rating(name, p75), "count": count}
            page["reports"] += count
            if name not in present:
                present.append(name)
    shown = [n for n in VITALS if n in CORE or n in present]
    rows = sorted(pages.values(), key=lambda p: (-p["reports"], p["page"]))
    return {
        "metrics": shown,
        "pages": rows,
        "thresholds": {n: {"good": VITALS[n].good, "poor": VITALS[n].poor,
                           "unit": VITALS[n].unit} for n in shown},
    }


def postgres_overview(state: PgState | None) -> dict[str, Any] | None:
    """The PostgreSQL part (PgState.overview, docs/postgres.md); None without a target."""
    return state.overview() if state is not None else None


def _since(stamp: float | None, now: float) -> str | None:
    """'12 min ago' style age of a timestamp."""
    if stamp is None:
        return None
    age = max(0.0, now - stamp)
    if age < 120:
        return f"{age:.0f} s ago"
    if age < 7200:
        return f"{age / 60:.0f} min ago"
    return f"{age / 3600:.1f} h ago"


def alerts_overview(service: AlertingService | None, now: float) -> dict[str, Any] | None:
    """Firing and pending alerts, or None when alerting is not configured."""
    if service is None:
        return None
    counts = service.counts()
    rows = []
    for alert in service.alerts(("firing", "pending")):
        labels = {k: v for k, v in alert["labels"].items() if k not in ("alertname", "severity")}
        started = alert["started_at"] if alert["state"] == "firing" else alert["active_at"]
        rows.append({
            "name": alert["name"], "state": alert["state"], "severity": alert["severity"],
            "summary": alert["summary"], "labels": labels, "since": _since(started, now),
            "value": alert["value"],
        })
    return {"firing": int(counts.get("firing", 0)), "pending": int(counts.get("pending", 0)),
            "rules": service.rule_count, "alerts": rows}


async def figures(sources: Sources, now: float) -> dict[str, Any]:
    """Everything the page shows, JSON-ready (NaN becomes None)."""
    store = sources.store
    await store.refresh(now)
    api = await api_overview(store, now)
    vitals = vitals_overview(store, now)
    pg = postgres_overview(sources.pg)
    alerts = alerts_overview(sources.alerts, now)
    operations = operations_overview(store, now, sources.objectives)
    caches = cache_overview(sources.caches, now)
    cards = {
        "api_p95": api["p95"],
        "api_error_ratio": api["error_ratio"],
        "pg_mean_statement": pg["mean_statement_seconds"] if pg else None,
        "pg_cache_hit_ratio": pg["cache_hit_ratio"] if pg else None,
        "pg_connections": pg["connections"] if pg else None,
        "pg_max_connections": pg["max_connections"] if pg else None,
        "alerts_firing": alerts["firing"] if alerts else None,
    }
    return {
        "generated_at": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "cards": cards,
        "api": api,
        "vitals": vitals,
        "postgres": pg,
        "alerts": alerts,
        "operations": operations,
        "caches": caches,
    }


def route_series(route: Mapping[str, Any]) -> str:
    return f"{ROUTE_SERIES_PREFIX}{route['service']} {route['method']} {route['route']}"


async def sample_history(
    sources: Sources, history: History, now: float | None = None
) -> None:
    """Once a minute: record the headline numbers and each route's p95 into the History."""
    now = time.time() if now is None else now
    try:
        data = await figures(sources, now)
    except Exception:  # a bad minute must not stop the job; the page shows a gap
        log.exception("history sample failed")
        return
    # Only the rows the table shows get a trend, so the History stays at a few dozen
    # series; routes that left the table are forgotten first, making room for newcomers.
    shown = data["api"]["routes"][:MAX_ROUTES]
    history.forget(set(CARD_SERIES.values()) | {route_series(r) for r in shown})
    for card, series in CARD_SERIES.items():
        value = data["cards"][card]
        if value is not None:
            history.record(series, value, now)
    for route in shown:
        if route["p95"] is not None:
            history.record(route_series(route), route["p95"], now)
