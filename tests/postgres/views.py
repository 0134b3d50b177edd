"""Helpers for collector tests: a view's samples by labels, a database name from a DSN."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit


def values(state: Any, collector: str, family: str, target: str = "main"
           ) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted labels without target: value} of one family of the latest snapshot."""
    snapshot = state.latest(target, collector)
    assert snapshot is not None, state.health(target)[collector]
    metrics = state.targets[target].collectors[collector].families(snapshot)
    out = {}
    for metric in metrics:
        if metric.name == family:
            for s in metric.samples:
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "target"))
                out[labels] = s.value
    return out


def value(state: Any, collector: str, family: str, **labels: str) -> float | None:
    """One sample's value (None when absent)."""
    return values(state, collector, family).get(tuple(sorted(labels.items())))


def dbname(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


async def server_version(conn: Any) -> int:
    return int(await conn.fetchval("SELECT current_setting('server_version_num')::int"))


async def flush_stats(conn: Any) -> None:
    """Make this backend's statistics visible now (15+), or wait for the flush (13, 14)."""
    if await server_version(conn) >= 150000:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT 1")  # the flush happens at the end of a transaction
    else:
        await asyncio.sleep(0.7)  # PGSTAT_STAT_INTERVAL is 500 ms before 15
