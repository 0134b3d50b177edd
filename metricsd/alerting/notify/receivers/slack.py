"""format: slack: an incoming-webhook message with a plain `text` fallback and Block Kit blocks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metricsd.alerting.notify.notification import Notification, NotifyAlert
from metricsd.alerting.notify.receivers.base import Receiver, register

MAX_ALERT_BLOCKS = 10  # Slack allows 50 blocks; a page of ten alerts stays readable
HEADER_LIMIT = 150  # Slack's limit for a header block's text
SECTION_LIMIT = 3000  # ... and for a section's text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def title(notification: Notification) -> str:
    """`[FIRING:2] ApiLatencyHigh (api)`, as Alertmanager's default Slack title reads."""
    status = notification.status.upper()
    count = len(notification.firing) if status == "FIRING" else len(notification.alerts)
    labels = " ".join(v for k, v in sorted(notification.group_labels.items())
                      if k != "alertname")
    name = notification.group_labels.get("alertname") or \
        notification.common_labels().get("alertname", "alerts")
    return f"[{status}:{count}] {name}" + (f" ({labels})" if labels else "")


def _alert_text(alert: NotifyAlert) -> str:
    icon = ":red_circle:" if alert.status == "firing" else ":large_green_circle:"
    summary = alert.annotations.get("summary") or alert.labels.get("alertname", "")
    lines = [f"{icon} *{summary}*"]
    if alert.annotations.get("description"):
        lines.append(alert.annotations["description"])
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    if labels:
        lines.append(f"`{labels}`")
    links = []
    if alert.annotations.get("runbook_url"):
        links.append(f"<{alert.annotations['runbook_url']}|Runbook>")
    if alert.generator_url:
        links.append(f"<{alert.generator_url}|Query>")
    if links:
        lines.append(" · ".join(links))
    return _clip("\n".join(lines), SECTION_LIMIT)


@register
class SlackReceiver(Receiver):
    """POSTs a Slack incoming-webhook message."""

    kind = "slack"

    def render(self, notification: Notification) -> Mapping[str, Any]:
        heading = title(notification)
        alerts = list(notification.alerts)
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(heading, HEADER_LIMIT)}}
        ]
        for alert in alerts[:MAX_ALERT_BLOCKS]:
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": _alert_text(alert)}})
        context = f"metricsd · {notification.receiver}"
        if len(alerts) > MAX_ALERT_BLOCKS:
            context += f" · {len(alerts) - MAX_ALERT_BLOCKS} more alert(s) not shown"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        summaries = "; ".join(
            a.annotations.get("summary") or a.labels.get("alertname", "") for a in alerts
        )
        return {"text": _clip(f"{heading}: {summaries}", SECTION_LIMIT), "blocks": blocks}
