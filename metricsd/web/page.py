"""GET /: the built-in overview page, rendered from what the process already holds.

The store's window stats, the PostgreSQL snapshots (PG_STATE) and the alert engine's
state (ALERTS); no I/O on a request. Sparklines come from a per-minute History that an
APScheduler job fills once a minute, never from the request.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import numpy as np
from aiohttp import web
from markupsafe import Markup
from yarl import URL

from metricsd.keys import ALERTS, CONFIG, HISTORY, PG_STATE, SCHEDULER, STORE
from metricsd.store.history import History
from metricsd.store.series import QUANTILES, STATUS_CLASSES, VITALS, Store

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
TEMPLATES_DIR = Path(__file__).with_name("templates")
SPARK_POINTS = 60  # sparkline resolution: history_minutes are averaged into this many points
MAX_ROUTES = 40  # rows of the per-route table (slowest p95 first); the rest are counted
MAX_PAGES = 40  # rows of the Web Vitals table (busiest first)
MAX_ALERTS = 15  # rows of the alerts table (firing first)
REFRESH_DEFAULT_S = 30
# The overall p95 merges every route's window; beyond this many samples each route is
# thinned by a stride (still unbiased in time) and the copy is sorted off the event loop.
OVERALL_MAX_SAMPLES = 1_000_000
OFFLOAD_SAMPLES = 50_000
_Q = {q: i for i, q in enumerate(QUANTILES)}
_5XX = STATUS_CLASSES.index("5xx")
VITALS_SHOWN = ("LCP", "INP", "CLS", "FCP", "TTFB")  # FID appears only when reported

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


def rating(vital: str, value: float | None) -> str | None:
    """Google's rating of a value: good <= good threshold < needs-improvement <= poor < poor."""
    if value is None:
        return None
    spec = VITALS[vital]
    if value <= spec.good:
        return "good"
    return "needs-improvement" if value <= spec.poor else "poor"


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
    shown = [n for n in VITALS if n in VITALS_SHOWN or n in present]
    rows = sorted(pages.values(), key=lambda p: (-p["reports"], p["page"]))
    return {
        "metrics": shown,
        "pages": rows,
        "thresholds": {n: {"good": VITALS[n].good, "poor": VITALS[n].poor,
                           "unit": VITALS[n].unit} for n in shown},
    }


def postgres_overview(app: web.Application) -> dict[str, Any] | None:
    """The PostgreSQL part (PgState.overview, docs/postgres.md); None without a target."""
    state = app.get(PG_STATE)
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


def alerts_overview(app: web.Application, now: float) -> dict[str, Any] | None:
    """Firing and pending alerts, or None when alerting is not configured."""
    service = app.get(ALERTS)
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


async def summary(app: web.Application, now: float) -> dict[str, Any]:
    """Everything the page shows, JSON-ready (NaN becomes None)."""
    store = app[STORE]
    await store.refresh(now)
    api = await api_overview(store, now)
    vitals = vitals_overview(store, now)
    pg = postgres_overview(app)
    alerts = alerts_overview(app, now)
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
    }


def _route_series(route: Mapping[str, Any]) -> str:
    return f"{ROUTE_SERIES_PREFIX}{route['service']} {route['method']} {route['route']}"


async def sample_history(app: web.Application, now: float | None = None) -> None:
    """Once a minute: record the headline numbers and each route's p95 into the History."""
    now = time.time() if now is None else now
    history = app[HISTORY]
    try:
        data = await summary(app, now)
    except Exception:  # a bad minute must not stop the job; the page shows a gap
        log.exception("history sample failed")
        return
    # Only the rows the table shows get a trend, so the History stays at a few dozen
    # series; routes that left the table are forgotten first, making room for newcomers.
    shown = data["api"]["routes"][:MAX_ROUTES]
    history.forget(set(CARD_SERIES.values()) | {_route_series(r) for r in shown})
    for card, series in CARD_SERIES.items():
        value = data["cards"][card]
        if value is not None:
            history.record(series, value, now)
    for route in shown:
        if route["p95"] is not None:
            history.record(_route_series(route), route["p95"], now)


# --- rendering helpers (jinja filters and globals) ---


def sparkline(values: Sequence[float] | np.ndarray, label: str = "", width: int = 120,
              height: int = 28) -> Markup:
    """Inline SVG path of `values` scaled to its own min..max; NaN leaves a gap.

    Leading gaps are dropped (no history before the process started), so a young
    process still draws across the whole box rather than in its last few pixels.
    """
    arr = np.asarray(values, dtype=np.float64)
    finite_at = np.flatnonzero(np.isfinite(arr))
    title = html.escape(label)
    if not len(finite_at):
        return Markup(
            f'<svg class="spark empty" width="{width}" height="{height}" role="img" '
            f'aria-label="{title}: no history yet"><title>{title}: no history yet</title>'
            f'<line x1="0" y1="{height - 1}" x2="{width}" y2="{height - 1}"/></svg>'
        )
    arr = arr[finite_at[0]:]
    finite = arr[np.isfinite(arr)]
    lo, hi = float(finite.min()), float(finite.max())
    pad = 3.0
    step = width / max(1, len(arr) - 1)
    parts: list[str] = []
    run = 0  # points in the current stroke
    for i, value in enumerate(arr):
        if not math.isfinite(value):
            if run == 1:  # a lone point: a zero-length stroke with round caps is a dot
                parts.append("h0.01")
            run = 0
            continue
        x = i * step if len(arr) > 1 else width / 2
        frac = (value - lo) / (hi - lo) if hi > lo else 0.5
        y = pad + (height - 2 * pad) * (1.0 - frac)
        parts.append(f"{'L' if run else 'M'}{x:.1f} {y:.1f}")
        run += 1
    if run == 1:
        parts.append("h0.01" if len(arr) > 1 else f"M0 {height / 2:.1f}H{width}")
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="none" role="img" aria-label="{title}"><title>{title}</title>'
        f'<path d="{" ".join(parts)}"/></svg>'
    )


def fmt_seconds(value: float | None) -> str:
    """Latency for people: 850 µs, 12.3 ms, 1.24 s."""
    if value is None:
        return "—"
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    if value < 1.0:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def fmt_ratio(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{digits}f} %"


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}/s" if value >= 0.01 else "<0.01/s"


def fmt_vital(value: float | None, vital: str) -> str:
    if value is None:
        return "—"
    if not VITALS[vital].unit:
        return f"{value:.3f}".rstrip("0").rstrip(".") if value else "0"
    return f"{value * 1e3:.0f} ms" if value < 1.0 else f"{value:.2f} s"


def fmt_count(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1e6:
        return f"{value / 1e6:.1f} M"
    if value >= 1e4:
        return f"{value / 1e3:.0f} k"
    return f"{value:,.0f}"


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _refresh_seconds(request: web.Request) -> int:
    raw = request.query.get("refresh", "")
    if not raw.isdigit():
        return REFRESH_DEFAULT_S
    value = int(raw)
    return 0 if value == 0 else min(3600, max(5, value))


def _with_token(request: web.Request, path: str) -> str:
    """Keep ?token= on links to protected views, so a browser that used it stays in."""
    token = request.query.get("token")
    if not token:
        return path
    return str(URL(path).update_query(token=token))


async def overview(request: web.Request) -> web.Response:
    """The page: cards, per-route table, Web Vitals, PostgreSQL, alerts; auto-refreshing."""
    app = request.app
    now = time.time()
    data = await summary(app, now)
    history = app[HISTORY]

    def spark(series: str, label: str) -> Markup:
        return sparkline(history.downsample(series, now, SPARK_POINTS), label)

    context = {
        **data,
        "spark": spark,
        "card_series": CARD_SERIES,
        "route_series": _route_series,
        "history_minutes": history.minutes,
        "refresh": _refresh_seconds(request),
        "max_routes": MAX_ROUTES,
        "max_pages": MAX_PAGES,
        "max_alerts": MAX_ALERTS,
        "link": lambda path: _with_token(request, path),
        "listen": app[CONFIG].listen,
    }
    response = aiohttp_jinja2.render_template("overview.html", request, context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # ?token= must not leak in Referer
    return response


def setup(app: web.Application) -> None:
    """Templates, routes, the per-minute History and its sampling job."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Inlined into the page (one request, nothing for ?token= to follow); read once here.
    env.globals["css"] = Markup((STATIC_DIR / "overview.css").read_text(encoding="utf-8"))
    env.filters.update(seconds=fmt_seconds, ratio=fmt_ratio, rate=fmt_rate, vital=fmt_vital,
                       count=fmt_count, bytes=fmt_bytes)
    app[HISTORY] = History(app[CONFIG].admin.history_minutes,
                           max_series=len(CARD_SERIES) + MAX_ROUTES, started_at=time.time())
    app.router.add_get("/", overview, name="overview")
    app.router.add_static("/static/", STATIC_DIR, name="static")
    app[SCHEDULER].add_job(
        sample_history, "interval", seconds=60, args=[app], id="history:sample",
        max_instances=1, coalesce=True,
    )
