"""Receiver kinds by their `format` name in the config: one module each, one import line here."""

from __future__ import annotations

from metricsd.alerting.notify.receivers.alertmanager_api import AlertmanagerAPIReceiver
from metricsd.alerting.notify.receivers.base import (
    RECEIVER_KINDS,
    Delivery,
    DeliveryError,
    Receiver,
    sign,
)
from metricsd.alerting.notify.receivers.slack import SlackReceiver
from metricsd.alerting.notify.receivers.webhook import WebhookReceiver

__all__ = ["RECEIVER_KINDS", "AlertmanagerAPIReceiver", "Delivery", "DeliveryError", "Receiver",
           "SlackReceiver", "WebhookReceiver", "sign"]
