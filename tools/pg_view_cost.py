"""Wall time per PostgreSQL view per round (metricsd's own load), on a throwaway cluster.

    PYTHONPATH=. .venv/bin/python tools/pg_view_cost.py [--bindir /usr/lib/postgresql/15/bin]

Creates 200 small tables and 20 extra databases, runs 30 rounds of every collector and
prints the median duration of each (the first round, which prepares statements, is left
out). Wall time includes acquiring a pooled connection; on a loaded machine it is an
upper bound of the server's work.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

import asyncpg

from metricsd.config import PostgresConfig
from metricsd.postgres.state import PgState
from tests.fixtures.pgcluster import ThrowawayCluster

ROUNDS = 30


async def measure(bindir: str | None) -> None:
    """Print the median ms per collector over ROUNDS rounds."""
    with ThrowawayCluster(bindir=bindir) as cluster:
        conn = await asyncpg.connect(cluster.dsn)
        await conn.execute("CREATE EXTENSION pg_stat_statements")
        for i in range(200):
            await conn.execute(f"CREATE TABLE t{i} (id int PRIMARY KEY, v int);"
                               f" INSERT INTO t{i} SELECT g, g FROM generate_series(1, 100) g")
        for i in range(20):
            await conn.execute(f"CREATE DATABASE d{i}")
        config = PostgresConfig.model_validate(
            {"targets": [{"name": "main", "dsn": cluster.dsn}]})
        state = PgState(config)
        await state.open()
        durations: dict[str, list[float]] = {}
        for _ in range(ROUNDS):
            await state.scrape_all()
            for name, health in state.health("main").items():
                durations.setdefault(name, []).append(health["duration_seconds"])
        print("server", await conn.fetchval("SHOW server_version"))
        for name, values in durations.items():
            print(f"  {name:14s} {statistics.median(values[1:]) * 1000:7.2f} ms"
                  f"  {state.health('main')[name]['status']}")
        await state.close()
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bindir", default=None, help="PostgreSQL server binaries")
    asyncio.run(measure(parser.parse_args().bindir))


if __name__ == "__main__":
    main()
