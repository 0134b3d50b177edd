"""AlertingService: the engine, the dispatcher and the state file, run by one scheduled job.

`evaluate_once()` is the `alerts:evaluate` APScheduler job: bring the sources up to date
(Samples.prepare), read the current samples the rules need (Samples.current), evaluate
(pure), hand firing and resolved alerts to the dispatcher (which only schedules tasks),
and request a state save when anything changed. It never waits for a receiver.

Read API for the page and /v1/alerts (app[ALERTS]): `alerts()`, `counts()`, `rule_count`,
`receivers()`; every value is a JSON-ready copy.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from metricsd.alerting.notify.deadletter import DeadLetterLog
from metricsd.alerting.notify.dispatch import Dispatcher
from metricsd.alerting.notify.notification import NotifyAlert, generator_url
from metricsd.alerting.notify.receivers import RECEIVER_KINDS, Receiver
from metricsd.alerting.notify.routing import Router
from metricsd.alerting.restore import grace_by_rule
from metricsd.alerting.rules.engine import STATES, Alert, AlertEngine
from metricsd.alerting.rules.load import RuleGroup, rule_count
from metricsd.alerting.state import StateFile
from metricsd.alerting.stats import AlertingStats
from metricsd.config import AlertingConfig
from metricsd.export.read import Samples
from metricsd.export.registry import Registry

log = logging.getLogger(__name__)


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


class AlertingService:
    """Everything alerting holds at run time; one per application."""

    def __init__(
        self,
        config: AlertingConfig,
        groups: list[RuleGroup],
        registry: Registry | CollectorRegistry,
        session: Callable[[], aiohttp.ClientSession],
        external_url: str = "",
        clock: Callable[[], float] = time.time,
        scrape_interval_s: float = 15.0,
        window_s: float = 300.0,
    ) -> None:
        self.config = config
        self.registry = registry
        self.samples = Samples(registry)
        self.clock = clock
        self.session = session
        self.external_url = config.external_url or external_url
        self.stats = AlertingStats()
        self.engine = AlertEngine(groups, external_url=self.external_url, clock=clock)
        # Seconds each rule's restored alerts are held after a restart (alerting/restore.py).
        self.grace = grace_by_rule(groups, config, scrape_interval_s, window_s)
        self.receivers_by_name: dict[str, Receiver] = {
            r.name: RECEIVER_KINDS[r.format].from_config(
                r, stats=self.stats, evaluation_interval=config.evaluation_interval)
            for r in config.receivers
        }
        self.state = StateFile(config.state_file, self.snapshot, self.stats)
        self.dead_letter = DeadLetterLog(config.dead_letter_file, self.stats,
                                         config.dead_letter_buffer)
        self.dispatcher: Dispatcher | None = None
        if self.receivers_by_name:
            self.dispatcher = Dispatcher(
                Router(config), self.receivers_by_name, session, self.stats,
                self.dead_letter,
                on_change=self.state.request_save, fallback=config.fallback_receiver,
                external_url=self.external_url, clock=clock,
            )
        self._restored = False
        self._closed = False
        self._failing = False

    @property
    def rule_count(self) -> int:
        return rule_count(self.engine.groups)

    # ---- the job ----------------------------------------------------------------------

    async def restore(self) -> None:
        """Load the state file once, before the first evaluation."""
        if self._restored:
            return
        self._restored = True
        document = await self.state.load()
        restored = self.engine.restore([a.model_dump() for a in document.alerts],
                                       self.clock(), self.grace)
        if self.dispatcher is not None:
            self.dispatcher.restore({key: entry.model_dump()
                                     for key, entry in document.notifications.items()})
        if restored or self.engine.orphans:
            log.info("restored %d alert(s) from %s, held for up to %gs while fresh data "
                     "arrives", restored, self.config.state_file,
                     max(self.grace.values(), default=0.0))

    async def evaluate_once(self, now: float | None = None) -> bool:
        """One evaluation tick; True when an alert changed state. Never raises."""
        if self._closed:
            return False
        try:
            await self.restore()
            now = self.clock() if now is None else now
            await self.samples.prepare(now)
            started = time.perf_counter()
            samples = self.samples.current(self.engine.names)
            changed = self.engine.evaluate(samples, now)
            elapsed = time.perf_counter() - started
        except Exception:  # the scheduler must keep ticking; log once per failure streak
            if not self._failing:
                log.exception("alert evaluation failed")
                self._failing = True
            return False
        self._failing = False
        stats = self.stats
        stats.evaluations += 1
        stats.last_evaluation_seconds = elapsed
        stats.evaluation_seconds_sum += elapsed
        stats.last_evaluation_timestamp = now
        for key, health in self.engine.health.items():
            stats.evaluation_failures[self.engine.rules[key].name] = health.failures
        if self.dispatcher is not None:
            self.dispatcher.update(self.notify_alerts())
        if changed:
            self.state.request_save()
        if self.dead_letter.pending:
            await self.dead_letter.retry()
        return changed

    def notify_alerts(self) -> list[NotifyAlert]:
        """Firing and resolved alerts as Alertmanager would receive them from Prometheus."""
        out = []
        for alert in self.engine.notifiable():
            rule = self.engine.rule_of(alert)
            expr = rule.expr if rule is not None else ""
            out.append(NotifyAlert(
                fingerprint=alert.fingerprint,
                labels=dict(alert.labels),
                annotations=dict(alert.annotations),
                starts_at=alert.fired_at if alert.fired_at is not None else alert.active_at,
                ends_at=alert.resolved_at if alert.state == "resolved" else None,
                generator_url=generator_url(self.external_url, expr) if expr else "",
                value=_number(alert.value),
            ))
        return out

    def snapshot(self) -> dict[str, Any]:
        """What the state file holds."""
        return {
            "saved_at": self.clock(),
            "alerts": self.engine.dump(),
            "notifications": self.dispatcher.dump() if self.dispatcher else {},
        }

    async def close(self) -> None:
        """Shutdown: stop group timers and write the last state."""
        self._closed = True
        if self.dispatcher is not None:
            await self.dispatcher.close()
        await self.dead_letter.close()
        self.state.request_save()
        await self.state.flush()

    # ---- reload -----------------------------------------------------------------------

    def prepare_reload(self, config: AlertingConfig, groups: list[RuleGroup],
                       scrape_interval_s: float, window_s: float) -> Callable[[], None]:
        """Build everything the new config needs (may raise); the returned call swaps it in.

        Alerts of rules that still exist (same group, name and position: the engine's rule
        key) keep their state, start, hold and notification log; the next evaluation judges
        them by the new expression, as Prometheus's reload does. Firing alerts of removed
        rules resolve once.
        """
        engine = AlertEngine(groups, external_url=config.external_url or self.external_url,
                             clock=self.clock)
        receivers = {r.name: RECEIVER_KINDS[r.format].from_config(
                         r, stats=self.stats, evaluation_interval=config.evaluation_interval)
                     for r in config.receivers}
        router = Router(config) if receivers else None
        grace = grace_by_rule(groups, config, scrape_interval_s, window_s)

        def apply() -> None:
            now = self.clock()
            old = self.engine
            for key, alerts in old.active.items():
                if key in engine.active:
                    engine.active[key] = alerts
                    engine.health[key] = old.health[key]
                    if key in old.held:
                        engine.held[key] = old.held[key]
                        engine.hold_until[key] = old.hold_until[key]
                    continue
                for alert in alerts.values():
                    if alert.state == "firing":
                        alert.state, alert.resolved_at = "resolved", now
                        engine.orphans.append(alert)
            engine.orphans.extend(old.orphans)
            engine.last_evaluation = old.last_evaluation
            self.engine, self.grace, self.config = engine, grace, config
            self.external_url = engine.external_url
            for name in set(self.receivers_by_name) - set(receivers):
                self.stats.receiver_up.pop(name, None)
            self.receivers_by_name = receivers
            self.state.path = Path(config.state_file) if config.state_file else None
            self.dead_letter.path = Path(config.dead_letter_file) \
                if config.dead_letter_file else None
            self.dead_letter.buffer = config.dead_letter_buffer
            if router is None:
                if self.dispatcher is not None:
                    asyncio.get_running_loop().create_task(self.dispatcher.close())
                self.dispatcher = None
            elif self.dispatcher is None:
                self.dispatcher = Dispatcher(
                    router, receivers, self.session, self.stats, self.dead_letter,
                    on_change=self.state.request_save, fallback=config.fallback_receiver,
                    external_url=self.external_url, clock=self.clock,
                )
            else:
                self.dispatcher.reconfigure(router, receivers, config.fallback_receiver)
                self.dispatcher.external_url = self.external_url
            self.state.request_save()

        return apply

    # ---- read API (page, /v1/alerts) --------------------------------------------------

    @staticmethod
    def _view(alert: Alert) -> dict[str, Any]:
        return {
            "name": alert.name,
            "state": alert.state,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "severity": alert.labels.get("severity"),
            "summary": alert.annotations.get("summary"),
            "active_at": alert.active_at,
            "started_at": alert.fired_at,
            "resolved_at": alert.resolved_at,
            "value": _number(alert.value),
            "fingerprint": alert.fingerprint,
        }

    def alerts(self, states: tuple[str, ...] = STATES) -> list[dict[str, Any]]:
        """Current alerts, firing first, then pending, then resolved; newest first within."""
        order = {"firing": 0, "pending": 1, "resolved": 2}
        chosen = [a for a in self.engine.all_alerts() if a.state in states]
        chosen.sort(key=lambda a: (order[a.state], -a.active_at, a.name))
        return [self._view(a) for a in chosen]

    def counts(self) -> dict[str, int]:
        """Alerts by state: pending, firing, resolved."""
        return self.engine.counts()

    def receivers(self) -> list[dict[str, Any]]:
        return [{"name": name, "format": r.config.format, "up": r.up}
                for name, r in self.receivers_by_name.items()]

    def rules(self) -> list[dict[str, Any]]:
        out = []
        for key, rule in self.engine.rules.items():
            health = self.engine.health[key]
            out.append({"name": rule.name, "group": rule.group, "expr": rule.expr,
                        "for": rule.for_s, "keep_firing_for": rule.keep_firing_for_s,
                        "health": "ok" if health.ok else "err", "error": health.error})
        return out
