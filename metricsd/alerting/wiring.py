"""Wiring of alerting into the application: service, job, collector, route, shutdown."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from metricsd.alerting.collector import AlertingCollector
from metricsd.alerting.rules import load_rule_file
from metricsd.alerting.service import AlertingService
from metricsd.keys import ALERTS, CONFIG, HTTP, READINESS, REGISTRY, SCHEDULER, STORE
from metricsd.web import alerts as alerts_view

log = logging.getLogger(__name__)
JOB_ID = "alerts:evaluate"


def setup_alerting(app: web.Application) -> None:
    """With `alerting.rules` set: rules loaded now, evaluated by the scheduler from start-up."""
    alerts_view.setup(app)
    config = app[CONFIG]
    if config.alerting.rules is None:
        return
    groups = load_rule_file(config.alerting.rules)
    service = AlertingService(
        config.alerting,
        groups,
        registry=app[REGISTRY],
        session=lambda: app[HTTP],
        store=app[STORE],
        external_url=f"http://{config.listen}",
    )
    app[ALERTS] = service
    app[REGISTRY].register(AlertingCollector(service))
    app[SCHEDULER].add_job(
        service.evaluate_once, "interval", seconds=config.alerting.evaluation_interval,
        id=JOB_ID, name=JOB_ID, max_instances=1, coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    app[READINESS]["alerting"] = lambda: {
        "ok": True, "required": False, "rules": service.rule_count,
        "receivers_down": [r["name"] for r in service.receivers() if not r["up"]],
    }

    async def close(app: web.Application) -> None:
        await service.close()

    app.on_shutdown.append(close)
    log.info("alerting: %d rule(s) from %s, %d receiver(s)", service.rule_count,
             config.alerting.rules, len(config.alerting.receivers))
