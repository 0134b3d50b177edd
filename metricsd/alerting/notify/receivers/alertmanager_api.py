"""format: alertmanager_api: alerts posted to Alertmanagers' `POST /api/v2/alerts`.

metricsd behaves like Prometheus's rule manager and notifier here: after each evaluation
every firing alert, and every resolved alert still retained (15 minutes), is offered; it
is queued for each Alertmanager when it is new, changed state, or was last sent
`resend_delay` ago. A firing alert's `endsAt` is four times max(evaluation interval,
resend_delay) ahead, so Alertmanager resolves it by itself if metricsd goes away; a
resolved one carries its real `endsAt`. Grouping, inhibition, silences and routing are
Alertmanager's; two metricsd instances with the same rules send identical label sets,
which Alertmanager deduplicates.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from metricsd.alerting.notify.apiqueue import AlertQueue
from metricsd.alerting.notify.notification import Notification, NotifyAlert, rfc3339
from metricsd.alerting.notify.receivers.base import Receiver, Sleep, register
from metricsd.alerting.stats import AlertingStats
from metricsd.config import ReceiverConfig

VALIDITY_FACTOR = 4  # Prometheus: endsAt = now + 4 * max(evaluation interval, resend delay)


@register
class AlertmanagerAPIReceiver(Receiver):
    """Sends alerts (not notifications) to one or more Alertmanagers, Prometheus-style."""

    kind = "alertmanager_api"
    direct = True

    def __init__(
        self,
        config: ReceiverConfig,
        stats: AlertingStats | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        evaluation_interval: float = 15.0,
    ) -> None:
        super().__init__(config, stats, sleep, rng)
        self.evaluation_interval = evaluation_interval
        self.queues = [
            AlertQueue(self.name, url, config.queue_capacity, config.max_batch, config.timeout,
                       self.headers, self.stats, on_change=self._health_changed)
            for url in config.targets
        ]
        # fingerprint -> (when it was last queued, whether it was resolved then)
        self.last_sent: dict[str, tuple[float, bool]] = {}

    @classmethod
    def from_config(cls, config: ReceiverConfig, *, evaluation_interval: float = 15.0,
                    **kwargs: Any) -> Receiver:
        return cls(config, evaluation_interval=evaluation_interval, **kwargs)

    @property
    def valid_for(self) -> float:
        """How far ahead a firing alert's endsAt lies."""
        return VALIDITY_FACTOR * max(self.evaluation_interval, self.config.resend_delay)

    def needs_sending(self, alert: NotifyAlert, now: float) -> bool:
        """New, changed between firing and resolved, or due for its resend."""
        sent = self.last_sent.get(alert.fingerprint)
        if sent is None:
            return True
        sent_at, was_resolved = sent
        if (alert.status == "resolved") != was_resolved:
            return True
        return sent_at + self.config.resend_delay <= now

    def payload(self, alert: NotifyAlert, now: float) -> dict[str, Any]:
        """One postable alert of Alertmanager's v2 API."""
        labels = {**self.config.external_labels, **alert.labels}
        ends_at = alert.ends_at if alert.ends_at is not None else now + self.valid_for
        out: dict[str, Any] = {
            "labels": labels,
            "annotations": dict(alert.annotations),
            "startsAt": rfc3339(alert.starts_at),
            "endsAt": rfc3339(ends_at),
        }
        if alert.generator_url:
            out["generatorURL"] = alert.generator_url
        return out

    def render(self, notification: Notification) -> Mapping[str, Any]:
        """The body one POST would carry (for logs and dead letters; sending uses offer())."""
        now = notification.alerts[0].starts_at if notification.alerts else 0.0
        return {"alerts": [self.payload(a, now) for a in notification.alerts]}

    def offer(self, alerts: Sequence[NotifyAlert], now: float,
              session: Callable[[], aiohttp.ClientSession]) -> None:
        due = [a for a in alerts if self.needs_sending(a, now)]
        current = {a.fingerprint for a in alerts}
        for gone in self.last_sent.keys() - current:
            del self.last_sent[gone]
        for alert in due:
            self.last_sent[alert.fingerprint] = (now, alert.status == "resolved")
        batch = [self.payload(a, now) for a in due]
        for queue in self.queues:
            queue.put(batch, session)

    def adopt(self, old: Receiver) -> None:
        """Keep the resend schedule across a reload (Alertmanager needs no repeat)."""
        if isinstance(old, AlertmanagerAPIReceiver):
            self.last_sent.update(old.last_sent)

    def _health_changed(self) -> None:
        self.up = all(q.up for q in self.queues)
        self.stats.receiver_up[self.name] = self.up

    async def close(self) -> None:
        """Give each queue up to `timeout` to drain, then stop its task."""
        await asyncio.gather(*(q.close(self.config.timeout) for q in self.queues))
