"""format: alertmanager: the Alertmanager webhook body, version "4", unchanged for receivers.

Receivers written for Alertmanager (PagerDuty bridges, chat bots, ticketing) accept it as
is, so moving the rules to Prometheus + Alertmanager later changes nothing downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metricsd.alerting.notify.notification import Notification, rfc3339
from metricsd.alerting.notify.receivers.base import Receiver, register


@register
class WebhookReceiver(Receiver):
    """POSTs Alertmanager's webhook JSON (version 4)."""

    kind = "alertmanager"

    def render(self, notification: Notification) -> Mapping[str, Any]:
        alerts = list(notification.alerts)
        truncated = notification.truncated
        if self.config.max_alerts and len(alerts) > self.config.max_alerts:
            truncated += len(alerts) - self.config.max_alerts
            alerts = alerts[: self.config.max_alerts]
        return {
            "version": "4",
            "groupKey": notification.group_key,
            "truncatedAlerts": truncated,
            "status": notification.status,
            "receiver": notification.receiver,
            "groupLabels": dict(notification.group_labels),
            "commonLabels": notification.common_labels(),
            "commonAnnotations": notification.common_annotations(),
            "externalURL": notification.external_url,
            "alerts": [
                {
                    "status": alert.status,
                    "labels": dict(alert.labels),
                    "annotations": dict(alert.annotations),
                    "startsAt": rfc3339(alert.starts_at),
                    "endsAt": rfc3339(alert.ends_at),
                    "generatorURL": alert.generator_url,
                    "fingerprint": alert.fingerprint,
                }
                for alert in alerts
            ],
        }
