"""indexes: last_idx_scan (16+) turns an index scanned long ago into "unused"."""

from __future__ import annotations

import asyncpg

from metricsd.postgres.indexes import idle
from tests.postgres.views import flush_stats, server_version


async def _scan_once(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""
            CREATE TABLE items (id int, a int, b int);
            INSERT INTO items SELECT g, g, g FROM generate_series(1, 5000) g;
            CREATE INDEX items_a ON items (a);
            CREATE INDEX items_b ON items (b);
            ANALYZE items;
            SET enable_seqscan = off; SET enable_bitmapscan = off;
        """)
        await conn.fetch("SELECT id FROM items WHERE a = 1")
        await flush_stats(conn)
        return await server_version(conn)
    finally:
        await conn.close()


async def test_scanned_long_ago_is_unused_on_16(pg_database, make_pg_state):
    version = await _scan_once(pg_database)
    now = [0.0]
    state = await make_pg_state(pg_database, clock=lambda: now[0],
                                unused_index_idle="1h")
    conn = await asyncpg.connect(pg_database)
    try:
        server_now = await conn.fetchval("SELECT extract(epoch FROM now())::float8")
    finally:
        await conn.close()
    now[0] = server_now + 60  # a minute after the scan
    assert await state.scrape("main", "indexes") == "ok"
    got = {i["index"]: i for i in state.indexes()}
    assert got["items_b"]["unused"] is True  # never scanned: unused on every version
    assert got["items_a"]["scans"] == 1 and got["items_a"]["unused"] is False
    if version < 160000:
        assert got["items_a"]["last_scan"] is None
        return
    assert server_now - 60 <= got["items_a"]["last_scan"] <= server_now
    now[0] = server_now + 2 * 3600  # two hours later, still one scan: idle for over 1 h
    assert await state.scrape("main", "indexes") == "ok"
    got = {i["index"]: i for i in state.indexes()}
    assert got["items_a"]["unused"] is True and got["items_a"]["scans"] == 1
    assert [i["index"] for i in state.indexes(unused=True)] == ["items_a", "items_b"]


def test_idle_rule():
    assert not idle(None, 1000.0, 10.0)  # unknown (before 16): never idle by this rule
    assert not idle(995.0, 1000.0, 10.0)
    assert idle(989.0, 1000.0, 10.0)
