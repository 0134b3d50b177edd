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
from metricsd.ingest.attribution import AttributionStore
from metricsd.ingest.cache import CacheState
from metricsd.ingest.operations import OUTCOMES
from metricsd.overview.history import History
from metricsd.postgres.state import PgState
from metricsd.store.series import QUANTILES, STATUS_CLASSES, Store
from metricsd.vitals import CORE, VITALS, passes, rating

log = logging.getLogger(__name__)


@dataclass
class Sources:
    """What the overview reads; PostgreSQL and alerting are absent when not configured."""

    store: Store
    pg: PgState | None
    alerts: AlertingService | None
    vitals_min_views: int = 20  # ingest.vitals_min_page_views: below it, no CWV verdict
    attribution: AttributionStore | None = None  # "what makes this page slow"
    objectives: Mapping[str, OperationConfig] = field(default_factory=dict)
    caches: CacheState | None = None


SPARK_POINTS = 60  # sparkline resolution: history_minutes are averaged into this many points
MAX_ROUTES = 40  # rows of the per-route table (slowest p95 first); the rest are counted
MAX_PAGES = 40  # rows of the Web Vitals table (busiest first)
MAX_SLOW_PAGES = 10  # pages in "what makes this page slow" (busiest first)
MAX_ALERTS = 15  # rows of the alerts table (firing first)
MAX_OPERATIONS = 40  # rows of the operations table (furthest over objective first)
MAX_CACHES = 20  # rows of the cache table (busiest first)
TOP_KEYS_SHOWN = 5  # top keys listed per cache on the page (GET /v1/cache has them all)
REFRESH_DEFAULT_S = 30
# The overall p95 merges every route's window; beyond this many samples the rings are
# read at every stride-th position, and the merge is sorted off the event loop.
OVERALL_MAX_SAMPLES = 1_000_000
YIELD_ROWS = 1000  # rows of Python work between two yields to the event loop
MERGE_CELLS = 1 << 18  # ring cells gathered per step of the overall p95 merge (~1 ms)
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


def quantile(values: np.ndarray, q: float) -> float:
    """numpy.percentile(values, 100 q) bit for bit (linear), by a two-rank partition.

    numpy's own percentile holds the GIL for most of its run (about 180 ms for a million
    samples); np.partition releases it and costs a seventh of that.
    """
    n = len(values)
    if n == 0:
        return math.nan
    virtual = (n - 1) * q
    lo = math.floor(virtual)
    hi = min(lo + 1, n - 1)
    frac = virtual - lo
    part = np.partition(values, [lo, hi] if hi != lo else lo)
    a, b = float(part[lo]), float(part[hi])
    if a == b:
        return a
    diff = b - a
    return b - diff * (1.0 - frac) if frac >= 0.5 else a + diff * frac


async def _merged_p95(store: Store, slots: np.ndarray, cutoff: float) -> float:
    """p95 of every route's window merged into one sample.

    Beyond OVERALL_MAX_SAMPLES samples only every `stride`-th ring position is read (ring
    positions carry no order of size, so the thinning is unbiased). The cells are
    gathered on the loop about MERGE_CELLS at a time (a millisecond each) and the
    percentile runs in a worker thread, so the loop never holds the whole merge.
    """
    pool = store.pool
    filled = pool.filled[slots]
    total = int(filled.sum())
    if total == 0:
        return math.nan
    stride = max(1, math.ceil(total / OVERALL_MAX_SAMPLES))
    width = int(filled.max())
    cols = np.arange(0, width, stride)
    per_chunk = max(1, MERGE_CELLS // width)
    parts: list[np.ndarray] = []
    for start in range(0, len(slots), per_chunk):
        chunk = slots[start : start + per_chunk]
        # Whole rows up to `width` copy at memory speed; the stride is a view of the copy.
        stamps = pool.stamps[chunk, :width][:, ::stride]
        valid = (cols[None, :] < pool.filled[chunk, None]) & (stamps >= cutoff)
        parts.append(pool.values[chunk, :width][:, ::stride][valid])
        await asyncio.sleep(0)
    return await asyncio.to_thread(lambda: quantile(np.concatenate(parts), 0.95))


async def api_overview(store: Store, now: float) -> dict[str, Any]:
    """The slowest routes (p95 first) with rate, p50/p95/p99 and 5xx ratio, plus the
    overall p95 and ratio over every route.

    Rates are those of /v1/summary (WindowStats.rates: Prometheus's rate() semantics).
    Only the MAX_ROUTES rows the page shows become dicts; totals are numpy sums, so the
    cost per route is a few array cells, not Python objects.
    """
    family = store.families["api"]
    stats = store.window_stats(family, now)
    pool = store.pool
    rates = stats.rates(now, store.window_seconds, pool.capacity, store.started_at)
    counts = stats.counts
    live = np.flatnonzero(counts > 0)
    errors = stats.tag_counts[:, _5XX]
    p95s = stats.quantiles[:, _Q[0.95]]
    sort_p95 = np.where(np.isfinite(p95s), p95s, 0.0)[live]
    # The rows at or above the MAX_ROUTES-th largest p95 (ties included), then the exact
    # order (-p95, service, route, method) among those few.
    if len(live) > MAX_ROUTES:
        bound = -np.partition(-sort_p95, MAX_ROUTES - 1)[MAX_ROUTES - 1]
        candidates = live[sort_p95 >= bound]
    else:
        candidates = live
    rows = []
    for row in candidates.tolist():
        count = int(counts[row])
        service, route, method = stats.keys[row]
        rows.append({
            "service": service, "route": route, "method": method,
            "requests": count, "rate": float(rates[row]),
            "p50": _num(stats.quantiles[row, _Q[0.5]]),
            "p95": _num(p95s[row]),
            "p99": _num(stats.quantiles[row, _Q[0.99]]),
            "errors": int(errors[row]), "error_ratio": int(errors[row]) / count,
        })
    rows.sort(key=lambda r: (-(r["p95"] or 0.0), r["service"], r["route"], r["method"]))
    async with store.reading:  # no slot changes hands while its rows are copied
        p95 = await _merged_p95(store, stats.slots[live], now - store.window_seconds)
    requests = int(counts[live].sum())
    error_total = int(errors[live].sum())
    return {
        "routes": rows[:MAX_ROUTES],
        "route_count": len(live),
        "requests": requests,
        "rate": float(rates[live].sum()),
        "p95": _num(p95),
        "error_ratio": error_total / requests if requests else None,
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


async def vitals_overview(store: Store, now: float, min_views: int = 20,
                          attribution: AttributionStore | None = None) -> dict[str, Any]:
    """p75 per page, device and vital with its rating, and the Core Web Vitals verdict."""
    pages: dict[tuple[str, str], dict[str, Any]] = {}
    present: list[str] = []
    for name in VITALS:
        stats = store.window_stats(store.families[name], now)
        p75s = stats.quantiles[:, _Q[0.75]].tolist()
        counts = stats.counts.tolist()
        for row, key in enumerate(stats.keys):
            if row % YIELD_ROWS == YIELD_ROWS - 1:
                await asyncio.sleep(0)  # thousands of pages: let beacons in between
            count = counts[row]
            if count == 0:
                continue
            p75 = _num(p75s[row])
            page = pages.setdefault((key[0], key[1]), {
                "page": key[0], "device": key[1], "reports": 0, "views": 0, "vitals": {}})
            page["vitals"][name] = {"p75": p75, "rating": rating(name, p75), "count": count}
            page["reports"] += count
            if name in ("LCP", "INP", "CLS"):
                page["views"] = max(page["views"], count)
            if name not in present:
                present.append(name)
    for page in pages.values():
        p75s = {name: v["p75"] for name, v in page["vitals"].items()}
        page["pass"] = passes(p75s) if page["views"] >= min_views else None
    shown = [n for n in VITALS if n in CORE or n in present]
    rows = sorted(pages.values(), key=lambda p: (-p["reports"], p["page"], p["device"]))
    return {
        "metrics": shown,
        "pages": rows[:MAX_PAGES],
        "page_count": len(rows),
        "min_views": min_views,
        "slow": slow_pages(attribution, [r["page"] for r in rows]),
        "thresholds": {n: {"good": VITALS[n].good, "poor": VITALS[n].poor,
                           "unit": VITALS[n].unit} for n in shown},
    }


def slow_pages(attribution: AttributionStore | None, order: list[str]) -> list[dict[str, Any]]:
    """"What makes this page slow": the top target per vital, resource and script."""
    if attribution is None:
        return []
    out = []
    for page in dict.fromkeys(order):
        entry = attribution.pages.get(page)
        if entry is None:
            continue
        causes = [{"vital": vital, "kind": "element", **hh.top()[0]}
                  for vital, hh in sorted(entry.targets.items()) if hh.items]
        if entry.resources.items:
            causes.append({"vital": "LCP", "kind": "resource", **entry.resources.top()[0]})
        if entry.scripts.items:
            causes.append({"vital": "INP", "kind": "script", **entry.scripts.top()[0]})
        if causes:
            out.append({"page": page, "causes": causes})
        if len(out) >= MAX_SLOW_PAGES:
            break
    return out


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
    vitals = await vitals_overview(store, now, sources.vitals_min_views, sources.attribution)
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
    """Record the headline numbers and each route's p95 at `now` into the History."""
    now = time.time() if now is None else now
    try:
        data = await figures(sources, now)
    except Exception:  # a bad minute must not stop the job; the page shows a gap
        log.exception("history sample failed")
        return
    record_history(data, history, now)


def record_history(data: Mapping[str, Any], history: History, now: float) -> None:
    """Once a minute: the cards and the shown routes' p95 of one page snapshot."""
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
