"""GET /reports (the periods there are) and GET /reports/<period> (HTML, Markdown or JSON)."""

from __future__ import annotations

import time
from html import escape

from aiohttp import web

from metricsd.core import CONFIG
from metricsd.history import HISTORY_DB, REPORT_SESSION, advice
from metricsd.history.report import make_report, render
from metricsd.history.report.period import last_full_week, parse_period

_TYPES = {"html": "text/html", "markdown": "text/markdown", "json": "application/json"}


def _format(request: web.Request) -> str:
    fmt = request.query.get("format")
    if fmt is None:
        accept = request.headers.get("Accept", "")
        fmt = ("json" if "application/json" in accept
               else "markdown" if "text/markdown" in accept else "html")
    if fmt not in _TYPES:
        raise web.HTTPBadRequest(reason=f"format must be one of {', '.join(_TYPES)}")
    return fmt


def _available(request: web.Request) -> bool:
    config = request.app[CONFIG]
    return HISTORY_DB in request.app or config.report.source.prometheus_url is not None


async def list_reports(request: web.Request) -> web.Response:
    """The last full weeks within retention, newest first, and the reports already built."""
    if not _available(request):
        raise web.HTTPNotFound(reason="no history: set history.path or report.source")
    config = request.app[CONFIG]
    now = time.time()
    weeks = max(1, int(config.history.retention // (7 * 86400)))
    periods = []
    stamp = now
    for _ in range(weeks):
        p = last_full_week(stamp, config.report.timezone)
        periods.append({"period": p.id, "url": f"/reports/{p.id}"})
        stamp = p.start
    built: list[dict[str, object]] = []
    service = request.app.get(HISTORY_DB)
    if service is not None:
        rows = await service.db.read(lambda c: c.execute(
            "SELECT period, built_at FROM reports ORDER BY built_at DESC LIMIT 100").fetchall())
        built = [{"period": p, "built_at": b, "url": f"/reports/{p}"} for p, b in rows]
    if _format(request) == "json":
        return web.json_response({"periods": periods, "built": built})
    items = "".join(f'<li><a href="{escape(p["url"])}">{escape(p["period"])}</a></li>'
                    for p in periods)
    return web.Response(text=f"<!doctype html><meta charset=utf-8><title>Reports</title>"
                             f"<h1>Reports</h1><ul>{items}</ul>", content_type="text/html")


async def get_report(request: web.Request) -> web.Response:
    if not _available(request):
        raise web.HTTPNotFound(reason="no history: set history.path or report.source")
    config = request.app[CONFIG]
    fmt = _format(request)
    try:
        period = parse_period(request.match_info["period"], config.report.timezone)
    except (ValueError, OverflowError, OSError) as exc:  # OverflowError: year 9999 and 1
        raise web.HTTPBadRequest(reason=f"bad period: {exc}"[:200]) from exc
    if period.end - period.start > 400 * 86400:
        raise web.HTTPBadRequest(reason="a report covers at most 400 days")
    service = request.app.get(HISTORY_DB)
    if service is not None:
        await service.flush()  # the current hour's queued samples count too
    report = await make_report(period, config.report, service.db.path if service else None,
                               time.time(), request.app.get(REPORT_SESSION),
                               advice(request.app)())
    text = render.render(report, fmt, config.report.targets.model_dump())
    return web.Response(text=text, content_type=_TYPES[fmt], charset="utf-8")


def setup(app: web.Application) -> None:
    app.router.add_get("/reports", list_reports)
    app.router.add_get("/reports/{period}", get_report)
