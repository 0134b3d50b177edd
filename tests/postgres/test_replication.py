"""replication: a real streaming standby; lag seen from both sides while replay is paused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.fixtures.pg import run_sql


@pytest.mark.pg_versions("15", "18")
async def test_primary_and_standby_lag(make_cluster, make_pg_state):
    primary = make_cluster()
    standby = make_cluster(standby_of=primary, settings={"cluster_name": "standby1"})
    on_primary = await make_pg_state(primary.dsn)
    on_standby = await make_pg_state(standby.dsn)
    run_sql(standby.dsn, "SELECT pg_wal_replay_pause()")
    payload = 2_000_000
    run_sql(primary.dsn, "CREATE TABLE filler (pad text)",
            f"INSERT INTO filler SELECT repeat(md5(g::text), 32) FROM generate_series(1, "
            f"{payload // 1024}) g")
    # Wait until the standby has received (not replayed) everything the primary wrote.
    primary_lsn = run_sql(primary.dsn, "SELECT pg_current_wal_lsn()::text")[0][0][0]
    for _ in range(100):
        received = run_sql(standby.dsn, "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
                                        f"'{primary_lsn}') >= 0")[0][0][0]
        if received:
            break
        await asyncio.sleep(0.05)
    assert received
    assert await on_primary.scrape("main", "replication") == "ok"
    assert await on_standby.scrape("main", "replication") == "ok"
    seen_by_primary = on_primary.replication("main")
    seen_by_standby = on_standby.replication("main")
    assert seen_by_primary["is_standby"] is False
    assert [s["standby"] for s in seen_by_primary["standbys"]] == ["standby1"]
    lag = seen_by_primary["standbys"][0]
    assert lag["replay_lag_bytes"] >= payload
    assert lag["replay_lag_bytes"] >= lag["flush_lag_bytes"] >= 0
    assert seen_by_standby["is_standby"] is True
    assert seen_by_standby["replay_lag_bytes"] >= payload
    assert seen_by_standby["replay_delay_seconds"] >= 0
    run_sql(standby.dsn, "SELECT pg_wal_replay_resume()")
    conn = await asyncpg.connect(standby.dsn)
    try:
        for _ in range(100):
            if await conn.fetchval("SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"):
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    assert await on_standby.scrape("main", "replication") == "ok"
    caught_up = on_standby.replication("main")
    assert caught_up["replay_lag_bytes"] == 0 and caught_up["replay_delay_seconds"] == 0
