"""The PostgreSQL JSON views and /metrics through the real app, against a real server."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app
from metricsd.postgres import PG_STATE
from tests.fixtures.binaries import require_binary
from tests.postgres.test_failures import wait_for


@pytest.fixture
async def pg_client(pg_database, make_config, aiohttp_client):
    """The app with one target; the schedule is long so the test drives the scrapes."""
    config = make_config({"postgres": {
        "scrape_interval": "1h", "slow_query_ms": 100,
        "targets": [{"name": "main", "dsn": pg_database}],
    }})
    client = await aiohttp_client(create_app(config))
    state = client.app[PG_STATE]

    async def first_round_done() -> bool:
        return all(h["status"] != "pending" for h in state.health("main").values())

    await wait_for(first_round_done, limit_s=10)
    return client


async def test_statements_and_indexes_json(pg_client, pg_database):
    state = pg_client.app[PG_STATE]
    marker = f"j{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int);"
                           "CREATE INDEX t_v_unused ON t (v)")
        await state.scrape_all()
        await conn.fetch(f"SELECT pg_sleep($1) AS {marker}", 0.2)
        for i in range(4):
            await conn.fetchval(f"SELECT $1::int AS {marker}", i)
        await state.scrape_all()
    finally:
        await conn.close()
    response = await pg_client.get("/v1/postgres/statements?slow=true&limit=100")
    assert response.status == 200
    body = await response.json()
    assert body["targets"]["main"]["up"] is True
    slow = [s for s in body["statements"] if marker in s["query"]]
    assert len(slow) == 1 and "pg_sleep" in slow[0]["query"]
    assert slow[0]["calls"] == 1 and slow[0]["slow"] is True and slow[0]["target"] == "main"
    by_calls = await (await pg_client.get("/v1/postgres/statements?sort=calls&limit=500")).json()
    mine = [s for s in by_calls["statements"] if marker in s["query"]]
    assert [s["calls"] for s in mine] == [4, 1]
    assert body["intervals"]["main"]["interval_seconds"] > 0
    indexes = await (await pg_client.get("/v1/postgres/indexes?unused=true")).json()
    assert [i["index"] for i in indexes["indexes"]] == ["t_v_unused"]
    every = await (await pg_client.get("/v1/postgres/indexes?target=main")).json()
    assert {i["index"] for i in every["indexes"]} == {"t_pkey", "t_v_unused"}


@pytest.mark.parametrize(("query", "status"), [
    ("sort=bogus", 400), ("limit=0", 400), ("limit=abc", 400), ("slow=maybe", 400),
    ("target=nope", 404),
])
async def test_bad_parameters_are_4xx(pg_client, query, status):
    response = await pg_client.get(f"/v1/postgres/statements?{query}")
    assert response.status == status
    assert response.reason and response.reason != "Internal Server Error"


async def test_metrics_has_pg_families_and_passes_promtool(pg_client, pg_database):
    promtool = require_binary("promtool")
    state = pg_client.app[PG_STATE]
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    finally:
        await conn.close()
    await state.scrape_all()
    await state.scrape_all()  # statements: the second scrape has an interval
    text = await (await pg_client.get("/metrics")).text()
    check = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, text=True,
        capture_output=True, check=False)
    assert check.returncode == 0, check.stderr + check.stdout
    # promtool reads only the text format; OpenMetrics goes through the strict parser.
    om = await (await pg_client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})).text()
    om_names = {s.name for f in om_parse(om) for s in f.samples}
    assert "metricsd_pg_database_commits_total" in om_names and "metricsd_pg_up" in om_names
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    for name in ("metricsd_pg_up", "metricsd_pg_connect_seconds",
                 "metricsd_pg_collector_success", "metricsd_pg_collector_duration_seconds",
                 "metricsd_pg_statements_calls", "metricsd_pg_indexes_size_bytes",
                 "metricsd_pg_tables_seq_scans_total", "metricsd_pg_activity_connections",
                 "metricsd_pg_database_commits_total", "metricsd_pg_replication_is_standby",
                 "metricsd_pg_last_success_timestamp_seconds"):
        assert name in names, name
    documented = await asyncio.to_thread(Path("docs/metrics.md").read_text, encoding="utf-8")
    for name in names:
        if name.startswith("metricsd_pg_"):
            assert f"`{name}`" in documented, f"{name} missing from docs/metrics.md"


async def test_one_scheduled_job_per_collector(pg_client):
    from metricsd.core import SCHEDULER

    jobs = {job.id: job for job in pg_client.app[SCHEDULER].get_jobs()
            if job.id.startswith("scrape:")}
    from metricsd.postgres.views import load_all

    collectors = tuple(load_all())
    assert set(jobs) == {f"scrape:main:{c}" for c in collectors}
    for job in jobs.values():
        assert job.max_instances == 1 and job.coalesce is True
        assert job.trigger.interval.total_seconds() == 3600
    ready = await (await pg_client.get("/readyz")).json()
    component = ready["components"]["postgres:main"]
    assert component["ok"] is True and component["error"] is None
    assert set(component["collectors"]) == set(collectors)
    # Views this server lacks (pg_stat_io before 16) are skipped, not failed.
    assert set(component["collectors"].values()) <= {"ok", "unsupported_version"}


async def test_in_process_readers_see_the_same_samples(pg_client):
    from metricsd.core import REGISTRY
    from metricsd.export.read import Samples

    await pg_client.app[PG_STATE].scrape_all()
    await pg_client.app[PG_STATE].scrape_all()
    text = await (await pg_client.get("/metrics")).text()
    wanted = ["metricsd_pg_up", "metricsd_pg_statements_calls",
              "metricsd_pg_database_commits_total"]
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text) for s in f.samples if s.name in wanted}
    got = Samples(pg_client.app[REGISTRY]).current(wanted)
    inside = {(name, tuple(sorted(labels.items()))): value
              for name, rows in got.items() for labels, value in rows}
    assert inside == scraped and len(inside) > 3
