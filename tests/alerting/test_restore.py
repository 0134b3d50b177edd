"""Restart without re-paging: restored alerts are held until fresh data has been evaluated
for the rule's grace; the state file is validated strictly and set aside when foreign."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge

from metricsd.alerting.restore import grace_by_rule, reads_window
from metricsd.alerting.rules.engine import STATES, fingerprint
from metricsd.alerting.rules.load import load_rule_file, parse_rule_text
from metricsd.alerting.service import AlertingService
from metricsd.alerting.state import EMPTY, parse_state, read_state
from metricsd.config import AlertingConfig
from tests.alerting.conftest import DEMO_RULES, receiver_config

START = "2023-11-14T22:13:20Z"  # the test clock's start
ROOT = Path(__file__).resolve().parents[2]


def oncall(url: str) -> dict:
    return {"receivers": [receiver_config("oncall", url)], "default_receiver": "oncall"}


@pytest.mark.parametrize("for_", ["0s", "1m"])
@pytest.mark.parametrize("after_restart", ["absent", "below", "above"])
async def test_restored_firing_alert_is_held_then_judged_once(
        make_receiver, make_service, clock, for_, after_restart):
    """Whatever fresh data says during the grace, the alert keeps state, start and log;
    after it, an alert still active is not re-sent and one that cleared resolves once."""
    rec = await make_receiver()
    registry = CollectorRegistry()
    gauge = Gauge("demo_latency_seconds", "demo", ["route"], registry=registry)
    gauge.labels(route="/x").set(2)
    first = make_service(oncall(rec.url), registry=registry, gauge=gauge, for_=for_)
    await first.evaluate_once()
    clock.advance(61)
    await first.evaluate_once()
    await rec.wait_for(1)
    before = first.alerts()
    assert [a["state"] for a in before] == ["firing"]
    await first.close()

    # The restarted process: an empty store at first, then data flowing again.
    gauge.remove("/x")
    if after_restart != "absent":
        gauge.labels(route="/x").set(2 if after_restart == "above" else 0)
    clock.advance(30)
    second = make_service(oncall(rec.url), registry=registry, gauge=gauge, for_=for_)
    grace = max(second.grace.values())
    assert grace >= 2 * 15.0 + 15.0  # 2 x evaluation_interval + postgres.scrape_interval
    steps = 5
    for _ in range(steps):
        await second.evaluate_once()
        assert _same_alert(second.alerts(), before)
        clock.advance(grace / steps * 0.99)
    await asyncio.sleep(0.4)
    assert len(rec.received) == 1, rec.bodies  # neither resolved nor re-sent
    clock.advance(grace)  # the grace is over
    for _ in range(3):
        await second.evaluate_once()
        clock.advance(1)
    await asyncio.sleep(0.4)
    if after_restart == "above":
        assert len(rec.received) == 1, rec.bodies
        assert _same_alert(second.alerts(), before)
    else:
        await rec.wait_for(2)
        await asyncio.sleep(0.3)
        assert len(rec.received) == 2, rec.bodies
        [alert] = rec.bodies[1]["alerts"]
        assert alert["status"] == "resolved" and alert["startsAt"] == rec.bodies[0][
            "alerts"][0]["startsAt"]


def _same_alert(now: list[dict], before: list[dict]) -> bool:
    keys = ("state", "active_at", "started_at", "fingerprint", "resolved_at")
    return [{k: a[k] for k in keys} for a in now] == [{k: a[k] for k in keys} for a in before]


async def test_restored_pending_alert_fires_only_after_the_grace(make_receiver, make_service,
                                                                 clock):
    rec = await make_receiver()
    registry = CollectorRegistry()
    gauge = Gauge("demo_latency_seconds", "demo", ["route"], registry=registry)
    gauge.labels(route="/x").set(2)
    first = make_service(oncall(rec.url), registry=registry, gauge=gauge, for_="2m")
    await first.evaluate_once()
    active_at = first.alerts()[0]["active_at"]
    await first.close()
    clock.advance(300)  # `for` has passed, but nothing saw the data meanwhile
    second = make_service(oncall(rec.url), registry=registry, gauge=gauge, for_="2m")
    await second.evaluate_once()
    [alert] = second.alerts()
    assert alert["state"] == "pending" and alert["active_at"] == active_at
    clock.advance(max(second.grace.values()))
    await second.evaluate_once()
    [alert] = second.alerts()
    assert alert["state"] == "firing" and alert["active_at"] == active_at
    await rec.wait_for(1)


def test_grace_covers_a_scrape_and_the_window_of_what_each_shipped_rule_reads():
    groups = load_rule_file(str(ROOT / "alerts.yml"))
    config = AlertingConfig(evaluation_interval=15)
    grace = grace_by_rule(groups, config, scrape_interval_s=20.0, window_s=300.0)
    rules = {key: rule for group in groups for key, rule in
             ((f"{group.name}/{r.name}/0", r) for r in group.rules)}
    assert any(reads_window(r) for r in rules.values())
    assert any(not reads_window(r) for r in rules.values())
    for key, rule in rules.items():
        interval = next(g for g in groups if rule in g.rules).interval_s or 15.0
        assert grace[key] >= 2 * interval + 20.0
        if reads_window(rule):
            assert grace[key] >= 300.0
    explicit = grace_by_rule(groups, AlertingConfig(restore_grace="10m"), 20.0, 300.0)
    assert set(explicit.values()) == {600.0}


# ---- the state file --------------------------------------------------------------------


def valid_document(state: str = "firing") -> dict:
    labels = {"alertname": "DemoHigh", "route": "/x", "severity": "page"}
    return {
        "version": 1, "saved_at": 1_700_000_100.0,
        "alerts": [{
            "name": "DemoHigh", "rule_key": "demo/DemoHigh/0", "fingerprint": fingerprint(labels),
            "labels": labels, "annotations": {"summary": "/x is slow"}, "state": state,
            "active_at": 1_700_000_000.0, "value": 2.0, "fired_at": 1_700_000_000.0,
            "resolved_at": None, "keep_firing_since": None, "last_evaluated": 1_700_000_090,
        }],
        "notifications": {'{}:{alertname="DemoHigh"}|oncall': {
            "firing": [fingerprint(labels)], "resolved": [], "sent_at": 1_700_000_001.0}},
    }


def _with(path: tuple, value) -> dict:
    doc = valid_document()
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


FOREIGN = {
    "unknown state": _with(("alerts", 0, "state"), "bogus"),
    "alerts null": _with(("alerts",), None),
    "notifications list": _with(("notifications",), []),
    "alerts a dict": _with(("alerts",), {}),
    "labels with a number": _with(("alerts", 0, "labels", "route"), 5),
    "active_at a string": _with(("alerts", 0, "active_at"), "yesterday"),
    "active_at a bool": _with(("alerts", 0, "active_at"), True),
    "negative time": _with(("alerts", 0, "fired_at"), -1),
    "wrong fingerprint": _with(("alerts", 0, "fingerprint"), "0" * 16),
    "unknown field": _with(("alerts", 0, "owner"), "me"),
    "log entry without sent_at": _with(("notifications", '{}:{alertname="DemoHigh"}|oncall'),
                                       {"firing": [], "resolved": []}),
    "wrong version": _with(("version",), 2),
    "no version": {"alerts": []},
}
FOREIGN_BYTES = {
    "truncated": json.dumps(valid_document()).encode()[:-7],
    "binary": bytes(range(256)),
    "not UTF-8": b'{"version": 1, "alerts": [], "x": "\xff"}',
    "lone surrogate": json.dumps(_with(("alerts", 0, "labels", "route"), "\udc80")).encode(),
    "NaN": b'{"version": 1, "saved_at": NaN}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "a list": b"[]",
    "empty": b"",
    "null": b"null",
}


def _cases() -> dict[str, bytes]:
    out = {name: json.dumps(doc).encode() for name, doc in FOREIGN.items()}
    out.update(FOREIGN_BYTES)
    return out


async def _restart_on(make_service, path: Path):
    """A service restarting on `path`, evaluated once, and every read view used."""
    service = make_service({"state_file": str(path)})
    service.gauge.labels(route="/y").set(2)
    await service.evaluate_once()
    views = service.alerts(), service.counts(), service.rules(), service.snapshot()
    return service, views


@pytest.mark.parametrize("name", sorted(_cases()))
async def test_foreign_state_file_is_logged_once_set_aside_and_ignored(
        make_service, tmp_path, caplog, name):
    path = tmp_path / "state.json"
    path.write_bytes(_cases()[name])
    caplog.set_level(logging.WARNING)
    service, (alerts, counts, _, _) = await _restart_on(make_service, path)
    assert [a["state"] for a in alerts] == ["firing"]  # only the fresh /y alert
    assert counts == {"pending": 0, "firing": 1, "resolved": 0}
    warnings = [r for r in caplog.records if "state file" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Traceback" not in caplog.text
    aside = list(tmp_path.glob("state.json.invalid-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == _cases()[name]
    await service.close()
    assert read_state(path) != EMPTY  # the next save replaced it with a valid one


async def test_a_valid_state_file_is_restored(make_service, tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(valid_document()))
    _, (alerts, _, _, _) = await _restart_on(make_service, path)
    assert {a["labels"]["route"] for a in alerts} == {"/x", "/y"}
    assert not list(tmp_path.glob("*.invalid-*"))


async def test_foreign_state_never_answers_500_on_the_views(aiohttp_client, make_config,
                                                            tmp_path):
    from metricsd.app import create_app

    rules = tmp_path / "rules.yml"
    rules.write_text(DEMO_RULES.format(for_="0s"))
    state = tmp_path / "state.json"
    for name, raw in _cases().items():
        state.write_bytes(raw)
        app = create_app(make_config({"alerting": {"rules": str(rules),
                                                   "state_file": str(state)}}))
        client = await aiohttp_client(app)
        for route in ("/", "/v1/alerts", "/metrics"):
            resp = await client.get(route)
            assert resp.status == 200, (name, route, await resp.text())
        await client.close()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
PATHS = st.sampled_from([
    ("version",), ("saved_at",), ("alerts",), ("notifications",), ("alerts", 0),
    ("alerts", 0, "state"), ("alerts", 0, "labels"), ("alerts", 0, "labels", "route"),
    ("alerts", 0, "active_at"), ("alerts", 0, "fired_at"), ("alerts", 0, "value"),
    ("alerts", 0, "annotations"), ("alerts", 0, "fingerprint"), ("alerts", 0, "name"),
    ("alerts", 0, "rule_key"), ("notifications", '{}:{alertname="DemoHigh"}|oncall'),
    ("notifications", '{}:{alertname="DemoHigh"}|oncall', "firing"),
    ("notifications", '{}:{alertname="DemoHigh"}|oncall', "sent_at"),
])


def _check_any_file(tmp: Path, raw: bytes) -> None:
    """Restore from `raw`, evaluate, read every view: no exception, sane states."""
    path = tmp / "state.json"
    for old in tmp.glob("state.json*"):
        old.unlink()
    path.write_bytes(raw)
    try:
        parse_state(raw)
        valid = True
    except ValueError:
        valid = False

    async def scenario() -> None:
        registry = CollectorRegistry()
        gauge = Gauge("demo_latency_seconds", "demo", ["route"], registry=registry)
        gauge.labels(route="/x").set(0)
        config = AlertingConfig.model_validate({
            "state_file": str(path), "group_wait": 3600,
            "receivers": [receiver_config("oncall", "http://127.0.0.1:9/hook")],
            "default_receiver": "oncall"})
        session = aiohttp.ClientSession()
        service = AlertingService(config, parse_rule_text(DEMO_RULES.format(for_="0s")),
                                  registry=registry, session=lambda: session,
                                  clock=lambda: 1_700_000_200.0)
        await service.evaluate_once()
        assert service.stats.evaluations == 1
        for alert in service.alerts():
            assert alert["state"] in STATES
            assert alert["value"] is None or math.isfinite(alert["value"])
        assert sum(service.counts().values()) == len(service.alerts())
        service.notify_alerts()
        json.dumps(service.snapshot(), allow_nan=False)
        await service.close()
        await session.close()

    asyncio.run(scenario())
    assert bool(list(tmp.glob("state.json.invalid-*"))) is not valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON)
def test_any_json_state_file_is_survived(tmp_path_factory, value):
    _check_any_file(tmp_path_factory.mktemp("s"), json.dumps(value).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=PATHS, value=JSON)
def test_any_corruption_of_a_valid_state_file_is_survived(tmp_path_factory, path, value):
    doc = valid_document()
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    _check_any_file(tmp_path_factory.mktemp("s"), json.dumps(doc).encode())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300))
def test_any_bytes_state_file_is_survived(tmp_path_factory, raw):
    _check_any_file(tmp_path_factory.mktemp("s"), raw)
