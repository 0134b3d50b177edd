"""archiver: a failing archive_command counts failures and says "failing"; fixed, it archives."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.postgres.views import value


async def _switch_until(state, conn, check, limit_s: float = 20.0) -> None:
    """Switch WAL segments (each one to archive) and scrape until `check()` holds."""
    for _ in range(int(limit_s / 0.2)):
        await conn.execute("CREATE TABLE IF NOT EXISTS w (v int); INSERT INTO w VALUES (1)")
        await conn.fetchval("SELECT pg_switch_wal()")
        assert await state.scrape("main", "archiver") == "ok"
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"archiver never got there: {state.latest('main', 'archiver').data}")


async def test_failing_then_fixed_archive_command(make_cluster, make_pg_state):
    cluster = make_cluster(settings={"archive_mode": "on", "archive_command": "'false'",
                                     "wal_level": "replica"})
    state = await make_pg_state(cluster.dsn)
    conn = await asyncpg.connect(cluster.dsn)
    try:
        assert await state.scrape("main", "archiver") == "ok"
        assert value(state, "archiver", "metricsd_pg_archiver_enabled") == 1
        assert value(state, "archiver", "metricsd_pg_archiver_archived") == 0

        def failing() -> bool:
            return value(state, "archiver", "metricsd_pg_archiver_failing") == 1

        await _switch_until(state, conn, failing)
        failed = value(state, "archiver", "metricsd_pg_archiver_failed")
        assert failed >= 1
        assert failed == await conn.fetchval("SELECT failed_count FROM pg_stat_archiver")
        assert value(state, "archiver", "metricsd_pg_archiver_last_failed_timestamp_seconds")
        # The superuser may list archive_status: the segments waiting are counted.
        assert value(state, "archiver", "metricsd_pg_archiver_pending_segments") >= 1
        await conn.execute("ALTER SYSTEM SET archive_command = 'true'")
        await conn.execute("SELECT pg_reload_conf()")

        def archived() -> bool:
            return (value(state, "archiver", "metricsd_pg_archiver_archived") or 0) >= 1 \
                and not failing()

        await _switch_until(state, conn, archived)
        assert value(state, "archiver", "metricsd_pg_archiver_failed") >= failed
        assert value(state, "archiver", "metricsd_pg_archiver_last_archived_timestamp_seconds")
    finally:
        await conn.close()


async def test_archiving_off(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    assert await state.scrape("main", "archiver") == "ok"
    assert value(state, "archiver", "metricsd_pg_archiver_enabled") == 0
    assert value(state, "archiver", "metricsd_pg_archiver_failing") == 0
    assert value(state, "archiver", "metricsd_pg_archiver_pending_segments") is None
