"""PostgreSQL collectors: cost of a collection round and of a /metrics scrape, at two sizes.

Baselines measured in the same run, on the same throwaway PostgreSQL cluster:
- raw SQL on an open connection: `SELECT * FROM pg_stat_statements` (with text) and the
  per-index statistics join, the least any collector must pay;
- prometheus-postgres-exporter (Debian 0.11) with a hand-written queries file exporting
  the same statements and indexes, scraped over HTTP (it queries at scrape time).
Measured: PgState.scrape_all() (all six collectors, steady state), GET /metrics of the
real app with those families, and metricsd's own load in pg_stat_statements per round.
Run: .venv/bin/python bench/pg_collectors.py [STATEMENTS:INDEXES ...]  (default 2000:200 5000:1000)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metricsd.app import create_app  # noqa: E402
from metricsd.config import load_config  # noqa: E402
from metricsd.postgres import PG_STATE  # noqa: E402
from tests.fixtures.pgcluster import ThrowawayCluster, free_port  # noqa: E402

ROUNDS = 25
INDEXES_PER_TABLE = 4
RAW_STATEMENTS = "SELECT * FROM pg_stat_statements"
RAW_INDEXES = """
SELECT s.*, io.idx_blks_read, io.idx_blks_hit, pg_relation_size(s.indexrelid)
FROM pg_stat_user_indexes s JOIN pg_statio_user_indexes io USING (indexrelid)
"""
EXPORTER_QUERIES = """
pg_stat_statements:
  query: |
    SELECT r.rolname, d.datname, s.queryid::text AS queryid, s.calls,
           s.total_exec_time / 1000 AS total_time_seconds, s.rows,
           s.shared_blks_hit, s.shared_blks_read, s.temp_blks_written
    FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
    JOIN pg_database d ON d.oid = s.dbid
  metrics:
    - rolname: {usage: LABEL, description: role}
    - datname: {usage: LABEL, description: database}
    - queryid: {usage: LABEL, description: query id}
    - calls: {usage: COUNTER, description: calls}
    - total_time_seconds: {usage: COUNTER, description: execution time}
    - rows: {usage: COUNTER, description: rows}
    - shared_blks_hit: {usage: COUNTER, description: buffer hits}
    - shared_blks_read: {usage: COUNTER, description: blocks read}
    - temp_blks_written: {usage: COUNTER, description: temp blocks written}
pg_index_stats:
  query: |
    SELECT s.schemaname, s.relname, s.indexrelname, s.idx_scan, s.idx_tup_read,
           s.idx_tup_fetch, pg_relation_size(s.indexrelid) AS size_bytes,
           i.indisvalid::int AS valid
    FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
  metrics:
    - schemaname: {usage: LABEL, description: schema}
    - relname: {usage: LABEL, description: table}
    - indexrelname: {usage: LABEL, description: index}
    - idx_scan: {usage: COUNTER, description: scans}
    - idx_tup_read: {usage: COUNTER, description: tuples read}
    - idx_tup_fetch: {usage: COUNTER, description: tuples fetched}
    - size_bytes: {usage: GAUGE, description: size}
    - valid: {usage: GAUGE, description: valid}
"""


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


async def populate(dsn: str, statements: int, indexes: int) -> None:
    """Tables with INDEXES_PER_TABLE indexes each, then `statements` distinct shapes."""
    tables = max(1, indexes // INDEXES_PER_TABLE)
    conn = await asyncpg.connect(dsn)
    try:
        for t in range(tables):
            cols = ", ".join(f"c{c} int" for c in range(INDEXES_PER_TABLE))
            await conn.execute(f"CREATE TABLE t{t} (id int, {cols})")
            await conn.execute(f"INSERT INTO t{t} SELECT g, {', '.join(['g'] * INDEXES_PER_TABLE)}"
                               " FROM generate_series(1, 200) g")
            for c in range(INDEXES_PER_TABLE):
                await conn.execute(f"CREATE INDEX t{t}_c{c} ON t{t} (c{c})")
        await conn.execute("ANALYZE")
        per_table = -(-statements // tables)
        n = 0
        for t in range(tables):
            for k in range(per_table):
                if n >= statements:
                    break
                # Distinct shapes: k + 1 summed columns (constants would be normalised away).
                expr = " + ".join(f"c{j % INDEXES_PER_TABLE}" for j in range(k + 1))
                await conn.fetch(f"SELECT id, {expr} AS v FROM t{t} WHERE c0 = $1 AND id > $2",
                                 n % 200, 0)
                n += 1
    finally:
        await conn.close()


async def raw_sql(conn: asyncpg.Connection) -> tuple[float, float]:
    """One timing of each anchor query on an open connection (seconds)."""
    started = time.perf_counter()
    await conn.fetch(RAW_STATEMENTS)
    middle = time.perf_counter()
    await conn.fetch(RAW_INDEXES)
    return middle - started, time.perf_counter() - middle


async def own_load(admin_dsn: str) -> tuple[float, float]:
    """(calls, execution ms) of the metricsd role in pg_stat_statements."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(calls), 0) AS calls, coalesce(sum(total_exec_time), 0) AS ms"
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
            " WHERE r.rolname = 'metricsd'")
        return float(row["calls"]), float(row["ms"])
    finally:
        await conn.close()


async def http_scrapes(url: str, rounds: int = ROUNDS) -> tuple[float, int]:
    times, size = [], 0
    async with aiohttp.ClientSession() as session:
        for _ in range(rounds):
            started = time.perf_counter()
            async with session.get(url) as response:
                body = await response.read()
            times.append(time.perf_counter() - started)
            size = len(body)
    return median_ms(times), size


async def metricsd_side(dsn: str, admin_dsn: str, tmp: Path) -> dict[str, float]:
    config_path = tmp / "metricsd.yml"
    config_path.write_text(
        "postgres:\n  scrape_interval: 1h\n  pool_max_size: 2\n"
        f"  targets:\n    - name: bench\n      dsn: {dsn}\n")
    app = create_app(load_config(config_path, env={}))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        state = app[PG_STATE]
        for _ in range(400):  # the first scheduled round
            if all(h["status"] != "pending" for h in state.health("bench").values()):
                break
            await asyncio.sleep(0.05)
        first_started = time.perf_counter()
        await state.scrape_all()  # texts cached already by the first scheduled round
        first = time.perf_counter() - first_started
        # As another role, so metricsd's own entries in pg_stat_statements stay its own.
        raw_conn = await asyncpg.connect(admin_dsn)
        before_calls, before_ms = await own_load(admin_dsn)
        rounds, raw_stmts, raw_idx = [], [], []
        # Interleaved with the baseline, so machine noise hits both the same way.
        for _ in range(ROUNDS):
            started = time.perf_counter()
            statuses = await state.scrape_all()
            rounds.append(time.perf_counter() - started)
            assert set(statuses.values()) == {"ok"}, statuses
            a, b = await raw_sql(raw_conn)
            raw_stmts.append(a)
            raw_idx.append(b)
        after_calls, after_ms = await own_load(admin_dsn)
        await raw_conn.close()
        own_calls = after_calls - before_calls
        scrape_ms, size = await http_scrapes(f"http://127.0.0.1:{port}/metrics")
        exported = len(state.statements(limit=10_000))
        return {
            "collect_ms": median_ms(rounds), "second_round_ms": first * 1000,
            "metrics_ms": scrape_ms, "metrics_bytes": size,
            "raw_statements_ms": median_ms(raw_stmts), "raw_indexes_ms": median_ms(raw_idx),
            "own_calls": own_calls / ROUNDS,
            "own_ms": (after_ms - before_ms) / ROUNDS, "statements_seen": exported,
        }
    finally:
        await runner.cleanup()


async def exporter_side(dsn: str, tmp: Path) -> tuple[float, int] | None:
    binary = shutil.which("prometheus-postgres-exporter") or shutil.which("postgres_exporter")
    if binary is None:
        return None
    queries = tmp / "queries.yaml"
    queries.write_text(EXPORTER_QUERIES)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        binary, f"--web.listen-address=127.0.0.1:{port}", f"--extend.query-path={queries}",
        env={**os.environ, "DATA_SOURCE_NAME": dsn + "?sslmode=disable"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(100):
            try:
                await http_scrapes(url, rounds=1)
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        return await http_scrapes(url)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def one_size(statements: int, indexes: int) -> None:
    settings = {"pg_stat_statements.max": str(max(5000, statements * 2))}
    with ThrowawayCluster(settings=settings) as cluster, \
            tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        admin = await asyncpg.connect(cluster.dsn)
        await admin.execute("CREATE DATABASE bench")
        await admin.execute("CREATE ROLE metricsd LOGIN; GRANT pg_monitor TO metricsd")
        await admin.close()
        bench_admin = cluster.dsn_for("bench")
        conn = await asyncpg.connect(bench_admin)
        await conn.execute("CREATE EXTENSION pg_stat_statements")
        await conn.close()
        await populate(bench_admin, statements, indexes)
        dsn = cluster.dsn_for("bench", user="metricsd")
        exporter = await exporter_side(dsn, tmp)
        ours = await metricsd_side(dsn, bench_admin, tmp)
    raw_stmts, raw_idx = ours["raw_statements_ms"], ours["raw_indexes_ms"]
    raw = raw_stmts + raw_idx
    print(f"\n{statements} statements, {indexes} indexes (medians of {ROUNDS}):")
    print(f"  raw SQL: statements with text {raw_stmts:.2f} ms, indexes {raw_idx:.2f} ms"
          f" (sum {raw:.2f} ms)")
    print(f"  metricsd, all 6 collectors, one round: {ours['collect_ms']:.2f} ms"
          f" = {ours['collect_ms'] / raw:.2f}x the raw SQL (goal <= 2x)")
    print(f"  metricsd GET /metrics: {ours['metrics_ms']:.2f} ms,"
          f" {ours['metrics_bytes'] / 1e6:.3f} MB")
    if exporter is not None:
        print(f"  prometheus-postgres-exporter GET /metrics: {exporter[0]:.2f} ms,"
              f" {exporter[1] / 1e6:.3f} MB -> metricsd scrape = "
              f"{ours['metrics_ms'] / exporter[0]:.3f}x of it (goal <= 0.5x)")
    else:
        print("  prometheus-postgres-exporter not installed: no exporter baseline")
    print(f"  metricsd's own load per round: {ours['own_calls']:.0f} statements,"
          f" {ours['own_ms']:.2f} ms execution time in pg_stat_statements")


def main(argv: list[str]) -> None:
    sizes = [tuple(int(x) for x in arg.split(":")) for arg in argv] or [(2000, 200), (5000, 1000)]
    print("shared machine (2 cores, other helpers running): expect noise of +-30 %")
    for statements, indexes in sizes:
        asyncio.run(one_size(statements, indexes))


if __name__ == "__main__":
    main(sys.argv[1:])
