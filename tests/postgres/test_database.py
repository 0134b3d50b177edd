"""database: the cache hit ratio is over the interval, matching the test's own readings."""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.fixtures.pg import flush_stats

COUNTERS = "SELECT blks_hit, blks_read, xact_commit FROM pg_stat_database WHERE datname = $1"


async def test_interval_cache_hit_ratio_and_commits(pg_database, make_pg_state):
    db = urlsplit(pg_database).path.lstrip("/")
    state = await make_pg_state(pg_database)
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("""
            CREATE TABLE hot (id int, pad text);
            INSERT INTO hot SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;
        """)
        await flush_stats(conn)
        assert await state.scrape("main", "database") == "ok"
        assert state.cache_hit_ratio("main") is None  # a baseline has no interval yet
        before = await conn.fetchrow(COUNTERS, db)
        for _ in range(10):
            await conn.fetchval("SELECT count(*) FROM hot")
            await conn.execute("SELECT 1")  # one more commit each
        await flush_stats(conn)
        after = await conn.fetchrow(COUNTERS, db)
        assert await state.scrape("main", "database") == "ok"
    finally:
        await conn.close()
    hit = after["blks_hit"] - before["blks_hit"]
    read = after["blks_read"] - before["blks_read"]
    assert hit > 10 * 250  # ten scans of a table of a few hundred pages
    data = {d.datname: d for d in state.latest("main", "database").data.databases}
    assert data[db].cache_hit_ratio == pytest.approx(hit / (hit + read), abs=0.01)
    assert data[db].commits >= after["xact_commit"]
