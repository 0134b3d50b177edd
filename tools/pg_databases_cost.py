"""Cost of `databases:`: one round of tables + indexes over N databases vs one database.

    PYTHONPATH=. .venv/bin/python tools/pg_databases_cost.py [--bindir ...] [--databases 10]

Creates N databases of 20 small tables each on a throwaway cluster, then times ROUNDS
rounds of the tables and indexes jobs of a plain target (the DSN's database only, the
baseline) and of a `databases: auto` target in the same run, interleaved, and prints the
medians, their ratio and the connections metricsd holds (pg_stat_activity).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from metricsd.config import PostgresConfig
from metricsd.postgres.state import PgState
from tests.fixtures.pgcluster import ThrowawayCluster

ROUNDS = 20
TABLES = 20


async def _round(state: PgState) -> float:
    started = time.perf_counter()
    for view in ("tables", "indexes"):
        status = await state.scrape("main", view)
        assert status == "ok", (view, status)
    return time.perf_counter() - started


async def measure(bindir: str | None, databases: int) -> None:
    """Print the median ms per round of both targets and their ratio."""
    with ThrowawayCluster(bindir=bindir) as cluster:
        conn = await asyncpg.connect(cluster.dsn)
        names = [f"d{i:02d}" for i in range(databases)]
        for name in names:
            await conn.execute(f"CREATE DATABASE {name}")
            db = await asyncpg.connect(cluster.dsn.rsplit("/", 1)[0] + f"/{name}")
            for t in range(TABLES):
                await db.execute(f"CREATE TABLE t{t} (id int PRIMARY KEY, v int);"
                                 f" CREATE INDEX t{t}_v ON t{t} (v);"
                                 f" INSERT INTO t{t} SELECT g, g FROM generate_series(1, 100) g")
            await db.execute("ANALYZE")
            await db.close()
        dsn = cluster.dsn.rsplit("/", 1)[0] + f"/{names[0]}"
        plain = PgState(PostgresConfig.model_validate(
            {"targets": [{"name": "main", "dsn": dsn}]}))
        multi = PgState(PostgresConfig.model_validate(
            {"targets": [{"name": "main", "dsn": dsn, "databases": "auto",
                          "include_databases": ["d[0-9]+"]}]}))
        await plain.open()
        await multi.open()
        times: dict[str, list[float]] = {"plain": [], "multi": []}
        for _ in range(ROUNDS):  # interleaved: both see the same machine load
            times["plain"].append(await _round(plain))
            times["multi"].append(await _round(multi))
        held = await conn.fetchval("SELECT count(*) FROM pg_stat_activity"
                                   " WHERE application_name = 'metricsd'")
        print("server", await conn.fetchval("SHOW server_version"),
              f"databases {databases}, {TABLES} tables each")
        plain_ms = statistics.median(times["plain"][1:]) * 1000
        multi_ms = statistics.median(times["multi"][1:]) * 1000
        print(f"  one database   {plain_ms:7.2f} ms per round (tables + indexes)")
        print(f"  {databases} databases  {multi_ms:7.2f} ms per round;"
              f" ratio {multi_ms / plain_ms:.2f}, {multi_ms / plain_ms / databases:.2f}"
              " per database")
        print(f"  connections held by metricsd: {held}")
        await plain.close()
        await multi.close()
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bindir", default=None, help="PostgreSQL server binaries")
    parser.add_argument("--databases", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(measure(args.bindir, args.databases))


if __name__ == "__main__":
    main()
