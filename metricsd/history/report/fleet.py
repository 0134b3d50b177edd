"""Operations and caches of a fleet, read from Prometheus like its routes (report.source).

Operation latency comes from `histogram_quantile` over metricsd_operation_duration_seconds
buckets summed across instances, counts by outcome from metricsd_operations_total, and
cache lookups from metricsd_cache_requests_total and evictions, all as `increase()` over the
period (Prometheus extrapolates increases to the range's edges: counts are rounded, hit
ratios use the unrounded increases). Each row says so in its `source`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metricsd.config import OperationConfig, ReportTargetsConfig
from metricsd.history.report import build as builder
from metricsd.history.report.figures import OPERATION_LABELS, OUTCOMES
from metricsd.history.report.period import Period
from metricsd.history.report.prom import PrometheusSource, _finite, quantile_query

OPERATION_BUCKETS = "metricsd_operation_duration_seconds_bucket"
OPERATIONS_TOTAL = "metricsd_operations_total"
CACHE_REQUESTS = "metricsd_cache_requests_total"
CACHE_EVICTIONS = "metricsd_cache_evictions_total"
CACHE_LABELS = ("service", "cache")
Key = tuple[str, ...]


def _key(labels: Mapping[str, str], names: tuple[str, ...]) -> Key:
    return tuple(labels.get(k, "") for k in names)


async def operation_figures(src: PrometheusSource, period: Period,
                            objectives: Mapping[str, OperationConfig]) -> dict[str, Any]:
    """Per (service, operation) p95/p99 and counts by outcome; per operation its objective's
    quantile over every service and instance."""
    seconds = max(60, int(period.seconds))
    at = period.end
    ops: dict[Key, dict[str, Any]] = {}
    for q, name in ((0.95, "p95"), (0.99, "p99")):
        for labels, v in await src.query(
                quantile_query(q, OPERATION_BUCKETS, OPERATION_LABELS, seconds), at):
            ops.setdefault(_key(labels, OPERATION_LABELS), {})[name] = _finite(v)
    by = ", ".join((*OPERATION_LABELS, "outcome"))
    for labels, v in await src.query(
            f"sum by ({by}) (increase({OPERATIONS_TOTAL}[{seconds}s]))", at):
        row = ops.setdefault(_key(labels, OPERATION_LABELS), {})
        row.setdefault("outcomes", {})[labels.get("outcome", "")] = v
    per_operation: dict[str, float | None] = {}
    for q in sorted({op.quantile for op in objectives.values() if op.objective_ms}):
        for labels, v in await src.query(
                quantile_query(q, OPERATION_BUCKETS, ("operation",), seconds), at):
            name = labels.get("operation", "")
            op = objectives.get(name)
            if op is not None and op.quantile == q:
                per_operation[name] = _finite(v)
    return {"operations": ops, "objective_values": per_operation}


async def cache_figures(src: PrometheusSource, period: Period) -> dict[Key, dict[str, float]]:
    """Per (service, cache): hits, misses and evictions increased over the period."""
    seconds = max(60, int(period.seconds))
    at = period.end
    out: dict[Key, dict[str, float]] = {}
    by = ", ".join((*CACHE_LABELS, "result"))
    for labels, v in await src.query(
            f"sum by ({by}) (increase({CACHE_REQUESTS}[{seconds}s]))", at):
        result = {"hit": "hits", "miss": "misses"}.get(labels.get("result", ""))
        if result is not None:
            out.setdefault(_key(labels, CACHE_LABELS), {})[result] = v
    for labels, v in await src.query(
            f"sum by ({', '.join(CACHE_LABELS)}) (increase({CACHE_EVICTIONS}[{seconds}s]))", at):
        out.setdefault(_key(labels, CACHE_LABELS), {})["evictions"] = v
    return out


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0


def _met(value_ms: float | None, op: OperationConfig | None) -> bool | None:
    if value_ms is None or op is None or op.objective_ms is None:
        return None
    return value_ms <= op.objective_ms


def operation_rows(cur: dict[str, Any], prev: dict[str, Any],
                   objectives: Mapping[str, OperationConfig], method: str
                   ) -> list[dict[str, Any]]:
    """The report's operation rows from two periods' Prometheus figures."""
    rows: list[dict[str, Any]] = []
    for key, v in cur["operations"].items():
        old = prev["operations"].get(key, {})
        p95, prev95 = v.get("p95"), old.get("p95")
        delta = p95 - prev95 if p95 is not None and prev95 is not None else None
        outcomes = {o: round(v.get("outcomes", {}).get(o, 0.0)) for o in OUTCOMES}
        count = sum(outcomes.values())
        row: dict[str, Any] = dict(zip(OPERATION_LABELS, key, strict=True))
        op = objectives.get(row["operation"])
        has = op is not None and op.objective_ms is not None
        value = _ms(cur["objective_values"].get(row["operation"])) if has else None
        prev_value = _ms(prev["objective_values"].get(row["operation"])) if has else None
        row.update({
            "count": count, "errors": count - outcomes["ok"], "outcomes": outcomes,
            "p95_ms": _ms(p95), "p99_ms": _ms(v.get("p99")), "previous_p95_ms": _ms(prev95),
            "p95_change_ms": _ms(delta),
            "p95_change_ratio": (p95 / prev95 - 1) if delta is not None and prev95 else None,
            "previous_count": round(sum(old.get("outcomes", {}).values())),
            "objective_ms": op.objective_ms if has and op else None,
            "objective_quantile": op.quantile if has and op else None,
            # The objective's quantile over the operation's whole fleet (every service).
            "objective_value_ms": value, "objective_met": _met(value, op),
            "previous_objective_value_ms": prev_value,
            "previous_objective_met": _met(prev_value, op), "source": method})
        rows.append(row)
    rows.sort(key=lambda r: (-r["count"], r.get("operation", ""), r.get("service", "")))
    return rows


def operation_targets(cur: dict[str, Any], prev: dict[str, Any],
                      objectives: Mapping[str, OperationConfig], method: str
                      ) -> list[dict[str, Any]]:
    """One target row per operation with an objective (as build._operation_targets)."""
    names = sorted({k[1] for k in (*cur["operations"], *prev["operations"])})
    rows: list[dict[str, Any]] = []
    for name in names:
        op = objectives.get(name)
        if op is None or op.objective_ms is None:
            continue
        value = _ms(cur["objective_values"].get(name))
        before = _ms(prev["objective_values"].get(name))
        rows.append(builder.operation_target(name, op, value, before, method))
    return rows


def cache_rows(cur: dict[Key, dict[str, float]], prev: dict[Key, dict[str, float]],
               targets: ReportTargetsConfig, method: str) -> list[dict[str, Any]]:
    """The report's cache rows from two periods' Prometheus figures, busiest first."""
    def ratio(v: Mapping[str, float] | None) -> float | None:
        if not v:
            return None
        total = v.get("hits", 0.0) + v.get("misses", 0.0)
        return v.get("hits", 0.0) / total if total else None

    rows: list[dict[str, Any]] = []
    for (service, cache), v in cur.items():
        old = prev.get((service, cache))
        hits, misses = round(v.get("hits", 0.0)), round(v.get("misses", 0.0))
        r, old_r = ratio(v), ratio(old)
        judged = hits + misses >= targets.app_cache_min_requests and r is not None
        rows.append({
            "service": service, "cache": cache, "hits": hits, "misses": misses,
            "evictions": round(v.get("evictions", 0.0)), "requests": hits + misses,
            "hit_ratio": r, "previous_hit_ratio": old_r,
            "previous_requests": round(old.get("hits", 0.0) + old.get("misses", 0.0))
            if old else 0,
            "hit_ratio_change": r - old_r if r is not None and old_r is not None else None,
            "target_met": (r >= targets.app_cache_hit_ratio) if judged and r is not None
            else None, "source": method})
    rows.sort(key=lambda x: (-x["requests"], x["service"], x["cache"]))
    return rows


def lowest_ratio(rows: list[dict[str, Any]], min_requests: int) -> float | None:
    known = [r["hit_ratio"] for r in rows
             if r["hit_ratio"] is not None and r["requests"] >= min_requests]
    return min(known) if known else None


async def apply(report: dict[str, Any], src: PrometheusSource, period: Period,
                targets: ReportTargetsConfig, objectives: Mapping[str, OperationConfig],
                top: int, url: str) -> None:
    """Replace the operations and caches parts of `report` with the fleet's figures."""
    seconds = max(60, int(period.seconds))
    cur_ops = await operation_figures(src, period, objectives)
    prev_ops = await operation_figures(src, period.previous(), objectives)
    op_method = (f"Prometheus {url}: histogram_quantile over sum by (le) of "
                 f"increase({OPERATION_BUCKETS}[{seconds}s]) across instances "
                 f"(bucket-interpolated); counts from increase({OPERATIONS_TOTAL})")
    ops = operation_rows(cur_ops, prev_ops, objectives, op_method)
    report["operations"] = ops[:top * 5]
    changed = [o for o in ops if o["p95_change_ms"] is not None]
    report["regressions"]["operations"] = sorted(
        (o for o in changed if o["p95_change_ms"] > 0), key=lambda o: -o["p95_change_ms"])[:top]
    report["improvements"]["operations"] = sorted(
        (o for o in changed if o["p95_change_ms"] < 0), key=lambda o: o["p95_change_ms"])[:top]
    # Targets from the history file for the same figures are replaced, in place of them.
    report["targets"] = [t for t in report["targets"]
                         if t.get("kind") not in ("operation", "app_cache")]
    report["targets"] += operation_targets(cur_ops, prev_ops, objectives, op_method)
    cache_method = (f"Prometheus {url}: increase({CACHE_REQUESTS}[{seconds}s]) summed across "
                    "instances (extrapolated to the range; counts rounded)")
    prev_caches = await cache_figures(src, period.previous())
    caches = cache_rows(await cache_figures(src, period), prev_caches, targets, cache_method)
    report["caches"] = caches[:top * 5]
    if caches:
        prev_rows = cache_rows(prev_caches, {}, targets, cache_method)
        value = lowest_ratio(caches, targets.app_cache_min_requests)
        before = lowest_ratio(prev_rows, targets.app_cache_min_requests)
        report["targets"].append(builder.app_cache_target(value, before, targets,
                                                          cache_method))
