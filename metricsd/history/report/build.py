"""A report as plain data (the JSON form): targets, regressions, statements, alerts, quality.

Pure: it takes the figures of a period and of the period before, and the targets; the
renderers (render.py) only format what is here.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from metricsd.config import ReportConfig
from metricsd.history.report.figures import (
    API_FAMILY,
    API_LABELS,
    RATINGS,
    STATUS_5XX,
    Figures,
    Series,
)
from metricsd.history.sketch import RELATIVE_ERROR

HISTORY_METHOD = (f"merged hourly log-bucket sketches (relative error <= "
                  f"{RELATIVE_ERROR:.0%}), exact hourly counts")
GAP_MINUTES = 2  # a run of at least this many unrecorded minutes is a gap


def _q(series: Series | None, q: float) -> float | None:
    return None if series is None else series.sketch.quantile(q)


def _iso(stamp: float, tz: str) -> str:
    return datetime.fromtimestamp(stamp, ZoneInfo(tz)).isoformat(timespec="minutes")


def _change(now: float | None, before: float | None) -> tuple[float | None, float | None]:
    if now is None or before is None:
        return None, None
    return now - before, (now / before - 1.0) if before else None


def _period(fig: Figures) -> dict[str, Any]:
    p = fig.period
    return {"id": p.id, "from": _iso(p.start, p.timezone), "to": _iso(p.end, p.timezone),
            "timezone": p.timezone}


def _target(name: str, value: float | None, previous: float | None, limit: float,
            below: bool, unit: str, method: str) -> dict[str, Any]:
    def met(v: float | None) -> bool | None:
        if v is None:
            return None
        return v < limit if below else v > limit
    return {"name": name, "target": f"{'<' if below else '>'} {limit:g}{unit}",
            "value": value, "previous": previous, "unit": unit, "met": met(value),
            "previous_met": met(previous), "method": method}


def _routes(cur: Figures, prev: Figures) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    before = prev.beacons.get(API_FAMILY, {})
    for key, s in cur.beacons.get(API_FAMILY, {}).items():
        p95, p99 = _q(s, 0.95), _q(s, 0.99)
        old = before.get(key)
        prev95 = _q(old, 0.95)
        delta, ratio = _change(p95, prev95)
        row: dict[str, Any] = dict(zip(API_LABELS, key, strict=False))
        row.update({"requests": s.count, "errors_5xx": s.tags[STATUS_5XX]
                    if len(s.tags) > STATUS_5XX else 0,
                    "p95_ms": _ms(p95), "p99_ms": _ms(p99), "previous_p95_ms": _ms(prev95),
                    "p95_change_ms": _ms(delta), "p95_change_ratio": ratio,
                    "previous_requests": old.count if old else 0})
        out.append(row)
    out.sort(key=lambda r: (-r["requests"], r.get("route", "")))
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _pages(cur: Figures, prev: Figures) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for family, series in cur.beacons.items():
        if family == API_FAMILY:
            continue
        before = prev.beacons.get(family, {})
        for key, s in series.items():
            p75 = _q(s, 0.75)
            prev75 = _q(before.get(key), 0.75)
            delta, ratio = _change(p75, prev75)
            out.append({"metric": family, "page": key[0] if key else "",
                        "labels": list(key), "samples": s.count, "p75": p75,
                        "previous_p75": prev75, "p75_change": delta,
                        "p75_change_ratio": ratio,
                        "ratings": dict(zip(RATINGS, s.tags[:3], strict=False))})
    out.sort(key=lambda r: (str(r["metric"]), -int(r["samples"]), str(r["page"])))
    return out


def _statements(cur: Figures, prev: Figures, slow_ms: float) -> dict[str, Any]:
    total = sum(s.time_s for s in cur.statements.values())
    rows: list[dict[str, Any]] = []
    for key, s in cur.statements.items():
        old = prev.statements.get(key)
        mean = s.mean_s
        old_mean = old.mean_s if old else None
        rows.append({
            "target": s.target, "queryid": s.queryid, "query": s.query, "calls": s.calls,
            "total_seconds": s.time_s, "share": s.time_s / total if total else None,
            "mean_ms": _ms(mean), "rows": s.rows, "plan_hash": s.plan_hash,
            "previous_total_seconds": old.time_s if old else None,
            "previous_mean_ms": _ms(old_mean),
            "total_change_seconds": s.time_s - old.time_s if old else None,
            "mean_change_ms": _ms(_change(mean, old_mean)[0]),
            "new": old is None and s.first_seen >= cur.period.start,
            "slow": mean is not None and mean * 1000.0 >= slow_ms,
        })
    rows.sort(key=lambda r: (-float(r["total_seconds"]), str(r["queryid"])))
    return {"total_seconds": total, "rows": rows}


def _alerts(fig: Figures) -> dict[str, Any]:
    start, end = fig.period.start, fig.period.end
    open_since: dict[str, tuple[float, str]] = {}
    firing_s = 0.0
    resolve_times: list[float] = []
    fired: Counter[str] = Counter()
    firing_by_rule: dict[str, float] = {}
    notified = 0
    for at, fp, kind, name, _labels in fig.alerts:
        if kind == "fired":
            if start <= at < end:
                fired[name] += 1
            open_since.setdefault(fp, (at, name))
        elif kind == "resolved" and fp in open_since:
            began, rule = open_since.pop(fp)
            inside = max(0.0, min(at, end) - max(began, start))
            firing_s += inside
            firing_by_rule[rule] = firing_by_rule.get(rule, 0.0) + inside
            if start <= at < end:
                resolve_times.append(at - began)
        elif kind == "notified" and start <= at < end:
            notified += 1
    for began, rule in open_since.values():  # still firing at the end of the period
        inside = max(0.0, end - max(began, start))
        firing_s += inside
        firing_by_rule[rule] = firing_by_rule.get(rule, 0.0) + inside
    return {
        "fired": sum(fired.values()), "resolved": len(resolve_times), "notified": notified,
        "firing_seconds": firing_s,
        "mean_time_to_resolve_seconds": (sum(resolve_times) / len(resolve_times)
                                         if resolve_times else None),
        "noisiest": [{"name": n, "fired": c, "firing_seconds": firing_by_rule.get(n, 0.0)}
                     for n, c in sorted(fired.items(), key=lambda x: (-x[1], x[0]))[:10]],
    }


def _quality(fig: Figures, now: float) -> dict[str, Any]:
    start = int(fig.period.start // 60)
    if fig.first_up_minute is not None:  # before the history began is not downtime
        start = max(start, fig.first_up_minute)
    end = int(min(fig.period.end, now) // 60)
    up = set(fig.up_minutes)
    gaps = []
    if up:  # no record at all: history was not on; say nothing rather than "down all week"
        run_start: int | None = None
        for minute in range(start, end + 1):
            missing = minute < end and minute not in up
            if missing and run_start is None:
                run_start = minute
            elif not missing and run_start is not None:
                if minute - run_start >= GAP_MINUTES:
                    gaps.append({"from": _iso(run_start * 60, fig.period.timezone),
                                 "to": _iso(minute * 60, fig.period.timezone),
                                 "minutes": minute - run_start})
                run_start = None
    return {
        "statements_evicted": int(fig.quality.get("statements_evicted", 0)),
        "samples_refused": int(fig.quality.get("samples_refused", 0)),
        "history_samples_dropped": int(fig.quality.get("history_samples_dropped", 0)),
        "recorded_minutes": len(up), "down_minutes": sum(g["minutes"] for g in gaps),
        "gaps": gaps,
    }


def _daily(fig: Figures, family: str, q: float, scale: float) -> list[dict[str, Any]]:
    days = fig.daily.get(family, {})
    out = []
    for day, _, _ in fig.period.days():
        value = _q(days.get(day), q)
        out.append({"day": day, "value": None if value is None else value * scale})
    return out


def _worst(values: list[float | None], pick: Any) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    return pick(known) if known else None


def build(cur: Figures, prev: Figures, config: ReportConfig, now: float,
          source: dict[str, Any] | None = None,
          advice: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole report for `cur`, compared with `prev`."""
    t = config.targets
    top = config.top
    method = HISTORY_METHOD
    api, api_prev = cur.merged(API_FAMILY), prev.merged(API_FAMILY)
    statements = _statements(cur, prev, t.slow_statement_ms)
    prev_statements = _statements(prev, prev, t.slow_statement_ms)
    targets = [
        _target("API p95", _ms(_q(api, 0.95)), _ms(_q(api_prev, 0.95)), t.api_p95_ms, True,
                " ms", method),
        _target("API p99", _ms(_q(api, 0.99)), _ms(_q(api_prev, 0.99)), t.api_p99_ms, True,
                " ms", method),
        _target(f"Statements with a mean over {t.slow_statement_ms:g} ms",
                float(sum(r["slow"] for r in statements["rows"])) if cur.statements else None,
                float(sum(r["slow"] for r in prev_statements["rows"]))
                if prev.statements else None, 0.5, True, "",
                "per-statement mean (total time / calls) over the period"),
    ]
    targets[-1]["target"] = "none"
    for vital, limit, scale, unit in (("LCP", t.lcp_p75_s, 1.0, " s"),
                                      ("CLS", t.cls_p75, 1.0, ""),
                                      ("INP", t.inp_p75_ms, 1000.0, " ms")):
        cur_v, prev_v = _q(cur.merged(vital), 0.75), _q(prev.merged(vital), 0.75)
        targets.append(_target(f"{vital} p75", None if cur_v is None else cur_v * scale,
                               None if prev_v is None else prev_v * scale, limit, True, unit,
                               method))
    tcur, tprev = cur.targets.values(), prev.targets.values()
    ratios = [v["cache_hit_ratio"] for v in tcur]
    if any(r is not None for r in ratios):
        targets.append(_target("Cache hit ratio (lowest target)", _worst(ratios, min),
                               _worst([v["cache_hit_ratio"] for v in tprev], min),
                               t.cache_hit_ratio, False, "", "mean of sampled interval ratios"))
    targets.append(_target("Pool utilisation (peak)",
                           _worst([v["peak_utilisation"] for v in tcur], max),
                           _worst([v["peak_utilisation"] for v in tprev], max),
                           t.pool_utilisation, True, "", "peak of sampled connections / max"))
    targets.append(_target("Replication lag (peak)",
                           _worst([v["peak_replication_lag_seconds"] for v in tcur], max),
                           _worst([v["peak_replication_lag_seconds"] for v in tprev], max),
                           t.replication_lag_s, True, " s", "peak of sampled replay lag"))
    routes = _routes(cur, prev)
    pages = _pages(cur, prev)
    changed_routes = [r for r in routes if r["p95_change_ms"] is not None]
    changed_pages = [p for p in pages if p["p75_change"] is not None]
    changed_statements = [s for s in statements["rows"] if s["total_change_seconds"] is not None]
    return {
        "title": f"metricsd performance report {cur.period.id}",
        "period": _period(cur), "previous": _period(prev), "built_at": now,
        "source": source or {"kind": "history", "method": method},
        "targets": targets,
        "routes": routes[:top * 5],
        "pages": pages[:top * 5],
        "regressions": {
            "routes": sorted((r for r in changed_routes if r["p95_change_ms"] > 0),
                             key=lambda r: -r["p95_change_ms"])[:top],
            "pages": sorted((p for p in changed_pages if p["p75_change"] > 0),
                            key=lambda p: -p["p75_change"])[:top],
            "statements_total": sorted((s for s in changed_statements
                                        if s["total_change_seconds"] > 0),
                                       key=lambda s: -s["total_change_seconds"])[:top],
            "statements_mean": sorted((s for s in changed_statements
                                       if (s["mean_change_ms"] or 0) > 0),
                                      key=lambda s: -s["mean_change_ms"])[:top],
        },
        "improvements": {
            "routes": sorted((r for r in changed_routes if r["p95_change_ms"] < 0),
                             key=lambda r: r["p95_change_ms"])[:top],
            "pages": sorted((p for p in changed_pages if p["p75_change"] < 0),
                            key=lambda p: p["p75_change"])[:top],
            "statements_total": sorted((s for s in changed_statements
                                        if s["total_change_seconds"] < 0),
                                       key=lambda s: s["total_change_seconds"])[:top],
        },
        "new_statements": [s for s in statements["rows"] if s["new"]][:top],
        "plan_changes": cur.plan_changes[:top * 5],
        "top_statements": statements["rows"][:top],
        "statements_total_seconds": statements["total_seconds"],
        "indexes": {
            "unused": [i for i in cur.indexes if i["unused"] or i["scans"] == 0][:top * 5],
            "invalid": [i for i in cur.indexes if not i["valid"]],
            "advice": advice or [],
        },
        "alerts": _alerts(cur),
        "quality": _quality(cur, now),
        "daily": {"api_p95_ms": _daily(cur, API_FAMILY, 0.95, 1000.0),
                  "lcp_p75_s": _daily(cur, "LCP", 0.75, 1.0),
                  "inp_p75_ms": _daily(cur, "INP", 0.75, 1000.0)},
    }
