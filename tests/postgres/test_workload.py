"""pgbench between two scrapes: the interval's calls are exactly what pgbench ran."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.fixtures.binaries import require_binary
from tests.fixtures.pg import PG_BIN_GLOB

CLIENTS, TRANSACTIONS = 2, 150


@pytest.mark.pg_versions("15", "18")
async def test_pgbench_transactions_are_the_interval_calls(pg_database, make_pg_state):
    pgbench = require_binary("pgbench", PG_BIN_GLOB)

    def bench(*args: str) -> None:
        subprocess.run([pgbench, *args, pg_database], check=True, capture_output=True,
                       timeout=120)

    await asyncio.to_thread(bench, "-i", "-s", "1", "-q")
    state = await make_pg_state(pg_database, top_statements=100)
    assert await state.scrape("main", "statements") == "ok"
    await asyncio.to_thread(bench, "-n", "-c", str(CLIENTS), "-t", str(TRANSACTIONS))
    assert await state.scrape("main", "statements") == "ok"
    db = urlsplit(pg_database).path.lstrip("/")
    data = state.latest("main", "statements").data
    calls = {s.query.split(" SET ")[0]: s.calls for s in data.statements
             if s.datname == db and s.query.startswith("UPDATE pgbench_")}
    # The TPC-B-like script updates accounts, tellers and branches once per transaction.
    assert calls == {"UPDATE pgbench_accounts": CLIENTS * TRANSACTIONS,
                     "UPDATE pgbench_tellers": CLIENTS * TRANSACTIONS,
                     "UPDATE pgbench_branches": CLIENTS * TRANSACTIONS}
    inserts = [s for s in data.statements if s.datname == db
               and s.query.startswith("INSERT INTO pgbench_history")]
    assert [s.calls for s in inserts] == [CLIENTS * TRANSACTIONS]
    assert [s.rows for s in inserts] == [CLIENTS * TRANSACTIONS]


async def test_query_text_is_truncated(pg_database, make_pg_state):
    marker = f"t{uuid.uuid4().hex[:8]}"
    state = await make_pg_state(pg_database, query_text_length=24)
    conn = await asyncpg.connect(pg_database)
    try:
        await state.scrape("main", "statements")
        await conn.fetchval(f"SELECT 1 AS {marker}, 2 AS second_column_here")
        await state.scrape("main", "statements")
    finally:
        await conn.close()
    texts = [s["query"] for s in state.statements(limit=1000) if marker in s["query"]]
    assert texts == [f"SELECT $1 AS {marker}, $2"[:24]]
