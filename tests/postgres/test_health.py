"""Health: `up` means the server answered; a lock or a timeout is one collector's status.

A migration holding ACCESS EXCLUSIVE must not look like an outage: the locked relations are
left out (pg_locks) instead of waited on, and a collector that still runs into a lock
reports `lock_timeout` while `up` and the other collectors stay as they are.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from metricsd.app import create_app
from metricsd.export.registry import Registry
from metricsd.postgres.base import Snapshot
from metricsd.postgres.exporter import PgExporter
from tests.postgres.test_failures import samples, wait_for

LOCK_S = 10.0


@pytest.mark.pg_versions("15", "18")
async def test_ten_second_access_exclusive_lock_leaves_up_at_1(
        pg_database, make_config, aiohttp_client):
    setup = await asyncpg.connect(pg_database)
    await setup.execute("""
        CREATE TABLE migrating (id int PRIMARY KEY, v int);
        CREATE INDEX migrating_v ON migrating (v);
        CREATE TABLE calm (id int PRIMARY KEY);
    """)
    await setup.close()
    config = make_config({"postgres": {"scrape_interval": "1s", "lock_timeout": "1s",
                                       "targets": [{"name": "main", "dsn": pg_database}]}})
    client = await aiohttp_client(create_app(config))

    async def metrics() -> str:
        return await (await client.get("/metrics")).text()

    def tables(text: str) -> set[str]:
        return {dict(k)["table"] for k in samples(text, "metricsd_pg_tables_size_bytes")}

    async def both_tables_seen() -> bool:
        return {"migrating", "calm"} <= tables(await metrics())

    await wait_for(both_tables_seen, limit_s=10)
    locker = await asyncpg.connect(pg_database)
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE migrating IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        seen_without = polls = 0
        while time.monotonic() - started < LOCK_S:
            await asyncio.sleep(0.5)
            text = await metrics()
            polls += 1
            assert samples(text, "metricsd_pg_up") == {(("target", "main"),): 1.0}
            statuses = {dict(k)["collector"]: dict(k)["status"]
                        for k in samples(text, "metricsd_pg_collector_status")}
            assert set(statuses.values()) <= {"ok", "unsupported_version"}, statuses
            now_tables = tables(text)
            assert "calm" in now_tables
            if "migrating" not in now_tables:
                seen_without += 1
        # Every round after the first one under the lock leaves the locked table out.
        assert seen_without >= polls - 3, (seen_without, polls)
        indexes = {dict(k)["index"] for k in samples(text, "metricsd_pg_indexes_size_bytes")}
        assert "migrating_v" not in indexes and "calm_pkey" in indexes
        await tx.rollback()
    finally:
        await locker.close()
    await wait_for(both_tables_seen, limit_s=5)
    errors = samples(await metrics(), "metricsd_pg_collector_errors_total")
    assert errors and set(errors.values()) == {0.0}, errors


async def test_lock_and_statement_timeouts_are_a_collectors_own_status(
        pg_database, make_pg_state):
    state = await make_pg_state(pg_database, lock_timeout="200ms", statement_timeout="300ms")
    registry = Registry()
    registry.add_source(PgExporter(state))
    get = registry.get_sample_value
    labels = {"target": "main", "collector": "tables"}
    # Present from the start at 0, so increase() sees the first error.
    assert get("metricsd_pg_collector_errors_total", {**labels, "kind": "lock_timeout"}) == 0
    assert set((await state.scrape_all()).values()) <= {"ok", "unsupported_version"}
    collector = state.targets["main"].collectors["tables"]
    run_sql = await asyncpg.connect(pg_database)
    await run_sql.execute("CREATE TABLE busy (id int)")
    locker = await asyncpg.connect(pg_database)
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")

        async def blocked(conn, info, now) -> Snapshot:
            # What a collector sees when a lock is taken after it checked pg_locks.
            await conn.fetchval("SELECT pg_relation_size('busy')")
            raise AssertionError("the lock should have stopped this")

        collector.scrape = blocked
        assert await state.scrape("main", "tables") == "lock_timeout"
        assert state.up("main")
        assert await state.scrape("main", "activity") == "ok"
        await tx.rollback()

        async def sleepy(conn, info, now) -> Snapshot:
            await conn.fetchval("SELECT pg_sleep(5)")
            raise AssertionError("statement_timeout should have cancelled this")

        collector.scrape = sleepy
        assert await state.scrape("main", "tables") == "timeout"
        assert state.up("main")
    finally:
        await locker.close()
        await run_sql.close()
    assert get("metricsd_pg_up", {"target": "main"}) == 1
    assert get("metricsd_pg_collector_errors_total", {**labels, "kind": "lock_timeout"}) == 1
    assert get("metricsd_pg_collector_errors_total", {**labels, "kind": "timeout"}) == 1
    assert get("metricsd_pg_collector_status", {**labels, "status": "timeout"}) == 1
    assert get("metricsd_pg_collector_success",
               {"target": "main", "collector": "activity"}) == 1
