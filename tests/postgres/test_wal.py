"""wal: the position and pg_stat_wal's bytes grow by the WAL the test generates."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.postgres.views import flush_stats, server_version, value

LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8"


async def test_wal_position_and_bytes_follow_writes(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    conn = await asyncpg.connect(pg_database)
    try:
        version = await server_version(conn)
        await flush_stats(conn)
        start = await conn.fetchval(LSN)
        assert await state.scrape("main", "wal") == "ok"
        first = value(state, "wal", "metricsd_pg_wal_position_bytes")
        assert start <= first <= await conn.fetchval(LSN)
        bytes_before = value(state, "wal", "metricsd_pg_wal_bytes")
        records_before = value(state, "wal", "metricsd_pg_wal_records")
        await conn.execute("CREATE TABLE w (g int, h text)")
        await conn.execute("INSERT INTO w SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
        await flush_stats(conn)
        # The test clusters run with synchronous_commit off: the WAL writer reaches what was
        # inserted within wal_writer_delay, so wait for the write position to catch up.
        inserted = await conn.fetchval(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8")
        for _ in range(50):
            if await conn.fetchval(LSN) >= inserted:
                break
            await asyncio.sleep(0.1)
        written = await conn.fetchval(LSN) - first
        assert written > 1_000_000
        assert await state.scrape("main", "wal") == "ok"
    finally:
        await conn.close()
    position = value(state, "wal", "metricsd_pg_wal_position_bytes")
    assert position - first >= written
    if version < 140000:  # no pg_stat_wal: the position is all there is
        assert bytes_before is None and value(state, "wal", "metricsd_pg_wal_bytes") is None
        return
    generated = value(state, "wal", "metricsd_pg_wal_bytes") - bytes_before
    # pg_stat_wal counts record bytes (the position also moves over page headers); other
    # backends flush their WAL statistics late, so there is no tight upper bound.
    assert generated >= 0.9 * written
    assert value(state, "wal", "metricsd_pg_wal_records") - records_before >= 50000
    assert (value(state, "wal", "metricsd_pg_wal_writes") is None) == (version >= 180000)


async def test_standby_reports_replayed_position(make_cluster, make_pg_state):
    primary = make_cluster(settings={"wal_level": "replica"})
    standby = make_cluster(standby_of=primary)
    state = await make_pg_state(standby.dsn)
    conn = await asyncpg.connect(primary.dsn)
    try:
        await conn.execute("CREATE TABLE s AS SELECT g FROM generate_series(1, 1000) g")
        target = await conn.fetchval(LSN)
    finally:
        await conn.close()
    replica = await asyncpg.connect(standby.dsn)
    try:
        for _ in range(200):
            replayed = await replica.fetchval(
                "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::int8")
            if replayed >= target:
                break
            await asyncio.sleep(0.05)
        assert await state.scrape("main", "wal") == "ok"
    finally:
        await replica.close()
    assert value(state, "wal", "metricsd_pg_wal_position_bytes") >= target
