"""Delivery to real receiver servers: payloads, timers, retries, signatures, restarts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time

from prometheus_client import CollectorRegistry, Gauge

from metricsd.alerting.rules.engine import fingerprint
from tests.alerting.conftest import only, receiver_config
from tests.fixtures.launch import free_port

ZERO = "0001-01-01T00:00:00Z"
START = "2023-11-14T22:13:20Z"  # the test clock's start, 1_700_000_000


def oncall(url, **extra):
    return {"receivers": [receiver_config("oncall", url, **extra)], "default_receiver": "oncall"}


async def test_fire_and_resolve_cycle_is_alertmanager_v4(make_receiver, make_service, clock):
    rec = await make_receiver()
    service = make_service(oncall(rec.url))
    service.gauge.labels(route="/orders").set(2.5)
    await service.evaluate_once()
    await rec.wait_for(1)
    body = only(rec)
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver",
                         "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                         "alerts"}
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "oncall"
    assert body["groupKey"] == '{}:{alertname="DemoHigh"}'
    assert body["truncatedAlerts"] == 0
    assert body["groupLabels"] == {"alertname": "DemoHigh"}
    labels = {"alertname": "DemoHigh", "route": "/orders", "severity": "page"}
    assert body["commonLabels"] == labels
    assert body["commonAnnotations"] == {"summary": "/orders is slow",
                                         "description": "latency 2.5s"}
    assert body["externalURL"] == "http://metricsd.test:9811"
    [alert] = body["alerts"]
    assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt",
                          "generatorURL", "fingerprint"}
    assert alert["status"] == "firing"
    assert alert["labels"] == labels
    assert alert["annotations"] == body["commonAnnotations"]
    assert alert["startsAt"] == START
    assert alert["endsAt"] == ZERO
    assert alert["generatorURL"] == (
        "http://metricsd.test:9811/graph?g0.expr=demo_latency_seconds+%3E+1&g0.tab=1"
    )
    assert alert["fingerprint"] == fingerprint(labels)  # the alert's labels, nothing else

    service.gauge.labels(route="/orders").set(0.2)
    clock.advance(60)
    await service.evaluate_once()
    await rec.wait_for(2)
    resolved = rec.bodies[1]
    assert resolved["status"] == "resolved"
    assert resolved["groupKey"] == body["groupKey"]
    [alert2] = resolved["alerts"]
    assert alert2["status"] == "resolved"
    assert alert2["startsAt"] == START
    assert alert2["endsAt"] == "2023-11-14T22:14:20Z"
    assert alert2["fingerprint"] == alert["fingerprint"]
    # Nothing more: the resolved alert leaves the group once delivered.
    clock.advance(60)
    await service.evaluate_once()
    await asyncio.sleep(0.5)
    assert len(rec.received) == 2
    assert service.registry.get_sample_value(
        "metricsd_alert_notifications_total", {"receiver": "oncall", "outcome": "success"}
    ) == 2


async def test_for_keeps_the_alert_pending(make_receiver, make_service, clock):
    rec = await make_receiver()
    service = make_service(oncall(rec.url), for_="5m")
    service.gauge.labels(route="/x").set(3)
    await service.evaluate_once()
    assert service.counts() == {"pending": 1, "firing": 0, "resolved": 0}
    clock.advance(299)
    await service.evaluate_once()
    await asyncio.sleep(0.3)
    assert service.counts()["pending"] == 1 and rec.received == []
    clock.advance(1)
    await service.evaluate_once()
    assert service.counts() == {"pending": 0, "firing": 1, "resolved": 0}
    await rec.wait_for(1)
    [alert] = only(rec)["alerts"]
    assert alert["startsAt"] == "2023-11-14T22:18:20Z"  # when it fired, not when it became active
    [view] = service.alerts()
    assert view["active_at"] == 1_700_000_000.0 and view["started_at"] == 1_700_000_300.0


async def test_a_pending_alert_that_clears_never_notifies(make_receiver, make_service, clock):
    rec = await make_receiver()
    service = make_service(oncall(rec.url), for_="1m")
    service.gauge.labels(route="/x").set(3)
    await service.evaluate_once()
    service.gauge.labels(route="/x").set(0)
    clock.advance(120)
    await service.evaluate_once()
    await asyncio.sleep(0.3)
    assert service.counts() == {"pending": 0, "firing": 0, "resolved": 0}
    assert rec.received == []


async def test_grouping_group_interval_and_repeat_interval(make_receiver, make_service, clock):
    rec = await make_receiver()
    service = make_service({**oncall(rec.url), "group_interval": 0.3, "repeat_interval": 600})
    service.gauge.labels(route="/a").set(2)
    service.gauge.labels(route="/b").set(3)
    await service.evaluate_once()
    await rec.wait_for(1)
    first = only(rec)
    assert [a["labels"]["route"] for a in first["alerts"]] == ["/a", "/b"]
    assert first["commonLabels"] == {"alertname": "DemoHigh", "severity": "page"}
    # A new alert joins the same group: it waits for group_interval, then both are sent.
    clock.advance(10)
    service.gauge.labels(route="/c").set(4)
    sent_first = rec.received[0].at
    await service.evaluate_once()
    await rec.wait_for(2)
    assert rec.received[1].at - sent_first >= 0.25
    assert sorted(a["labels"]["route"] for a in rec.bodies[1]["alerts"]) == ["/a", "/b", "/c"]
    # Unchanged group: silent at every group_interval until repeat_interval has passed.
    await asyncio.sleep(0.8)
    assert len(rec.received) == 2
    clock.advance(600)
    await rec.wait_for(3, timeout=2)
    assert rec.bodies[2]["alerts"] == rec.bodies[1]["alerts"]
    await asyncio.sleep(0.7)
    assert len(rec.received) == 3


async def test_group_by_splits_groups(make_receiver, make_service):
    rec = await make_receiver()
    service = make_service({**oncall(rec.url), "group_by": ["alertname", "route"]})
    service.gauge.labels(route="/a").set(2)
    service.gauge.labels(route="/b").set(3)
    await service.evaluate_once()
    await rec.wait_for(2)
    keys = sorted(b["groupKey"] for b in rec.bodies)
    assert keys == ['{}:{alertname="DemoHigh", route="/a"}',
                    '{}:{alertname="DemoHigh", route="/b"}']


async def test_receiver_down_for_seconds_then_up_gets_it_exactly_once(
    make_receiver, make_service, caplog
):
    caplog.set_level(logging.INFO, logger="metricsd.alerting")
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    service = make_service({**oncall(url, max_attempts=30, backoff=0.2, max_backoff=0.4,
                                     timeout=1), "group_interval": 60})
    service.gauge.labels(route="/x").set(2)
    await service.evaluate_once()
    await asyncio.sleep(2.0)  # nobody listens: connection refused, retried with backoff
    assert service.stats.attempts[("oncall", "retry")] >= 3
    rec = await make_receiver(port=port)
    await rec.wait_for(1, timeout=5)
    await asyncio.sleep(0.8)
    assert len(rec.received) == 1
    assert service.stats.notifications[("oncall", "success")] == 1
    failing = [r for r in caplog.records if "is failing" in r.getMessage()]
    recovered = [r for r in caplog.records if "delivers again" in r.getMessage()]
    assert len(failing) == 1 and len(recovered) == 1  # once per outage, not per attempt
    assert service.registry.get_sample_value(
        "metricsd_alert_receiver_up", {"receiver": "oncall"}) == 1


async def test_429_retry_after_is_honoured(make_receiver, make_service):
    rec = await make_receiver(script=[(429, {"Retry-After": "1"})])
    service = make_service(oncall(rec.url, backoff=0.01, max_backoff=0.01))
    service.gauge.labels(route="/x").set(2)
    await service.evaluate_once()
    await rec.wait_for(1, timeout=4)
    assert len(rec.attempts) == 2
    assert rec.attempts[1] - rec.attempts[0] >= 0.95  # not the 10 ms backoff


async def test_503_is_retried_and_400_is_not(make_receiver, make_service, tmp_path):
    flaky = await make_receiver(script=[(503, {}), (502, {})])
    service = make_service(oncall(flaky.url))
    service.gauge.labels(route="/x").set(2)
    await service.evaluate_once()
    await flaky.wait_for(1)
    assert len(flaky.attempts) == 3

    rejecting = await make_receiver(script=[(400, {})] * 5)
    service2 = make_service({**oncall(rejecting.url), "state_file": str(tmp_path / "s2.json"),
                             "group_interval": 60})
    service2.gauge.labels(route="/x").set(2)
    await service2.evaluate_once()
    await asyncio.sleep(0.5)
    assert len(rejecting.attempts) == 1
    assert service2.stats.notifications[("oncall", "dead_letter")] == 1


async def test_fallback_receiver_then_dead_letter_log(make_receiver, make_service, tmp_path):
    primary = await make_receiver(script=[(404, {})] * 10)
    backup = await make_receiver()
    service = make_service({
        "receivers": [receiver_config("oncall", primary.url),
                      receiver_config("backup", backup.url)],
        "default_receiver": "oncall", "fallback_receiver": "backup",
    })
    service.gauge.labels(route="/x").set(2)
    await service.evaluate_once()
    await backup.wait_for(1)
    assert only(backup)["receiver"] == "backup"
    assert service.stats.notifications[("oncall", "fallback")] == 1

    dead = tmp_path / "dead2.jsonl"
    broken = await make_receiver(script=[(500, {})] * 10)
    service2 = make_service({
        "receivers": [receiver_config("oncall", primary.url),
                      receiver_config("backup", broken.url, max_attempts=2)],
        "default_receiver": "oncall", "fallback_receiver": "backup",
        "dead_letter_file": str(dead), "state_file": str(tmp_path / "s3.json"),
    })
    service2.gauge.labels(route="/y").set(2)
    await service2.evaluate_once()
    # Two receivers, each with retries and backoff, then the file write: give a loaded
    # machine time, and wait for a whole line, not just the file.
    deadline = time.monotonic() + 15
    while not (dead.exists() and dead.read_text().endswith("\n")):
        assert time.monotonic() < deadline, "no dead letter written"
        await asyncio.sleep(0.05)
    [line] = dead.read_text().splitlines()
    record = json.loads(line)
    assert record["receiver"] == "oncall"
    assert record["group_key"] == '{}:{alertname="DemoHigh"}'
    assert "HTTP 404" in record["errors"][0] and "HTTP 500" in record["errors"][1]
    assert record["payload"]["alerts"][0]["labels"]["route"] == "/y"
    assert len(broken.attempts) == 2
    assert service2.registry.get_sample_value("metricsd_alert_dead_letters_total") == 1


async def test_hmac_signature_verifies_on_the_receiver(make_receiver, make_service):
    rec = await make_receiver()
    service = make_service(oncall(rec.url, secret="s3cret"))
    service.gauge.labels(route="/x").set(2)
    await service.evaluate_once()
    await rec.wait_for(1)
    got = rec.received[0]
    header = got.headers["X-Metricsd-Signature"]
    expected = "sha256=" + hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(header, expected)
    forged = "sha256=" + hmac.new(b"other", got.body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(header, forged)


async def test_slack_incoming_webhook_format(make_receiver, make_service):
    rec = await make_receiver()
    service = make_service(oncall(rec.url, format="slack"))
    service.gauge.labels(route="/orders").set(2)
    await service.evaluate_once()
    await rec.wait_for(1)
    body = only(rec)
    assert body["text"].startswith("[FIRING:1] DemoHigh")
    assert "/orders is slow" in body["text"]
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["header", "section", "context"]
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    section = body["blocks"][1]["text"]
    assert section["type"] == "mrkdwn"
    assert "*/orders is slow*" in section["text"] and "latency 2s" in section["text"]


async def test_restart_with_a_firing_alert_pages_nobody_again(
    make_receiver, make_service, clock
):
    rec = await make_receiver()
    registry = CollectorRegistry()
    gauge = Gauge("demo_latency_seconds", "demo", ["route"], registry=registry)
    gauge.labels(route="/x").set(2)
    first = make_service(oncall(rec.url), registry=registry, gauge=gauge)
    await first.evaluate_once()
    await rec.wait_for(1)
    await first.close()

    clock.advance(120)
    second = make_service(oncall(rec.url), registry=registry, gauge=gauge)
    await second.evaluate_once()
    await asyncio.sleep(0.6)
    assert len(rec.received) == 1  # still firing, already delivered: silence
    [view] = second.alerts()
    assert view["state"] == "firing" and view["started_at"] == 1_700_000_000.0

    gauge.labels(route="/x").set(0)
    clock.advance(60)
    await second.evaluate_once()
    await rec.wait_for(2)
    assert rec.bodies[1]["status"] == "resolved"


async def test_restart_resolves_what_resolved_while_down(make_receiver, make_service, clock):
    rec = await make_receiver()
    registry = CollectorRegistry()
    gauge = Gauge("demo_latency_seconds", "demo", ["route"], registry=registry)
    gauge.labels(route="/x").set(2)
    first = make_service(oncall(rec.url), registry=registry, gauge=gauge)
    await first.evaluate_once()
    await rec.wait_for(1)
    await first.close()

    gauge.labels(route="/x").set(0)  # cleared while metricsd was down
    clock.advance(600)
    second = make_service(oncall(rec.url), registry=registry, gauge=gauge)
    await second.evaluate_once()  # restored and held: nothing is decided on a fresh start
    await asyncio.sleep(0.3)
    assert len(rec.received) == 1
    clock.advance(max(second.grace.values()))
    await second.evaluate_once()  # held long enough: the alert resolves, once
    await rec.wait_for(2)
    [alert] = rec.bodies[1]["alerts"]
    assert alert["status"] == "resolved" and alert["startsAt"] == START
    await second.evaluate_once()
    await asyncio.sleep(0.3)
    assert len(rec.received) == 2


async def test_slow_receiver_blocks_neither_evaluation_nor_others(make_receiver, make_service):
    slow = await make_receiver(delay=1.5)
    fast = await make_receiver()
    service = make_service({
        "receivers": [receiver_config("slow", slow.url, timeout=0.5, max_attempts=1),
                      receiver_config("fast", fast.url)],
        "default_receiver": "fast",
        "routes": [{"receiver": "slow", "matchers": ['severity="page"'], "continue": True},
                   {"receiver": "fast"}],
    })
    service.gauge.labels(route="/x").set(2)
    started = time.monotonic()
    await service.evaluate_once()
    assert time.monotonic() - started < 0.5  # the receiver hangs for 1.5 s
    await fast.wait_for(1, timeout=1)
    assert only(fast)["receiver"] == "fast"
    started = time.monotonic()
    await service.evaluate_once()  # while the slow receiver still hangs
    assert time.monotonic() - started < 0.5  # the receiver hangs for 1.5 s
    for _ in range(40):
        if service.stats.notifications[("slow", "dead_letter")]:
            break
        await asyncio.sleep(0.05)
    assert service.stats.notifications[("slow", "failure")] == 1
    assert service.stats.notifications[("fast", "success")] == 1
