"""Alerting reload: rules compiled once, receivers swapped, state kept for unchanged alerts;
an invalid rule file keeps the running rules."""

from __future__ import annotations

import asyncio

import yaml
from prometheus_client import CollectorRegistry, Gauge

from metricsd import core
from metricsd.alerting import ALERTS
from metricsd.alerting.rules.validate import compile_alerting
from metricsd.app import create_app
from metricsd.config import AlertingConfig, load_config
from tests.alerting.conftest import receiver_config
from tests.alerting.test_app import scraped

TWO_RULES = """
groups:
  - name: demo
    rules:
      - alert: Kept
        expr: demo_latency_seconds > 1
      - alert: Dropped
        expr: demo_latency_seconds > 1
"""
ONE_RULE = """
groups:
  - name: demo
    rules:
      - alert: Kept
        expr: demo_latency_seconds > 1.5
"""


async def _app(aiohttp_client, tmp_path, config: dict):
    path = tmp_path / "metricsd.yml"
    path.write_text(yaml.safe_dump(config))
    client = await aiohttp_client(create_app(load_config(path, env={}), path))
    return client, path


async def test_invalid_reload_answers_422_and_keeps_rules_and_receivers(
        aiohttp_client, tmp_path, make_receiver):
    rec = await make_receiver()
    rules = tmp_path / "rules.yml"
    rules.write_text(TWO_RULES)
    base = {"alerting": {"rules": str(rules), "receivers": [receiver_config("a", rec.url)],
                         "default_receiver": "a"}}
    client, _ = await _app(aiohttp_client, tmp_path, base)
    app = client.server.app
    service = app[ALERTS]
    rules.write_text("groups: [{name: x, rules: [{alert: Bad, expr: 'rate('}]}]\n")
    resp = await client.post("/-/reload")
    assert resp.status == 422
    body = await resp.json()
    assert any("alerting.rules" in p for p in body["problems"]), body
    assert service.rule_count == 2 and set(service.receivers_by_name) == {"a"}
    assert core.current_config(app).alerting.receivers[0].name == "a"
    metrics = scraped(await (await client.get("/metrics")).text())
    assert metrics[("metricsd_config_last_reload_successful", ())] == 0
    assert metrics[("metricsd_config_reloads_total", (("result", "failure"),))] == 1


def _reloaded(rules_path, receiver: str, url: str) -> AlertingConfig:
    return AlertingConfig.model_validate({
        "rules": str(rules_path), "receivers": [receiver_config(receiver, url)],
        "default_receiver": receiver, "group_wait": 0.05, "group_interval": 0.2,
        "repeat_interval": 3600, "group_by": ["alertname"]})


def _events(rec) -> list[tuple[str, str]]:
    return [(a["labels"]["alertname"], a["status"]) for body in rec.bodies
            for a in body["alerts"]]


async def test_alerting_reload_keeps_unchanged_alerts_and_resolves_removed_rules_once(
        make_receiver, make_service, clock, tmp_path):
    rec_a, rec_b = await make_receiver(), await make_receiver()
    registry = CollectorRegistry()
    gauge = Gauge("demo_latency_seconds", "demo", ["route"], registry=registry)
    gauge.labels(route="/x").set(2)
    service = make_service({"receivers": [receiver_config("a", rec_a.url)],
                            "default_receiver": "a", "group_by": ["alertname"]},
                           rules=TWO_RULES, registry=registry, gauge=gauge)
    await service.evaluate_once()
    await rec_a.wait_for(2)
    kept_before = [(a["active_at"], a["started_at"]) for a in service.alerts()
                   if a["name"] == "Kept"]

    # 1. New rules, same receiver: Kept keeps its state; Dropped's rule is gone.
    rules_path = tmp_path / "one.yml"
    rules_path.write_text(ONE_RULE)
    config = _reloaded(rules_path, "a", rec_a.url)
    swap = service.prepare_reload(config, compile_alerting(config), 15.0, 300.0)
    assert service.rule_count == 2  # preparing changes nothing
    swap()
    assert service.rule_count == 1
    assert [(a["active_at"], a["started_at"]) for a in service.alerts()
            if a["name"] == "Kept"] == kept_before
    for _ in range(3):
        clock.advance(1)
        await service.evaluate_once()  # Kept still fires (2 > 1.5)
    await rec_a.wait_for(3)
    await asyncio.sleep(0.5)
    assert sorted(_events(rec_a)) == [("Dropped", "firing"), ("Dropped", "resolved"),
                                      ("Kept", "firing")]

    # 2. A new receiver: it has never been told, so it gets Kept once; `a` gets nothing.
    swap = service.prepare_reload(_reloaded(rules_path, "b", rec_b.url),
                                  compile_alerting(config), 15.0, 300.0)
    swap()
    for _ in range(3):
        clock.advance(1)
        await service.evaluate_once()
    await rec_b.wait_for(1)
    await asyncio.sleep(0.5)
    assert _events(rec_b) == [("Kept", "firing")] and len(rec_a.received) == 3
    assert "b" in service.stats.receiver_up and "a" not in service.stats.receiver_up
