"""statements: per-interval deltas match the workload, slow flag, resets, evictions, top K."""

from __future__ import annotations

import logging
import math
import statistics
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from metricsd.config import PostgresConfig
from metricsd.postgres.statements import (
    CALLS,
    MAX,
    ROWS,
    STDDEV,
    TOTAL,
    StatementsCollector,
    StatementsData,
    _interval_sum_squares,
    counters_sql,
    hysteresis_top,
)

SLEEP_TOLERANCE_S = 0.03  # pg_sleep overshoots by scheduler noise on a shared machine


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _dbname(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def _mine(data: StatementsData, dsn: str, marker: str) -> dict[str, object]:
    """Statements of the test's database whose text carries the marker, by text."""
    db = _dbname(dsn)
    return {s.query: s for s in data.statements if s.datname == db and marker in s.query}


async def test_interval_deltas_match_workload_and_slow_flag(pg_database, make_pg_state):
    clock = FakeClock()
    state = await make_pg_state(pg_database, clock=clock, slow_query_ms=100)
    marker = f"m{uuid.uuid4().hex[:8]}"
    fast_sql = f"SELECT $1::int + 1 AS {marker}"
    slow_sql = f"SELECT pg_sleep($1) AS {marker}"
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.fetch(slow_sql, 0.05)  # lifetime history before the interval
        for i in range(3):
            await conn.fetchval(fast_sql, i)
        assert await state.scrape("main", "statements") == "ok"
        clock.now += 15.0
        sleeps = [0.15, 0.15, 0.25]
        for seconds in sleeps:
            await conn.fetch(slow_sql, seconds)
        for i in range(7):
            await conn.fetchval(fast_sql, i)
        assert await state.scrape("main", "statements") == "ok"
    finally:
        await conn.close()
    data = state.latest("main", "statements").data
    assert data.interval_s == pytest.approx(15.0)
    mine = _mine(data, pg_database, marker)
    fast = next(s for q, s in mine.items() if "pg_sleep" not in q)
    slow = next(s for q, s in mine.items() if "pg_sleep" in q)
    assert fast.calls == 7 and fast.rows == 7
    assert not fast.slow
    assert slow.calls == 3
    assert slow.mean_s == pytest.approx(statistics.fmean(sleeps), abs=SLEEP_TOLERANCE_S)
    assert slow.time_s == pytest.approx(sum(sleeps), abs=3 * SLEEP_TOLERANCE_S)
    # Rebuilt from lifetime calls/mean/stddev: only the interval's three sleeps count.
    assert slow.stddev_s == pytest.approx(statistics.pstdev(sleeps), abs=SLEEP_TOLERANCE_S)
    assert slow.max_s == pytest.approx(max(sleeps), abs=SLEEP_TOLERANCE_S)
    assert slow.slow
    assert "pg_sleep" in slow.query and marker in slow.query
    # The API view agrees and filters on the flag.
    slow_rows = state.statements(slow_only=True, limit=1000)
    assert [r["queryid"] for r in slow_rows if marker in r["query"]] == [slow.queryid]


async def test_first_scrape_is_a_baseline(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    assert await state.scrape("main", "statements") == "ok"
    data = state.latest("main", "statements").data
    assert data.interval_s is None and data.statements == ()
    assert data.tracked > 0


async def test_reset_between_scrapes_never_negative_or_huge(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    marker = f"r{uuid.uuid4().hex[:8]}"
    sql = f"SELECT $1::int AS {marker}"
    conn = await asyncpg.connect(pg_database)
    try:
        for i in range(50):
            await conn.fetchval(sql, i)
        await state.scrape("main", "statements")
        await conn.fetchval(sql, 1)
        await state.scrape("main", "statements")
        before = state.latest("main", "statements").data
        await conn.execute("SELECT pg_stat_statements_reset()")
        for i in range(2):
            await conn.fetchval(sql, i)
        assert await state.scrape("main", "statements") == "ok"
    finally:
        await conn.close()
    data = state.latest("main", "statements").data
    assert data.reset_in_interval
    assert data.resets_total == before.resets_total + 1
    mine = _mine(data, pg_database, marker)
    assert [s.calls for s in mine.values()] == [2]
    for s in (*data.statements, data.other):
        assert 0 <= s.calls < 1000, s
        assert 0.0 <= s.time_s < 60.0, s
        assert s.rows >= 0 and s.shared_hit_bytes >= 0 and s.shared_read_bytes >= 0, s


async def test_top_k_with_other_remainder_keeps_totals(pg_database, make_pg_state):
    state = await make_pg_state(pg_database, top_statements=2, export_query_text=True)
    marker = f"k{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(pg_database)
    try:
        await state.scrape("main", "statements")
        # Six distinct statements (different shapes), i + 1 calls each.
        statements = [f"SELECT {' + '.join(['$1::int'] * (n + 1))} AS {marker}" for n in range(6)]
        for n, sql in enumerate(statements):
            for _ in range(n + 1):
                await conn.fetchval(sql, 1)
        await state.scrape("main", "statements")
    finally:
        await conn.close()
    data = state.latest("main", "statements").data
    exported = [s for s in data.statements if s.exported]
    assert len(exported) == 2
    mine = _mine(data, pg_database, marker)
    assert sorted(s.calls for s in mine.values()) == [1, 2, 3, 4, 5, 6]
    hidden_mine = sum(s.calls for s in mine.values() if not s.exported)
    assert data.other.calls >= hidden_mine
    # Exported + other == every statement of the interval, so sums over series are exact.
    assert sum(s.calls for s in exported) + data.other.calls == sum(
        s.calls for s in data.statements)
    assert math.isclose(sum(s.time_s for s in exported) + data.other.time_s,
                        sum(s.time_s for s in data.statements), rel_tol=1e-9)
    # Only exported statements and the remainder become series.
    families = {m.name: m for m in state.targets["main"].collectors["statements"].families(
        state.latest("main", "statements"))}
    queryids = {s.labels["queryid"] for s in families["metricsd_pg_statements_calls"].samples}
    assert queryids == {s.queryid for s in exported} | {"other"}
    texts = {s.labels["queryid"]: s.labels["query"]
             for s in families["metricsd_pg_statements_query_info"].samples}
    assert texts == {s.queryid: " ".join(s.query.split())[:200] for s in exported}
    assert all(texts.values())
    # Query text is sensitive: without postgres.export_query_text it is not exported.
    private = StatementsCollector("main", PostgresConfig(top_statements=2))
    families = {m.name: m for m in private.families(state.latest("main", "statements"))}
    assert families["metricsd_pg_statements_query_info"].samples == []
    assert families["metricsd_pg_statements_calls"].samples


def test_hysteresis_keeps_incumbents_near_the_top():
    a, b, c = (1, 1, 1, True), (1, 1, 2, True), (1, 1, 3, True)
    # b slightly ahead of incumbent a: a keeps its series.
    assert hysteresis_top([(b, 10.5), (a, 10.0)], {a}, k=1) == {a}
    # c far ahead: it displaces a at once.
    assert hysteresis_top([(c, 50.0), (a, 10.0)], {a}, k=1) == {c}
    # a free slot is filled by the best newcomer.
    assert hysteresis_top([(b, 3.0), (c, 2.0), (a, 1.9)], {a}, k=2) == {a, b}
    # an incumbent that fell far down the ranking leaves.
    ranked = [((2, 2, i, True), 100.0 - i) for i in range(10)] + [(a, 0.5)]
    assert a not in hysteresis_top(ranked, {a}, k=2)
    # newcomers with no time never take a slot.
    assert hysteresis_top([(a, 0.0)], set(), k=3) == set()


def test_interval_stddev_rebuilt_from_lifetime_moments():
    before_samples = [0.05, 0.06]
    interval_samples = [0.15, 0.15, 0.25]
    both = before_samples + interval_samples

    def row(samples):
        r = [0.0] * 10
        r[CALLS], r[TOTAL] = len(samples), sum(samples)
        r[STDDEV], r[MAX], r[ROWS] = statistics.pstdev(samples), max(samples), 0
        return tuple(r)

    sumsq = _interval_sum_squares(row(both), row(before_samples))
    n, mean = len(interval_samples), statistics.fmean(interval_samples)
    assert math.sqrt(sumsq / n - mean * mean) == pytest.approx(
        statistics.pstdev(interval_samples), rel=1e-9)


def test_columns_follow_extension_version():
    assert "total_time" in counters_sql("1.7") and "true AS toplevel" in counters_sql("1.7")
    assert "total_exec_time" in counters_sql("1.8") and "true AS toplevel" in counters_sql("1.8")
    assert "toplevel AS toplevel" in counters_sql("1.10")
    assert "blk_read_time" in counters_sql("1.10")
    assert "shared_blk_read_time" in counters_sql("1.11")


async def test_evictions_are_counted_and_warned_once(make_cluster, make_pg_state, caplog):
    cluster = make_cluster(settings={"pg_stat_statements.max": "100"})
    from tests.fixtures.pg import run_sql

    run_sql(cluster.dsn, "CREATE EXTENSION pg_stat_statements")
    state = await make_pg_state(cluster.dsn)
    conn = await asyncpg.connect(cluster.dsn)
    try:
        await state.scrape("main", "statements")
        caplog.set_level(logging.WARNING, logger="metricsd.postgres.statements")
        for round_ in range(2):
            for n in range(150):  # 150 distinct shapes > pg_stat_statements.max = 100
                await conn.fetchval("SELECT " + " + ".join(["$1::int"] * (n + 1)), round_)
            assert await state.scrape("main", "statements") == "ok"
    finally:
        await conn.close()
    data = state.latest("main", "statements").data
    assert data.max_entries == 100
    assert data.tracked <= 100
    if data.extension_version == "1.8":  # PostgreSQL 13: no pg_stat_statements_info
        assert data.dealloc_total is None
        families = {m.name: m for m in state.targets["main"].collectors["statements"].families(
            state.latest("main", "statements"))}
        assert families["metricsd_pg_statements_dealloc"].samples == []
        return
    # dealloc counts eviction runs, each dropping max(10, 5 %) entries: at least
    # (2 x 150 - 100) / 10 runs were needed.
    assert data.dealloc_total >= 20
    assert data.tracked <= 100
    warnings = [r for r in caplog.records if "eviction rounds" in r.getMessage()]
    assert len(warnings) == 1
