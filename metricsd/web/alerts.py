"""GET /v1/alerts: current alerts, counts by state, rules and receivers as JSON."""

from __future__ import annotations

from aiohttp import web

from metricsd.alerting import ALERTS
from metricsd.alerting.rules.engine import STATES


async def get_alerts(request: web.Request) -> web.Response:
    """`?state=firing` (repeatable) narrows the list; bad states are a 400 with the reason."""
    service = request.app.get(ALERTS)
    wanted = tuple(request.query.getall("state", [])) or STATES
    unknown = sorted(set(wanted) - set(STATES))
    if unknown:
        return web.json_response(
            {"error": f"unknown state {', '.join(unknown)}; use {', '.join(STATES)}"},
            status=400,
        )
    if service is None:
        return web.json_response({"configured": False, "rules": 0,
                                  "counts": dict.fromkeys(STATES, 0), "alerts": [],
                                  "receivers": []})
    return web.json_response({
        "configured": True,
        "evaluated_at": service.engine.last_evaluation,
        "rules": service.rule_count,
        "counts": service.counts(),
        "alerts": service.alerts(wanted),
        "receivers": service.receivers(),
        "rule_health": service.rules(),
    })


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/alerts", get_alerts)
