"""pg_stat_database: the cache hit ratio over the interval (not since boot), and counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from metricsd.config import PostgresConfig
from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

DATABASE_SQL = """
SELECT datname, xact_commit, xact_rollback, deadlocks, temp_bytes, blks_hit, blks_read
FROM pg_stat_database WHERE datname IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class Database:
    """One database's counters and its cache hit ratio over the interval."""

    datname: str
    commits: int
    rollbacks: int
    deadlocks: int
    temp_bytes: int
    hit_bytes: int  # cumulative, like the other counters
    read_bytes: int
    interval_accesses: int  # blocks hit + read in the interval
    cache_hit_ratio: float | None  # None: first scrape, a reset, or nothing read

    def as_dict(self) -> dict[str, Any]:
        return {
            "datname": self.datname, "commits": self.commits, "rollbacks": self.rollbacks,
            "deadlocks": self.deadlocks, "temp_bytes": self.temp_bytes,
            "hit_bytes": self.hit_bytes, "read_bytes": self.read_bytes,
            "cache_hit_ratio": self.cache_hit_ratio,
        }


@dataclass(frozen=True)
class DatabaseData:
    databases: tuple[Database, ...]
    interval_s: float | None

    def cache_hit_ratio(self) -> float | None:
        """All databases together over the interval (hits / accesses, weighted)."""
        hits = accesses = 0.0
        for d in self.databases:
            if d.cache_hit_ratio is not None:
                hits += d.cache_hit_ratio * d.interval_accesses
                accesses += d.interval_accesses
        return hits / accesses if accesses else None


def interval_ratio(hit: int, read: int, before: tuple[int, int] | None) -> float | None:
    """hits / (hits + reads) between two readings; None when unknown or nothing happened."""
    if before is None:
        return None
    d_hit, d_read = hit - before[0], read - before[1]
    if d_hit < 0 or d_read < 0 or d_hit + d_read == 0:
        return None
    return d_hit / (d_hit + d_read)


@register
class DatabaseCollector(PgCollector):
    """Per-database transaction and block counters (the whole server)."""

    name = "database"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_database_cache_hit_ratio", "gauge",
             "Buffer hits / accesses over the interval", "datname"),
        spec("metricsd_pg_database_commits", "counter", "Transactions committed", "datname"),
        spec("metricsd_pg_database_rollbacks", "counter", "Transactions rolled back", "datname"),
        spec("metricsd_pg_database_deadlocks", "counter", "Deadlocks detected", "datname"),
        spec("metricsd_pg_database_temp_bytes", "counter", "Bytes written to temp files",
             "datname"),
        spec("metricsd_pg_database_blocks_hit_bytes", "counter", "Buffer hits, bytes",
             "datname"),
        spec("metricsd_pg_database_blocks_read_bytes", "counter", "Blocks read, bytes",
             "datname"),
    )

    def __init__(self, target: str, config: PostgresConfig) -> None:
        super().__init__(target, config)
        self._prev: dict[str, tuple[int, int]] | None = None
        self._prev_time = 0.0

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        rows = await conn.fetch(DATABASE_SQL)
        prev = self._prev or {}
        interval = now - self._prev_time if self._prev is not None else None
        out = []
        current: dict[str, tuple[int, int]] = {}
        for r in rows:
            hit, read = int(r["blks_hit"]), int(r["blks_read"])
            current[r["datname"]] = (hit, read)
            before = prev.get(r["datname"]) if self._prev is not None else None
            ratio = interval_ratio(hit, read, before)
            accesses = hit + read - before[0] - before[1] if before and ratio is not None else 0
            out.append(Database(
                datname=r["datname"], commits=int(r["xact_commit"]),
                rollbacks=int(r["xact_rollback"]), deadlocks=int(r["deadlocks"]),
                temp_bytes=int(r["temp_bytes"]), hit_bytes=hit * info.block_size,
                read_bytes=read * info.block_size, interval_accesses=accesses,
                cache_hit_ratio=ratio,
            ))
        self._prev, self._prev_time = current, now
        out.sort(key=lambda d: d.datname)
        return self.snapshot(now, DatabaseData(tuple(out), interval))

    def fill(self, out: FamilyBuilder, data: DatabaseData) -> None:
        for d in data.databases:
            out.add("metricsd_pg_database_cache_hit_ratio", d.cache_hit_ratio, datname=d.datname)
            out.add("metricsd_pg_database_commits", d.commits, datname=d.datname)
            out.add("metricsd_pg_database_rollbacks", d.rollbacks, datname=d.datname)
            out.add("metricsd_pg_database_deadlocks", d.deadlocks, datname=d.datname)
            out.add("metricsd_pg_database_temp_bytes", d.temp_bytes, datname=d.datname)
            out.add("metricsd_pg_database_blocks_hit_bytes", d.hit_bytes, datname=d.datname)
            out.add("metricsd_pg_database_blocks_read_bytes", d.read_bytes, datname=d.datname)
