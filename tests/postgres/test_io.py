"""io: pg_stat_io on 16+ (extends of the table the test writes); skipped before 16."""

from __future__ import annotations

import asyncpg

from tests.postgres.views import server_version, value, values

CLIENT = {"backend_type": "client backend", "object": "relation"}


async def test_extends_follow_the_table_written(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    conn = await asyncpg.connect(pg_database)
    try:
        version = await server_version(conn)
        if version < 160000:
            # No pg_stat_io: a skip that keeps the target up, not an error.
            assert await state.scrape("main", "io") == "unsupported_version"
            assert await state.scrape("main", "activity") == "ok"
            assert state.up("main")
            return
        assert await state.scrape("main", "io") == "ok"
        before = value(state, "io", "metricsd_pg_io_bytes", **CLIENT, op="extends")
        await conn.execute("CREATE TABLE big AS SELECT g, md5(g::text) FROM"
                           " generate_series(1, 50000) g")
        size = await conn.fetchval("SELECT pg_relation_size('big')")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT 1")
        assert await state.scrape("main", "io") == "ok"
        timing = await conn.fetchval("SELECT current_setting('track_io_timing')::bool")
    finally:
        await conn.close()
    after = value(state, "io", "metricsd_pg_io_bytes", **CLIENT, op="extends")
    assert after - before >= size
    ops = values(state, "io", "metricsd_pg_io_operations")
    assert {dict(k)["op"] for k in ops} >= {"reads", "writes", "extends", "hits", "fsyncs"}
    # Cells PostgreSQL marks n/a are absent, not 0: the checkpointer never extends.
    assert value(state, "io", "metricsd_pg_io_operations", backend_type="checkpointer",
                 object="relation", op="extends") is None
    assert bool(values(state, "io", "metricsd_pg_io_time_seconds")) == timing
