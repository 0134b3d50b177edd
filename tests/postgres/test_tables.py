"""tables: a large table read by sequential scans is a missing-index candidate."""

from __future__ import annotations

import asyncpg

from metricsd.postgres.tables import is_missing_index_candidate
from tests.fixtures.pg import flush_stats


async def test_sequential_scan_heavy_table_is_a_candidate(pg_database, make_pg_state):
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("""
            CREATE TABLE orders (id int PRIMARY KEY, customer int, total int)
              WITH (autovacuum_enabled = off);
            INSERT INTO orders SELECT g, g % 5000, g FROM generate_series(1, 20000) g;
            CREATE TABLE small (id int, v int) WITH (autovacuum_enabled = off);
            INSERT INTO small SELECT g, g FROM generate_series(1, 50) g;
            CREATE TABLE looked_up (id int PRIMARY KEY, v int);
            INSERT INTO looked_up SELECT g, g FROM generate_series(1, 20000) g;
            ANALYZE;
        """)
        await flush_stats(conn)
        # Building the primary key scanned the (empty) heap once: take the test's baseline,
        # and metricsd's (verdicts are judged on the scans since).
        before = await conn.fetchrow(
            "SELECT seq_scan, seq_tup_read FROM pg_stat_user_tables WHERE relname = 'orders'")
        state = await make_pg_state(pg_database, missing_index_min_rows=10_000)
        assert await state.scrape("main", "tables") == "ok"
        assert state.missing_indexes() == []
        for customer in range(5):  # no index on customer: five full scans
            await conn.fetch("SELECT * FROM orders WHERE customer = $1", customer)
        for v in range(5):  # tiny: a sequential scan is the right plan
            await conn.fetch("SELECT * FROM small WHERE v = $1", v)
        await conn.execute("SET enable_seqscan = off")
        for key in range(20):
            await conn.fetch("SELECT * FROM looked_up WHERE id = $1", key)
        await flush_stats(conn)
    finally:
        await conn.close()
    assert await state.scrape("main", "tables") == "ok"
    candidates = state.missing_indexes()
    assert [t["table"] for t in candidates] == ["orders"]
    orders = candidates[0]
    assert orders["seq_scans"] - before["seq_scan"] == 5
    assert orders["seq_tuples_read"] - before["seq_tup_read"] == 5 * 20_000
    assert orders["live_tuples"] == 20_000
    tables = {t.table: t for t in state.latest("main", "tables").data.tables}
    assert tables["looked_up"].index_scans == 20 and not tables["looked_up"].missing_index
    assert tables["small"].seq_scans >= 5 and not tables["small"].missing_index
    assert tables["orders"].last_analyze is not None


def test_candidate_rule():
    assert is_missing_index_candidate(50_000, 10, 500_000, 2, 10_000)
    assert not is_missing_index_candidate(5_000, 10, 50_000, 2, 10_000)  # small
    assert not is_missing_index_candidate(50_000, 10, 500_000, 20, 10_000)  # mostly index
    assert not is_missing_index_candidate(50_000, 3, 0, 0, 10_000)  # scans read nothing


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_old_sequential_scans_stop_counting(pg_database, make_pg_state):
    """One burst of full scans flags a table for a window, not for good."""
    conn = await asyncpg.connect(pg_database)
    clock = Clock()
    state = await make_pg_state(pg_database, clock=clock, missing_index_min_rows=10_000)
    try:
        await conn.execute("""
            CREATE TABLE audit (id int, who int) WITH (autovacuum_enabled = off);
            INSERT INTO audit SELECT g, g % 7 FROM generate_series(1, 20000) g;
            ANALYZE audit;
        """)
        await flush_stats(conn)
        assert await state.scrape("main", "tables") == "ok"
        for who in range(3):
            await conn.fetch("SELECT * FROM audit WHERE who = $1", who)
        await flush_stats(conn)
        verdicts = []
        for _ in range(6):  # 0, 20, 40, 60, 80, 100 minutes later, no more scans
            clock.now += 20 * 60
            assert await state.scrape("main", "tables") == "ok"
            verdicts.append([t["table"] for t in state.missing_indexes()])
    finally:
        await conn.close()
    # Flagged while the burst is inside the window, then no longer.
    assert verdicts[0] == ["audit"]
    assert verdicts[-1] == []
