"""GET /: the built-in overview page, rendered from what the process already holds.

The store's window stats, the PostgreSQL snapshots (PG_STATE) and the alert engine's
state (ALERTS); no I/O on a request. Sparklines come from a per-minute History that an
APScheduler job fills once a minute, never from the request.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import numpy as np
from aiohttp import web
from markupsafe import Markup
from yarl import URL

from metricsd.core import CONFIG
from metricsd.overview import HISTORY, VIEWS
from metricsd.overview.model import (
    CARD_SERIES,
    MAX_ALERTS,
    MAX_CACHES,
    MAX_OPERATIONS,
    MAX_PAGES,
    MAX_ROUTES,
    REFRESH_DEFAULT_S,
    SPARK_POINTS,
    route_series,
)
from metricsd.vitals import VITALS

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
TEMPLATES_DIR = Path(__file__).with_name("templates")
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
    if not (raw.isascii() and raw.isdigit()):  # "¹".isdigit() is True, int("¹") fails
        return REFRESH_DEFAULT_S
    value = int(raw)
    return 0 if value == 0 else min(3600, max(5, value))


def _with_token(request: web.Request, path: str) -> str:
    """Keep ?token= on links to protected views, so a browser that used it stays in."""
    token = request.query.get("token")
    if not token:
        return path
    return str(URL(path).update_query(token=token))


# Rendered pages of the current snapshot, by (snapshot time, refresh, ?token=): a client
# looping on / gets the same bytes until the snapshot is a second old, not a new render.
RenderKey = tuple[float, int, str | None]
RENDERED = web.AppKey("rendered_pages", dict[RenderKey, bytes])
MAX_RENDERED = 8


async def overview(request: web.Request) -> web.Response:
    """The page: cards, per-route table, Web Vitals, PostgreSQL, alerts; auto-refreshing."""
    app = request.app
    snap = await app[VIEWS].page.get()  # shared, at most a second old: never per request
    refresh = _refresh_seconds(request)
    key = (snap.computed_at, refresh, request.query.get("token"))
    rendered = app[RENDERED]
    body = rendered.get(key)
    if body is None:
        if len(rendered) >= MAX_RENDERED or any(k[0] != key[0] for k in rendered):
            rendered.clear()
        body = rendered[key] = _render(request, snap.value, snap.computed_at, refresh).encode()
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers={
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",  # ?token= must not leak in Referer
    })


def _render(request: web.Request, data: dict[str, Any], now: float, refresh: int) -> str:
    app = request.app
    history = app[HISTORY]

    def spark(series: str, label: str) -> Markup:
        return sparkline(history.downsample(series, now, SPARK_POINTS), label)

    context = {
        **data,
        "spark": spark,
        "card_series": CARD_SERIES,
        "route_series": route_series,
        "history_minutes": history.minutes,
        "refresh": refresh,
        "max_routes": MAX_ROUTES,
        "max_pages": MAX_PAGES,
        "max_alerts": MAX_ALERTS,
        "max_operations": MAX_OPERATIONS,
        "max_caches": MAX_CACHES,
        "link": lambda path: _with_token(request, path),
        "listen": app[CONFIG].listen,
    }
    return aiohttp_jinja2.render_string("overview.html", request, context)


def setup(app: web.Application) -> None:
    """Templates and routes; the History belongs to the overview subsystem."""
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
    app[RENDERED] = {}
    app.router.add_get("/", overview, name="overview")
    app.router.add_static("/static/", STATIC_DIR, name="static")
