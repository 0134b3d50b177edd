"""Cumulative statement counters: monotonic across a reset, an eviction storm and restarts,
and increase() in a real Prometheus equals the work the test ran.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from metricsd.postgres.statement_counters import StatementCounters
from tests.fixtures.pg import run_sql

CALLS = "metricsd_pg_stat_statements_calls_total"


def _calls(text: str, queryid: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == CALLS and s.labels.get("queryid") == queryid:
                return s.value
    return None


def _value(text: str, name: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                return s.value
    return None


async def _run(dsn: str, sql: str, times: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for i in range(times):
            await conn.fetchval(sql, 100 + i)
    finally:
        await conn.close()


async def _storm(dsn: str, shapes: int) -> None:
    """`shapes` distinct statements, far more than pg_stat_statements.max = 100."""
    conn = await asyncpg.connect(dsn)
    try:
        for n in range(shapes):
            await conn.fetchval("SELECT " + " + ".join(["$1::int"] * (n + 1)), n)
    finally:
        await conn.close()


@pytest.mark.pg_versions("15", "18")
async def test_counters_survive_reset_evictions_restarts_in_prometheus(
        make_cluster, make_config, serve_metricsd, make_prometheus):
    cluster = make_cluster(settings={"pg_stat_statements.max": "100"})
    run_sql(cluster.dsn, "CREATE EXTENSION pg_stat_statements")
    config = make_config({"postgres": {
        "scrape_interval": "1s", "top_statements": 10, "connect_timeout": "2s",
        "collectors": {"indexes": False, "tables": False},
        "targets": [{"name": "main", "dsn": cluster.dsn}]}})
    address = await serve_metricsd(config)
    prometheus = await make_prometheus([address])
    marker = f"c{uuid.uuid4().hex[:8]}"
    work_sql = f"SELECT count(*) AS {marker} FROM generate_series(1, $1::int)"
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def metrics() -> str:
        async with session.get(f"http://{address}/metrics") as resp:
            return await resp.text()

    # metricsd's baseline first, so the statement's first call falls in an interval.
    for _ in range(100):
        if _value(await metrics(), "metricsd_pg_statements_tracked") is not None:
            break
        await asyncio.sleep(0.1)
    await _run(cluster.dsn, work_sql, 1)  # its first interval goes to `other`
    queryid = str(run_sql(cluster.dsn, "SELECT queryid FROM pg_stat_statements WHERE query"
                                       f" LIKE '%{marker}%'")[0][0][0])

    async def until_calls(expected: float, within_s: float = 15.0) -> str:
        seen: list[float | None] = []
        for _ in range(int(within_s / 0.2)):
            text = await metrics()
            seen.append(_calls(text, queryid))
            if seen[-1] == expected:
                return text
            await asyncio.sleep(0.2)
        async with session.get(f"http://{address}/readyz") as resp:
            ready = await resp.text()
        raise AssertionError(f"calls never reached {expected}: {seen[-10:]}; {ready}")

    selector = f'{CALLS}{{queryid="{queryid}"}}'
    try:
        await until_calls(0.0)
        # Prometheus must have the series at 0 before the work (its first scrape comes a
        # few seconds after start).
        await prometheus.wait_for(selector, lambda r: bool(r), within_s=30)
        done = 0
        # 1. Plain work.
        await _run(cluster.dsn, work_sql, 7)
        done += 7
        await until_calls(done)
        # 2. pg_stat_statements_reset(): the lifetime values drop, ours must not.
        run_sql(cluster.dsn, "SELECT pg_stat_statements_reset()")
        await _run(cluster.dsn, work_sql, 5)
        done += 5
        await until_calls(done)
        # 3. An eviction storm between two scrapes.
        await _run(cluster.dsn, work_sql, 6)
        await _storm(cluster.dsn, 300)
        done += 6
        text = await until_calls(done)
        # The calls may be seen by a scrape in the middle of the storm; the evictions are
        # all counted by the first scrape after it.
        for _ in range(50):
            if (_value(text, "metricsd_pg_stat_statements_evicted_total") or 0) > 100:
                break
            await asyncio.sleep(0.2)
            text = await metrics()
        assert (_value(text, "metricsd_pg_stat_statements_evicted_total") or 0) > 100
        assert _calls(text, queryid) == done
        assert (_value(text, "metricsd_pg_statements_dealloc_total") or 0) >= 10
        # 4. A clean restart (pg_stat_statements saves its entries).
        await asyncio.to_thread(cluster.restart)
        await _run(cluster.dsn, work_sql, 4)
        done += 4
        await until_calls(done, within_s=20)
        # 5. A crash (entries lost, stats_reset moves).
        await asyncio.to_thread(cluster.stop, "immediate")
        await asyncio.to_thread(cluster.start)
        await _run(cluster.dsn, work_sql, 3)
        done += 3
        await until_calls(done, within_s=20)
    finally:
        await session.close()
    result = await prometheus.wait_for(selector, lambda r: bool(r) and float(
        r[0]["value"][1]) == done, within_s=15)
    last_sample_at = float(result[0]["value"][0])
    # Scraped samples only (no lookback): the series' own timestamps.
    samples = await prometheus.api("query", query=f"{selector}[10m]", time=f"{last_sample_at}")
    assert len(samples["result"]) == 1, [r["metric"] for r in samples["result"]]
    points = samples["result"][0]["values"]
    values = [float(v) for _, v in points]
    assert values == sorted(values), "went backwards"
    assert values[0] == 0.0 and values[-1] == done, points
    at = f"{float(points[-1][0]):.3f}"
    # At the last sample's time and from a first sample of 0, increase() extrapolates
    # nothing: it is exactly the work done.
    increase = await prometheus.api("query", query=f"increase({selector}[10m])", time=at)
    assert float(increase["result"][0]["value"][1]) == pytest.approx(done, abs=1e-9)
    resets = await prometheus.api("query", query=f"max(resets({CALLS}[10m]))", time=at)
    assert float(resets["result"][0]["value"][1]) == 0


def test_other_bucket_keeps_totals_and_series_are_bounded():
    """Whatever enters, leaves and returns: exported + retired + other = every delta."""
    counters = StatementCounters([0, 1], top_k=2)
    keys = [(1, 1, q, True) for q in range(6)]
    total = [0.0, 0.0]
    rounds = [({keys[0], keys[1]}, {keys[0]: (3, 1.5), keys[1]: (2, 1.0), keys[2]: (9, 0.1)}),
              ({keys[0], keys[2]}, {keys[0]: (1, 0.5), keys[2]: (4, 4.0), keys[3]: (1, 0.0)}),
              ({keys[1], keys[2]}, {keys[1]: (5, 2.0), keys[2]: (1, 1.0)}),
              ({keys[0], keys[1]}, {keys[0]: (2, 0.2), keys[5]: (7, 0.7)})]
    seen: dict[tuple, list[float]] = {}
    for exported, deltas in rounds:
        counters.add(deltas, exported)
        for d in deltas.values():
            total = [t + v for t, v in zip(total, d, strict=True)]
        assert counters.total() == pytest.approx(total)
        rows = counters.rows({})
        assert len(rows) == 3  # two exported + other
        for row in rows:
            before = seen.get((row.queryid,), [0.0, 0.0])
            assert all(a >= b for a, b in zip(row.values, before, strict=True)), row
            seen[(row.queryid,)] = list(row.values)
    # keys[0]: entered in round 1 (that delta to other), counted round 2, left in round 3,
    # came back in round 4 where it stopped (that round's delta to other again).
    assert seen[("0",)] == [1, 0.5]


async def test_counters_monotonic_across_a_reset_and_own_statements_left_out(
        pg_database, make_pg_state):
    state = await make_pg_state(pg_database, top_statements=50)
    marker = f"r{uuid.uuid4().hex[:8]}"
    sql = f"SELECT count(*) AS {marker} FROM generate_series(1, $1::int)"

    def calls() -> float | None:
        data = state.latest("main", "statements").data
        rows = [r for r in data.counters if marker in state.targets["main"].collectors[
            "statements"]._texts.get(_key(state, r), "")]
        return rows[0].values[0] if rows else None

    await state.scrape("main", "statements")
    await _run(pg_database, sql, 1)
    await state.scrape("main", "statements")
    assert calls() == 0  # entering: the first interval went to `other`
    await _run(pg_database, sql, 8)
    await state.scrape("main", "statements")
    assert calls() == 8
    run_sql(pg_database, "SELECT pg_stat_statements_reset()")
    await _run(pg_database, sql, 3)
    assert await state.scrape("main", "statements") == "ok"
    assert calls() == 11
    data = state.latest("main", "statements").data
    assert data.own > 0
    assert not [s for s in data.statements if "pg_stat_statements(false)" in s.query]
    families = {m.name for m in state.targets["main"].collectors["statements"].families(
        state.latest("main", "statements")) if m.samples}
    assert "metricsd_pg_stat_statements_wal_bytes" in families
    version = tuple(int(p) for p in data.extension_version.split("."))
    assert ("metricsd_pg_stat_statements_jit_seconds" in families) == (version >= (1, 10))
    assert ("metricsd_pg_stat_statements_block_read_seconds" in families) == (
        data.track_io_timing)


def _key(state, row) -> tuple:
    collector = state.targets["main"].collectors["statements"]
    for key in collector._counters.values:
        if str(key[2]) == row.queryid:
            return key
    return ()
