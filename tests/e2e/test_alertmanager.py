"""metricsd -> real Alertmanager 0.25 (POST /api/v2/alerts) -> a local webhook receiver.

Beacons make a rule fire and later resolve in running metricsd apps (the scheduled
evaluation job, 100 ms); their `format: alertmanager_api` receiver posts the alerts to a
real Alertmanager, whose only route is a webhook to an aiohttp sink. Checked: a firing
and then a resolved notification arrive with metricsd's labels, annotations and
external_labels; two metricsd instances with the same rules give one notification (HA,
Alertmanager deduplicates); an Alertmanager that was down gets the alert once it is up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.prometheus import free_port

RULES = """
groups:
  - name: api
    rules:
      - alert: SlowApi
        expr: metricsd_api_request_window_seconds{quantile="0.95"} > 0.5
        labels:
          severity: page
        annotations:
          summary: "p95 of {{ $labels.route }} is {{ $value | humanizeDuration }}"
"""
WINDOW = 16


def _config(make_config: Any, tmp_path: Path, urls: list[str], resend: str = "1s") -> Any:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    return make_config({
        "ingest": {"window": {"samples": WINDOW}},
        "alerting": {
            "rules": str(rules), "evaluation_interval": "100ms",
            "receivers": [{"name": "am", "format": "alertmanager_api", "urls": urls,
                           "resend_delay": resend, "timeout": "2s",
                           "external_labels": {"cluster": "eu-1"}}],
            "default_receiver": "am",
        },
    })


async def _post(address: str, ms: float) -> None:
    item = {"service": "shop", "route": "/reports", "method": "GET", "status": 200,
            "duration_ms": ms}
    async with aiohttp.ClientSession() as session, session.post(
            f"http://{address}/v1/beacons/timings", json=[item] * WINDOW) as resp:
        assert resp.status == 202, await resp.text()


async def _metric(address: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://{address}/metrics") as resp:
        text = await resp.text()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name)


def _firing_notifications(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in bodies if b["status"] == "firing"]


async def test_firing_then_resolved_through_a_real_alertmanager(
    make_config, tmp_path, serve_metricsd, make_alertmanager, webhook_sink
):
    am = await make_alertmanager(webhook_sink.url)
    address = await serve_metricsd(_config(make_config, tmp_path, [am.url]))
    await _post(address, 900)
    await webhook_sink.wait_for(lambda b: bool(_firing_notifications(b)), within_s=20)
    [alert] = webhook_sink.alerts("firing")
    assert alert["labels"] == {"alertname": "SlowApi", "severity": "page", "service": "shop",
                               "route": "/reports", "method": "GET", "quantile": "0.95",
                               "cluster": "eu-1"}
    assert alert["annotations"]["summary"] == "p95 of /reports is 900ms"
    assert alert["generatorURL"].startswith(f"http://{address.split(':')[0]}")
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"  # firing, as Alertmanager shows it

    held = await am.alerts()
    assert [a["status"]["state"] for a in held] == ["active"]

    await _post(address, 20)
    await webhook_sink.wait_for(lambda b: any(x["status"] == "resolved" for x in b),
                                within_s=20)
    [resolved] = webhook_sink.alerts("resolved")
    assert resolved["labels"] == alert["labels"]
    assert resolved["endsAt"] != "0001-01-01T00:00:00Z"
    assert resolved["startsAt"] == alert["startsAt"]
    assert await _metric(address, "metricsd_alertmanager_alerts_sent_total") >= 2
    assert await _metric(address, "metricsd_alertmanager_alerts_failed_total") == 0
    # Only one firing notification: the resends (every 1 s) are deduplicated by Alertmanager.
    assert len(_firing_notifications(webhook_sink.bodies)) == 1


async def test_two_instances_with_the_same_rules_notify_once(
    make_config, tmp_path, serve_metricsd, make_alertmanager, webhook_sink
):
    am = await make_alertmanager(webhook_sink.url, group_wait="2s")
    config = _config(make_config, tmp_path, [am.url])
    first, second = await serve_metricsd(config), await serve_metricsd(config)
    await asyncio.gather(_post(first, 900), _post(second, 1200))
    await webhook_sink.wait_for(lambda b: bool(_firing_notifications(b)), within_s=20)
    # Both instances keep re-sending every second; give a duplicate time to show up.
    await asyncio.sleep(4)
    for address in (first, second):
        assert await _metric(address, "metricsd_alertmanager_alerts_sent_total") >= 2
    firing = _firing_notifications(webhook_sink.bodies)
    assert len(firing) == 1, webhook_sink.bodies
    assert len(firing[0]["alerts"]) == 1
    assert len(await am.alerts()) == 1


async def test_an_alertmanager_that_was_down_gets_the_alert_once_up(
    make_config, tmp_path, serve_metricsd, make_alertmanager, webhook_sink
):
    port = free_port()
    up_port = free_port()
    up = await make_alertmanager(webhook_sink.url, port=up_port)
    down_url = f"http://127.0.0.1:{port}"
    address = await serve_metricsd(_config(make_config, tmp_path, [down_url, up.url]))
    await _post(address, 900)
    # The Alertmanager that is up is not held back by the one that is down.
    await webhook_sink.wait_for(lambda b: bool(_firing_notifications(b)), within_s=20)
    await asyncio.sleep(2.5)  # a few resends fail against the missing one
    assert await _metric(address, "metricsd_alertmanager_alerts_failed_total") >= 2

    other_sink_bodies: list[dict[str, Any]] = []
    webhook_sink.bodies, other_sink_bodies = other_sink_bodies, webhook_sink.bodies
    late = await make_alertmanager(webhook_sink.url, port=port)
    await webhook_sink.wait_for(lambda b: bool(_firing_notifications(b)), within_s=20)
    held = await late.alerts()
    assert [a["labels"]["alertname"] for a in held] == ["SlowApi"]
    assert len(other_sink_bodies) >= 1
