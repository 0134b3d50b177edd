"""checkpointer and bgwriter: CHECKPOINT counts as requested and writes the dirty buffers."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.postgres.views import server_version, value, values

BEFORE_17 = ("SELECT checkpoints_req AS requested, buffers_checkpoint AS written"
             " FROM pg_stat_bgwriter")
FROM_17 = "SELECT num_requested AS requested, buffers_written AS written FROM pg_stat_checkpointer"


async def _settled(conn: asyncpg.Connection, sql: str, requested: int) -> asyncpg.Record:
    """The counters once the checkpointer has reported `requested` checkpoints.

    CHECKPOINT returns when the checkpoint is done; the checkpointer reports its
    statistics a moment later.
    """
    for _ in range(100):
        row = await conn.fetchrow(sql)
        if row["requested"] >= requested:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"checkpointer never reported {requested} requested checkpoints")


async def test_requested_checkpoints_and_written_bytes(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    conn = await asyncpg.connect(pg_database)
    try:
        version = await server_version(conn)
        block = int(await conn.fetchval("SELECT current_setting('block_size')::int"))
        sql = FROM_17 if version >= 170000 else BEFORE_17
        await conn.execute("CREATE TABLE dirty AS SELECT g, md5(g::text) FROM"
                           " generate_series(1, 20000) g")
        pages = int(await conn.fetchval("SELECT pg_relation_size('dirty')")) // block
        await conn.execute("CHECKPOINT")
        before = await _settled(conn, sql, 1)
        assert await state.scrape("main", "checkpointer") == "ok"
        # Between two readings of the test's own: a checkpoint another session requested
        # (DROP DATABASE of an earlier test) may be reported late.
        first = await conn.fetchrow(sql)
        assert before["requested"] <= value(
            state, "checkpointer", "metricsd_pg_checkpointer_checkpoints",
            kind="requested") <= first["requested"]
        # An UPDATE of every row dirties every page through shared buffers (a CREATE TABLE
        # AS may write through its own ring); the first CHECKPOINT then writes them all.
        await conn.execute("UPDATE dirty SET g = g + 1")
        await conn.execute("CHECKPOINT")
        await conn.execute("CHECKPOINT")
        after = await _settled(conn, sql, first["requested"] + 2)
        assert await state.scrape("main", "checkpointer") == "ok"
        last = await conn.fetchrow(sql)
    finally:
        await conn.close()
    requested = value(state, "checkpointer", "metricsd_pg_checkpointer_checkpoints",
                      kind="requested")
    assert first["requested"] + 2 <= after["requested"] <= requested <= last["requested"]
    written = value(state, "checkpointer", "metricsd_pg_checkpointer_buffers_written_bytes")
    assert after["written"] * block <= written <= last["written"] * block
    assert written - first["written"] * block >= pages * block
    assert value(state, "checkpointer", "metricsd_pg_checkpointer_checkpoints",
                 kind="timed") is not None
    assert value(state, "checkpointer", "metricsd_pg_checkpointer_write_time_seconds") >= 0
    restartpoints = values(state, "checkpointer", "metricsd_pg_checkpointer_restartpoints")
    # Restartpoints exist in the view from 17 on; before, the family is absent.
    assert bool(restartpoints) == (version >= 170000)


async def test_bgwriter_counters_by_version(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    conn = await asyncpg.connect(pg_database)
    try:
        version = await server_version(conn)
        block = int(await conn.fetchval("SELECT current_setting('block_size')::int"))
        # Reading a table that is not cached allocates buffers.
        await conn.execute("CREATE TABLE cold AS SELECT g FROM generate_series(1, 50000) g")
        before = await conn.fetchval("SELECT buffers_alloc FROM pg_stat_bgwriter")
        assert await state.scrape("main", "bgwriter") == "ok"
        after = await conn.fetchval("SELECT buffers_alloc FROM pg_stat_bgwriter")
    finally:
        await conn.close()
    alloc = value(state, "bgwriter", "metricsd_pg_bgwriter_buffers_alloc_bytes")
    assert before * block <= alloc <= after * block
    assert value(state, "bgwriter", "metricsd_pg_bgwriter_buffers_clean_bytes") >= 0
    backend = value(state, "bgwriter", "metricsd_pg_bgwriter_buffers_backend_bytes")
    assert (backend is not None) == (version < 170000)
