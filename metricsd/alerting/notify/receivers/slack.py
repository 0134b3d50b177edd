"""format: slack: an incoming-webhook message with a plain `text` fallback and Block Kit blocks.

Every value that comes from an alert (labels, annotations, URLs, group labels) or from
the config goes through `escape` before it is placed in mrkdwn or in `text`: Slack reads
`<...>` as a mention, a channel or a link and `&` as the start of an entity, so a page
label such as `/<!channel> <https://evil.example|log in>` would otherwise notify a whole
channel with a disguised link. Only the markup this module writes itself stays live.
The `header` block is plain_text, where Slack parses nothing, so it gets the raw title.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metricsd.alerting.notify.notification import Notification, NotifyAlert
from metricsd.alerting.notify.receivers.base import Receiver, register

MAX_ALERT_BLOCKS = 10  # Slack allows 50 blocks; a page of ten alerts stays readable
HEADER_LIMIT = 150  # Slack's limit for a header block's text
SECTION_LIMIT = 3000  # ... and for a section's text


def escape(text: str) -> str:
    """Slack's three control characters as entities, so the text renders as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    """`<url|label>` with the URL unable to close the link or start another one."""
    return f"<{escape(url).replace('|', '%7C')}|{label}>"


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
    lines = [f"{icon} *{escape(summary)}*"]
    if alert.annotations.get("description"):
        lines.append(escape(alert.annotations["description"]))
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    if labels:
        lines.append(f"`{escape(labels)}`")
    links = []
    if alert.annotations.get("runbook_url"):
        links.append(_link(alert.annotations["runbook_url"], "Runbook"))
    if alert.generator_url:
        links.append(_link(alert.generator_url, "Query"))
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
        context = f"metricsd · {escape(notification.receiver)}"
        if len(alerts) > MAX_ALERT_BLOCKS:
            context += f" · {len(alerts) - MAX_ALERT_BLOCKS} more alert(s) not shown"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        summaries = "; ".join(
            a.annotations.get("summary") or a.labels.get("alertname", "") for a in alerts
        )
        text = escape(f"{heading}: {summaries}")
        return {"text": _clip(text, SECTION_LIMIT), "blocks": blocks}
