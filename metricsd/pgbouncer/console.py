"""PgBouncer's admin console: SHOW commands over the simple query protocol.

The console (the `pgbouncer` pseudo-database) answers only the simple query protocol;
asyncpg always parses and binds (extended protocol) when it returns rows, so it cannot
read it. psycopg 3 sends a statement without parameters as one simple `Query` message,
and with `prepare_threshold=None` it never prepares: that is all the console needs.
"""

from __future__ import annotations

from typing import Any

import psycopg

SHOW_COMMANDS = ("POOLS", "STATS", "DATABASES", "CONFIG")


async def connect(dsn: str, timeout_s: float) -> psycopg.AsyncConnection[Any]:
    """A console connection; autocommit, because the console knows no BEGIN."""
    return await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, prepare_threshold=None,
        connect_timeout=max(1, round(timeout_s)), application_name="metricsd")


async def show(conn: psycopg.AsyncConnection[Any], what: str) -> list[dict[str, Any]]:
    """Rows of `SHOW <what>` as dicts (columns vary between PgBouncer versions)."""
    if what not in SHOW_COMMANDS:
        raise ValueError(f"unknown SHOW command {what!r}")
    cursor = await conn.execute(f"SHOW {what}")
    if cursor.description is None:
        return []
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
