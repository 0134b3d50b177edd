"""Failure modes: server stopped and restarted, down at start, missing extension, timeouts."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app
from metricsd.export.registry import Registry
from metricsd.postgres import PG_STATE
from metricsd.postgres.exporter import PgExporter
from tests.fixtures.pg import run_sql
from tests.fixtures.pgcluster import free_port

INTERVAL_S = 1.0


async def wait_for(check: Callable[[], Awaitable[bool]], limit_s: float, step: float = 0.05
                   ) -> float:
    """Seconds until check() is true; fails the test after `limit_s`."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > limit_s:
            raise AssertionError(f"condition not met within {limit_s}s")
        await asyncio.sleep(step)
    return time.monotonic() - started


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


async def pg_up(client, target: str = "main") -> float | None:
    response = await client.get("/metrics")
    assert response.status == 200
    return samples(await response.text(), "metricsd_pg_up").get((("target", target),))


@pytest.mark.pg_versions("15", "18")
async def test_stop_and_restart_flip_pg_up(make_cluster, make_config, aiohttp_client, caplog):
    cluster = make_cluster()
    config = make_config({"postgres": {"scrape_interval": f"{INTERVAL_S}s",
                                       "targets": [{"name": "main", "dsn": cluster.dsn}]}})
    client = await aiohttp_client(create_app(config))

    async def up_is(value: float) -> bool:
        return await pg_up(client) == value

    await wait_for(lambda: up_is(1.0), limit_s=10)
    caplog.set_level(logging.INFO, logger="metricsd.postgres.state")
    await asyncio.to_thread(cluster.stop)
    await wait_for(lambda: up_is(0.0), limit_s=3 * INTERVAL_S + 2)

    async def activity_gone() -> bool:
        text = await (await client.get("/metrics")).text()
        return not samples(text, "metricsd_pg_activity_max_connections")

    # Each collector finds out on its own next run; its series go then.
    await wait_for(activity_gone, limit_s=3 * INTERVAL_S + 2)
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 200 and body["status"] == "degraded"
    component = body["components"]["postgres:main"]
    assert component["ok"] is False and component["required"] is False
    assert "connection_error" in component["collectors"].values()
    # While down, the views' series are gone rather than stale (once each collector's
    # job has run again: up turns 0 with the first failure).
    state = client.app[PG_STATE]
    await wait_for(lambda: _all_failed(state, "main"), limit_s=3 * INTERVAL_S + 2)
    text = await (await client.get("/metrics")).text()
    assert not samples(text, "metricsd_pg_activity_max_connections")
    await asyncio.sleep(3 * INTERVAL_S)  # several failed rounds
    await asyncio.to_thread(cluster.start)
    elapsed = await wait_for(lambda: up_is(1.0), limit_s=10)
    # Backoff is capped below one interval, so the next round or the one after connects.
    # An uncapped doubling backoff would be 8 s or more after these rounds of failures;
    # the slack above two intervals is for scrapes on a loaded 2-core CI machine.
    assert elapsed <= 4 * INTERVAL_S + 1, elapsed

    async def activity_back() -> bool:
        text = await (await client.get("/metrics")).text()
        return bool(samples(text, "metricsd_pg_activity_max_connections"))

    # `up` is back with the first collector that reached the server; each of the others
    # comes back on its own next run.
    await wait_for(activity_back, limit_s=2 * INTERVAL_S + 1)
    text = await (await client.get("/metrics")).text()
    errors = samples(text, "metricsd_pg_collector_errors_total")
    assert errors[(("collector", "activity"), ("kind", "connection_error"),
                   ("target", "main"))] >= 3
    # The outage is logged once for the target, not once per collector or failed round;
    # the recovery once too.
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "target main is down" in m]) == 1, messages
    assert not [m for m in messages if "connection_error" in m], messages
    assert len([m for m in messages if "target main answers again" in m]) == 1, messages


@pytest.mark.pg_versions("15", "18")
async def test_starts_while_target_is_down(make_config, aiohttp_client):
    dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    config = make_config({"postgres": {"scrape_interval": "1h", "connect_timeout": "1s",
                                       "targets": [{"name": "gone", "dsn": dsn}]}})
    client = await aiohttp_client(create_app(config))
    state = client.app[PG_STATE]
    await wait_for(lambda: _all_ran(state, "gone"), limit_s=5)
    assert await pg_up(client, "gone") == 0.0
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["components"]["postgres:gone"]["ok"] is False


async def _all_failed(state, target: str) -> bool:
    return all(h["status"] == "connection_error" for h in state.health(target).values())


async def _all_ran(state, target: str) -> bool:
    return all(h["status"] != "pending" for h in state.health(target).values())


async def test_missing_extension_is_a_status(make_database, make_pg_state, caplog):
    dsn = make_database(extension=False)
    state = await make_pg_state(dsn)
    registry = Registry()
    registry.add_source(PgExporter(state))
    caplog.set_level(logging.WARNING, logger="metricsd.postgres.state")
    for _ in range(3):
        statuses = await state.scrape_all()
    assert statuses.pop(("main", "statements")) == "missing_extension"
    assert set(statuses.values()) - {"unsupported_version"} == {"ok"}
    assert state.up("main")
    assert "CREATE EXTENSION" in state.health("main")["statements"]["message"]
    get = registry.get_sample_value
    assert get("metricsd_pg_collector_status",
               {"target": "main", "collector": "statements", "status": "missing_extension"}) == 1
    assert get("metricsd_pg_collector_success",
               {"target": "main", "collector": "statements"}) == 0
    assert get("metricsd_pg_collector_success", {"target": "main", "collector": "tables"}) == 1
    assert get("metricsd_pg_up", {"target": "main"}) == 1
    assert get("metricsd_pg_statements_tracked", {"target": "main"}) is None
    assert get("metricsd_pg_activity_max_connections", {"target": "main"}) is not None
    logged = [r for r in caplog.records if "missing_extension" in r.getMessage()]
    assert len(logged) == 1


async def test_timeout_drops_series_but_not_up(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    assert await state.scrape("main", "activity") == "ok"
    assert state.connections("main") is not None
    # The same collector with a scrape timeout nothing can meet.
    state.config = state.config.model_copy(update={"scrape_timeout": 1e-6})
    assert await state.scrape("main", "activity") == "timeout"
    assert state.connections("main") is None
    # No answer in time says nothing about the server: up stays what the last answer said.
    assert state.up("main")
    assert state.health("main")["activity"]["status"] == "timeout"


@pytest.mark.pg_versions("15", "18")
async def test_not_preloaded_is_missing_extension(make_cluster, make_pg_state):
    cluster = make_cluster(settings={"shared_preload_libraries": "''"})
    run_sql(cluster.dsn, "CREATE EXTENSION pg_stat_statements")
    state = await make_pg_state(cluster.dsn)
    statuses = await state.scrape_all()
    assert statuses.pop(("main", "statements")) == "missing_extension"
    assert "shared_preload_libraries" in state.health("main")["statements"]["message"]
    assert set(statuses.values()) - {"unsupported_version"} == {"ok"}
    assert state.up("main")


async def test_extension_in_another_schema(make_database, make_pg_state):
    dsn = make_database(extension=False)
    run_sql(dsn, "CREATE SCHEMA \"Stats\"", "CREATE EXTENSION pg_stat_statements SCHEMA \"Stats\"")
    state = await make_pg_state(dsn)
    assert await state.scrape("main", "statements") == "ok"
    run_sql(dsn, "SELECT 12345 AS in_another_schema")
    assert await state.scrape("main", "statements") == "ok"
    texts = [s["query"] for s in state.statements(limit=1000)]
    assert "SELECT $1 AS in_another_schema" in texts


def _cluster_pids(datadir: str) -> list[int]:
    """The postmaster (first line of postmaster.pid) and every process it forked."""
    with open(f"{datadir}/postmaster.pid", encoding="utf-8") as f:
        postmaster = int(f.readline())
    children = [int(p) for p in subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
    ).stdout.split()]
    return [postmaster, *children]


@pytest.mark.pg_versions("15", "18")
async def test_hung_server_reads_down_then_recovers(make_cluster, make_config, aiohttp_client):
    """A server that accepts nothing and answers nothing (every process stopped, as on a
    frozen VM or a network black hole) is down, not "busy": `up` goes to 0 while /metrics
    keeps answering, and everything comes back when the server thaws."""
    cluster = make_cluster()
    config = make_config({"postgres": {
        "scrape_interval": f"{INTERVAL_S}s", "scrape_timeout": "1s", "connect_timeout": "1s",
        "targets": [{"name": "main", "dsn": cluster.dsn}]}})
    client = await aiohttp_client(create_app(config))

    async def up_is(value: float) -> bool:
        return await pg_up(client) == value

    await wait_for(lambda: up_is(1.0), limit_s=10)
    pids = _cluster_pids(cluster.datadir)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        await wait_for(lambda: up_is(0.0), limit_s=8 * INTERVAL_S)
        started = time.monotonic()
        assert (await client.get("/metrics")).status == 200
        assert time.monotonic() - started < 1.0  # the event loop is not waiting on it
        body = await (await client.get("/readyz")).json()
        assert body["components"]["postgres:main"]["ok"] is False
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)

    async def activity_back() -> bool:
        text = await (await client.get("/metrics")).text()
        return bool(samples(text, "metricsd_pg_activity_max_connections"))

    await wait_for(lambda: up_is(1.0), limit_s=15)
    await wait_for(activity_back, limit_s=15)
