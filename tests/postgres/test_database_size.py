"""database_size: pg_database_size per database, growing with the data the test writes."""

from __future__ import annotations

import asyncpg

from tests.postgres.views import dbname, value, values

SIZE_SQL = "SELECT pg_database_size($1)"


async def test_size_follows_written_data(pg_database, make_pg_state):
    db = dbname(pg_database)
    now = [1000.0]
    state = await make_pg_state(pg_database, clock=lambda: now[0])
    conn = await asyncpg.connect(pg_database)
    try:
        assert await state.scrape("main", "database_size") == "ok"
        empty = value(state, "database_size", "metricsd_pg_database_size_bytes", datname=db)
        assert empty == await conn.fetchval(SIZE_SQL, db)
        # template0 refuses connections, so it has no size series; the others do.
        names = {dict(k)["datname"] for k in values(
            state, "database_size", "metricsd_pg_database_size_bytes")}
        assert {"postgres", "template1", db} <= names and "template0" not in names
        await conn.execute("""
            CREATE TABLE blob (id int, pad text);
            INSERT INTO blob SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 40000) g;
        """)
        table = await conn.fetchval("SELECT pg_total_relation_size('blob')")
        assert table > 8_000_000
        # Within the refresh interval the previous reading is served...
        now[0] += 30
        assert await state.scrape("main", "database_size") == "ok"
        assert value(state, "database_size", "metricsd_pg_database_size_bytes",
                     datname=db) == empty
        # ...and after it the size is read again.
        now[0] += 31
        assert await state.scrape("main", "database_size") == "ok"
        grown = value(state, "database_size", "metricsd_pg_database_size_bytes", datname=db)
        assert grown == await conn.fetchval(SIZE_SQL, db)
        assert grown - empty >= table
    finally:
        await conn.close()
