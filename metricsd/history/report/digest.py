"""The weekly digest: a short summary with a link, as Slack blocks or Alertmanager-style JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp

from metricsd.config import ReceiverConfig

log = logging.getLogger(__name__)


def _line(t: dict[str, Any]) -> str:
    v = t["value"]
    value = ("no data" if v is None else
             f"{v:,.0f}{t['unit']}" if abs(v) >= 100 else f"{v:.3g}{t['unit']}")
    mark = {True: "met", False: "MISSED", None: "-"}[t["met"]]
    return f"{t['name']}: {value} ({t['target']}) {mark}"


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """Targets met/missed and the worst route regression, for any digest format."""
    missed = [t for t in report["targets"] if t["met"] is False]
    met = [t for t in report["targets"] if t["met"] is True]
    worst = report["regressions"]["routes"][:1]
    return {"missed": missed, "met": met, "worst_route": worst[0] if worst else None,
            "alerts_fired": report["alerts"]["fired"]}


def slack(report: dict[str, Any], link: str | None) -> dict[str, Any]:
    s = summary(report)
    title = f"Weekly performance report {report['period']['id']}"
    head = f"{len(s['met'])} targets met, {len(s['missed'])} missed"
    lines = [_line(t) for t in report["targets"] if t["met"] is not None]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*\n" + "\n".join(
            lines)[:2900]}},
    ]
    if s["worst_route"] is not None:
        r = s["worst_route"]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"Biggest regression: `{r.get('method', '')} {r.get('route', '')}` p95 "
            f"{r['previous_p95_ms']:.0f} → {r['p95_ms']:.0f} ms")[:2900]}})
    if link:
        blocks.append({"type": "actions", "elements": [{"type": "button", "text": {
            "type": "plain_text", "text": "Open the report"}, "url": link}]})
    return {"text": f"{title}: {head}" + (f" <{link}>" if link else ""), "blocks": blocks}


def alertmanager(report: dict[str, Any], link: str | None, receiver: str) -> dict[str, Any]:
    """Alertmanager webhook shape (version 4), one alert per missed target, so existing
    receivers take it unchanged; the report summary rides along under `report`."""
    s = summary(report)
    now = datetime.fromtimestamp(report["built_at"], UTC).isoformat()
    labels = {"alertname": "MetricsdWeeklyReport", "period": report["period"]["id"]}
    alerts = [{"status": "firing", "labels": {**labels, "target": t["name"]},
               "annotations": {"summary": _line(t), "report": link or ""},
               "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
               "generatorURL": link or "", "fingerprint": hashlib.sha256(
                   f"{labels['period']}{t['name']}".encode()).hexdigest()[:16]}
              for t in s["missed"]]
    return {
        "version": "4", "groupKey": f"metricsd-report:{report['period']['id']}",
        "truncatedAlerts": 0, "status": "firing" if alerts else "resolved",
        "receiver": receiver, "groupLabels": labels, "commonLabels": labels,
        "commonAnnotations": {"summary": f"{len(s['met'])} targets met, "
                                         f"{len(s['missed'])} missed"},
        "externalURL": link or "", "alerts": alerts,
        "report": {"period": report["period"], "url": link,
                   "targets": report["targets"], "alerts_fired": s["alerts_fired"]},
    }


async def send(session: aiohttp.ClientSession, receiver: ReceiverConfig,
               report: dict[str, Any], link: str | None) -> bool:
    """POST the digest once (a weekly digest is not worth a retry storm); log failures."""
    body = (slack(report, link) if receiver.format == "slack"
            else alertmanager(report, link, receiver.name))
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **receiver.headers}
    if receiver.secret:
        headers[receiver.signature_header] = "sha256=" + hmac.new(
            receiver.secret.encode(), data, hashlib.sha256).hexdigest()
    try:
        async with session.post(receiver.url, data=data, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=receiver.timeout)) as resp:
            if resp.status >= 300:
                log.warning("report digest to %s: HTTP %d", receiver.name, resp.status)
                return False
            return True
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("report digest to %s failed: %s", receiver.name, exc)
        return False
