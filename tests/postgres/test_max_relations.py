"""postgres.max_relations: a database with more tables and indexes than the cap exports the
largest ones and counts the rest, so /metrics stays bounded however many relations exist."""

from __future__ import annotations

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app
from metricsd.postgres import PG_STATE
from tests.fixtures.pg import flush_stats

TABLES = 30
CAP = 7


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name]


async def test_largest_relations_kept_rest_counted(pg_database, make_config, aiohttp_client):
    conn = await asyncpg.connect(pg_database)
    try:
        # Table t<i> holds i * 200 rows: sizes grow with i (whole pages apart), and each
        # table has one index whose size grows the same way.
        for i in range(1, TABLES + 1):
            await conn.execute(
                f"CREATE TABLE t{i:02d} (id int PRIMARY KEY, pad text);"
                f"INSERT INTO t{i:02d} SELECT g, repeat('x', 100)"
                f" FROM generate_series(1, {i * 200}) g")
        await conn.execute("ANALYZE")
        await flush_stats(conn)
        present = await conn.fetchval("SELECT count(*) FROM pg_stat_user_tables")
        indexes = await conn.fetchval("SELECT count(*) FROM pg_stat_user_indexes")
    finally:
        await conn.close()
    config = make_config({"postgres": {"scrape_interval": "1h", "max_relations": CAP,
                                       "targets": [{"name": "main", "dsn": pg_database}]}})
    client = await aiohttp_client(create_app(config))
    state = client.app[PG_STATE]
    assert await state.scrape("main", "tables") == "ok"
    assert await state.scrape("main", "indexes") == "ok"
    text = await (await client.get("/metrics")).text()

    sizes = _samples(text, "metricsd_pg_tables_size_bytes")
    kept = sorted(labels["table"] for labels, _ in sizes)
    assert kept == [f"t{i:02d}" for i in range(TABLES - CAP + 1, TABLES + 1)]
    [(_, omitted)] = _samples(text, "metricsd_pg_tables_omitted")
    assert omitted == present - CAP
    index_sizes = _samples(text, "metricsd_pg_indexes_size_bytes")
    assert sorted(labels["index"] for labels, _ in index_sizes) == [
        f"t{i:02d}_pkey" for i in range(TABLES - CAP + 1, TABLES + 1)]
    [(_, omitted_indexes)] = _samples(text, "metricsd_pg_indexes_omitted")
    assert omitted_indexes == indexes - CAP
    # Every family of the views is bounded by the cap, not only the size.
    for name in ("metricsd_pg_tables_live_tuples", "metricsd_pg_tables_missing_index",
                 "metricsd_pg_indexes_scans_total", "metricsd_pg_indexes_unused"):
        assert len(_samples(text, name)) == CAP, name


async def test_under_the_cap_nothing_is_omitted(pg_database, make_pg_state):
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("CREATE TABLE one (id int PRIMARY KEY)")
        await flush_stats(conn)
    finally:
        await conn.close()
    state = await make_pg_state(pg_database)
    assert await state.scrape("main", "tables") == "ok"
    assert await state.scrape("main", "indexes") == "ok"
    assert state.latest("main", "tables").data.omitted == 0
    assert state.latest("main", "indexes").data.omitted == 0
    assert [t.table for t in state.latest("main", "tables").data.tables] == ["one"]
