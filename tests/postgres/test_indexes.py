"""indexes: unused with size, used with its scans, invalid after a failed CONCURRENTLY, bloat."""

from __future__ import annotations

import asyncpg
import pytest

from metricsd.postgres.indexes import estimate_btree_pages
from tests.fixtures.pg import flush_stats


async def _setup(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""
            CREATE TABLE items (id int PRIMARY KEY, a int, b int, c int, d int);
            INSERT INTO items SELECT g, g % 1000, g % 777, g, g % 10
              FROM generate_series(1, 20000) g;
            CREATE INDEX items_a ON items (a);
            CREATE INDEX items_b ON items (b);
            CREATE UNIQUE INDEX items_c ON items (c);
            ANALYZE items;
        """)
        # A unique index over duplicates fails, and CONCURRENTLY leaves it behind invalid.
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY items_d_bad ON items (d)")
        await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        for value in (1, 2, 3):
            await conn.fetch("SELECT id FROM items WHERE a = $1", value)
        await flush_stats(conn)
        sizes = await conn.fetch(
            "SELECT relname, pg_relation_size(oid) AS size FROM pg_class"
            " WHERE relname LIKE 'items%'")
        return {r["relname"]: r["size"] for r in sizes}
    finally:
        await conn.close()


async def test_unused_used_and_invalid_indexes(pg_database, make_pg_state):
    sizes = await _setup(pg_database)
    state = await make_pg_state(pg_database)
    assert await state.scrape("main", "indexes") == "ok"
    got = {i["index"]: i for i in state.indexes()}
    assert set(got) >= {"items_pkey", "items_a", "items_b", "items_c", "items_d_bad"}
    # Never used, backs nothing: unused, with its size.
    assert got["items_b"]["unused"] is True
    assert got["items_b"]["size_bytes"] == sizes["items_b"] > 0
    # Used three times by the test: its scans, and not unused.
    assert got["items_a"]["scans"] == 3 and got["items_a"]["unused"] is False
    # Primary key and unique index enforce something: never "unused".
    assert got["items_pkey"]["unused"] is False and got["items_c"]["unused"] is False
    assert got["items_pkey"]["primary"] and got["items_c"]["unique"]
    # The failed CREATE INDEX CONCURRENTLY.
    assert got["items_d_bad"]["valid"] is False
    assert [i["index"] for i in state.indexes(invalid=True)] == ["items_d_bad"]
    assert [i["index"] for i in state.indexes(unused=True)] == ["items_b"]
    assert all(i["stats_age_seconds"] >= 0 for i in got.values())
    # The same verdicts as metrics.
    collector = state.targets["main"].collectors["indexes"]
    families = {m.name: m for m in collector.families(state.latest("main", "indexes"))}
    unused = {s.labels["index"]: s.value for s in families["metricsd_pg_indexes_unused"].samples}
    valid = {s.labels["index"]: s.value for s in families["metricsd_pg_indexes_valid"].samples}
    assert unused["items_b"] == 1.0 and unused["items_a"] == 0.0
    assert valid["items_d_bad"] == 0.0 and valid["items_a"] == 1.0


async def test_bloated_index_is_estimated(pg_database, make_pg_state):
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("""
            CREATE TABLE churn (id int, v int);
            INSERT INTO churn SELECT g, g FROM generate_series(1, 200000) g;
            CREATE INDEX churn_v ON churn (v);
            DELETE FROM churn WHERE id % 20 <> 0;
        """)
        await conn.execute("VACUUM ANALYZE churn")
        await conn.execute("""
            CREATE TABLE fresh (v int);
            INSERT INTO fresh SELECT g FROM generate_series(1, 200000) g;
            CREATE INDEX fresh_v ON fresh (v);
            ANALYZE fresh;
        """)
        size = await conn.fetchval("SELECT pg_relation_size('churn_v')")
    finally:
        await conn.close()
    state = await make_pg_state(pg_database, bloat_min_bytes=100_000)
    assert await state.scrape("main", "indexes") == "ok"
    bloated = {i["index"]: i for i in state.indexes(bloated=True)}
    # 95 % of the rows are gone but VACUUM keeps the pages: most of the index is bloat.
    assert set(bloated) == {"churn_v"}
    assert 0.8 * size <= bloated["churn_v"]["bloat_bytes"] <= size
    assert bloated["churn_v"]["bloat_ratio"] == pytest.approx(
        bloated["churn_v"]["bloat_bytes"] / size)


def test_btree_estimate_is_close_to_a_fresh_index():
    # pg_relation_size of freshly built btrees, measured on PostgreSQL 15.18 (8 kB pages,
    # fillfactor 90): int4 over 200,000 rows, and (bigint, md5 text: avg_width 8 + 33)
    # over 100,000 rows. The estimate must be within 2 % of each.
    assert estimate_btree_pages(200_000, 4, 90, 8192) * 8192 == pytest.approx(
        4_513_792, rel=0.02)
    assert estimate_btree_pages(100_000, 8 + 33, 90, 8192) * 8192 == pytest.approx(
        6_758_400, rel=0.02)
