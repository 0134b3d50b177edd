"""Receiver kinds by their `format` name in the config."""

from __future__ import annotations

from metricsd.alerting.notify.receivers.alertmanager_api import AlertmanagerAPIReceiver
from metricsd.alerting.notify.receivers.base import Delivery, DeliveryError, Receiver, sign
from metricsd.alerting.notify.receivers.slack import SlackReceiver
from metricsd.alerting.notify.receivers.webhook import WebhookReceiver

RECEIVER_KINDS: dict[str, type[Receiver]] = {
    WebhookReceiver.kind: WebhookReceiver,
    SlackReceiver.kind: SlackReceiver,
    AlertmanagerAPIReceiver.kind: AlertmanagerAPIReceiver,
}

__all__ = ["RECEIVER_KINDS", "AlertmanagerAPIReceiver", "Delivery", "DeliveryError", "Receiver",
           "SlackReceiver", "WebhookReceiver", "sign"]
