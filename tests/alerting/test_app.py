"""End to end in the real app: beacons -> alerts:evaluate job -> receiver, /v1/alerts, /metrics."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metricsd.alerting import ALERTS
from metricsd.app import create_app
from metricsd.core import SCHEDULER

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


def scraped(text: str) -> dict:
    """(sample name, sorted labels) -> value, parsed by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def timing(ms: float) -> dict:
    return {"service": "shop", "route": "/reports", "method": "GET", "status": 200,
            "duration_ms": ms}


@pytest.fixture
async def alerting_app(aiohttp_client, make_config, make_receiver, tmp_path):
    rec = await make_receiver()
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    config = make_config({
        "ingest": {"window": {"samples": 16}},
        "alerting": {
            "rules": str(rules), "evaluation_interval": "100ms",
            "group_wait": "100ms", "group_interval": "200ms",
            "state_file": str(tmp_path / "state.json"),
            "receivers": [{"name": "oncall", "url": rec.url, "backoff": "20ms"}],
            "default_receiver": "oncall",
        },
    })
    client = await aiohttp_client(create_app(config))
    return client, rec


async def test_beacons_fire_and_resolve_through_the_scheduled_job(alerting_app, tmp_path):
    client, rec = alerting_app
    app = client.server.app
    assert app[SCHEDULER].get_job("alerts:evaluate") is not None
    resp = await client.post("/v1/beacons/timings", json=[timing(900)] * 16)
    assert resp.status == 202
    await rec.wait_for(1, timeout=5)
    [alert] = rec.bodies[0]["alerts"]
    assert alert["labels"]["route"] == "/reports" and alert["status"] == "firing"
    assert alert["annotations"]["summary"] == "p95 of /reports is 900ms"

    body = await (await client.get("/v1/alerts")).json()
    assert body["configured"] is True and body["rules"] == 1
    assert body["counts"] == {"pending": 0, "firing": 1, "resolved": 0}
    [view] = body["alerts"]
    assert view["name"] == "SlowApi" and view["state"] == "firing"
    assert view["severity"] == "page" and view["value"] == pytest.approx(0.9)
    assert view["labels"]["route"] == "/reports"
    assert body["receivers"] == [{"name": "oncall", "format": "alertmanager", "up": True}]

    metrics = scraped(await (await client.get("/metrics")).text())
    assert metrics[("metricsd_alerts", (("alertname", "SlowApi"), ("state", "firing")))] == 1
    assert metrics[("metricsd_alert_notifications_total",
                    (("outcome", "success"), ("receiver", "oncall")))] == 1
    assert metrics[("metricsd_alert_evaluation_duration_seconds_count", ())] >= 1

    resp = await client.post("/v1/beacons/timings", json=[timing(20)] * 16)
    assert resp.status == 202
    await rec.wait_for(2, timeout=5)
    assert rec.bodies[1]["status"] == "resolved"
    assert app[ALERTS].counts() == {"pending": 0, "firing": 0, "resolved": 1}
    firing_only = await (await client.get("/v1/alerts?state=firing")).json()
    assert firing_only["alerts"] == []
    await app[ALERTS].state.flush()
    assert '"state":"resolved"' in (tmp_path / "state.json").read_text()


async def test_alerts_endpoint_validates_state(alerting_app):
    client, _ = alerting_app
    resp = await client.get("/v1/alerts?state=burning")
    assert resp.status == 400
    assert "burning" in (await resp.json())["error"]


async def test_alerts_endpoint_without_alerting(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config({})))
    body = await (await client.get("/v1/alerts")).json()
    assert body == {"configured": False, "rules": 0,
                    "counts": {"pending": 0, "firing": 0, "resolved": 0}, "alerts": [],
                    "receivers": []}
