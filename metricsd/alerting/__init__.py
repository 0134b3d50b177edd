"""Alerting: Prometheus rule files evaluated in-process (rules/), Alertmanager-style delivery
(notify/). `setup(app)` compiles the rule file once, adds the evaluation job, the collector
and readiness, and owns one cleanup context: the HTTP session receivers post through.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from metricsd.alerting.collector import AlertingCollector
from metricsd.alerting.rules.validate import compile_alerting
from metricsd.alerting.service import AlertingService
from metricsd.config import Config
from metricsd.core import CONFIG, READINESS, REGISTRY, SCHEDULER, Apply, register_reloader
from metricsd.errors import ConfigError

log = logging.getLogger(__name__)

# The alerting service (engine, dispatcher, state); absent when alerting.rules is unset.
ALERTS = web.AppKey("alerts", AlertingService)
# One client session for every outgoing notification.
HTTP = web.AppKey("http", aiohttp.ClientSession)
JOB_ID = "alerts:evaluate"


async def _alerting(app: web.Application) -> AsyncIterator[None]:
    """The HTTP session receivers use; on exit, flush state and let deliveries finish."""
    app[HTTP] = aiohttp.ClientSession()
    yield
    service = app.get(ALERTS)
    if service is not None:
        await service.close()
    await app[HTTP].close()


async def _refuse_enabling(old: Config, new: Config) -> Apply | None:
    """Without alerting at start-up there is no job or collector to reload into."""
    compile_alerting(new.alerting)
    if new.alerting.rules is not None:
        raise ConfigError("alerting.rules: turning alerting on needs a restart")
    return None


def setup(app: web.Application) -> None:
    """With `alerting.rules` set: rules loaded now, evaluated by the scheduler from start-up.

    A rule file that does not load raises ConfigError, which stops start-up.
    """
    config = app[CONFIG]
    app.cleanup_ctx.append(_alerting)
    groups = compile_alerting(config.alerting)
    if config.alerting.rules is None:
        register_reloader(app, "alerting", _refuse_enabling)
        return
    service = AlertingService(
        config.alerting,
        groups,
        registry=app[REGISTRY],
        session=lambda: app[HTTP],
        external_url=f"http://{config.listen}",
        scrape_interval_s=config.postgres.scrape_interval,
        window_s=config.ingest.window.seconds,
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
    log.info("alerting: %d rule(s) from %s, %d receiver(s)", service.rule_count,
             config.alerting.rules, len(config.alerting.receivers))

    async def reloader(old: Config, new: Config) -> Apply | None:
        """Rules compiled once (ConfigError keeps the running ones), receivers, interval."""
        if new.alerting.rules is None:
            raise ConfigError("alerting.rules: turning alerting off needs a restart")
        groups = compile_alerting(new.alerting)
        swap = service.prepare_reload(new.alerting, groups, new.postgres.scrape_interval,
                                      new.ingest.window.seconds)

        async def apply() -> None:
            swap()
            if new.alerting.evaluation_interval != old.alerting.evaluation_interval:
                app[SCHEDULER].reschedule_job(
                    JOB_ID, trigger="interval", seconds=new.alerting.evaluation_interval)
            log.info("alerting reloaded: %d rule(s), %d receiver(s)", service.rule_count,
                     len(new.alerting.receivers))

        return apply

    register_reloader(app, "alerting", reloader)
