"""The background writer: buffers it cleaned, rounds it stopped early, buffers allocated.

Before PostgreSQL 17, pg_stat_bgwriter also counted buffers that backends had to write
themselves (a sign the bgwriter falls behind); 17 moved that to pg_stat_io (the `io`
collector, `backend_type="client backend"`, `op="writes"`), so those two families exist
only on 13-16.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, epoch, fetch_one, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

BGWRITER_SQL = """
SELECT buffers_clean, maxwritten_clean, buffers_alloc, {backend} stats_reset
FROM pg_stat_bgwriter
"""


def bgwriter_sql(version_num: int) -> str:
    backend = ("NULL::int8 AS buffers_backend, NULL::int8 AS buffers_backend_fsync,"
               if version_num >= 170000 else "buffers_backend, buffers_backend_fsync,")
    return BGWRITER_SQL.format(backend=backend)


@dataclass(frozen=True)
class BgwriterData:
    clean_bytes: int
    maxwritten_clean: int
    alloc_bytes: int
    backend_bytes: int | None  # 13-16
    backend_fsync: int | None  # 13-16
    stats_reset: float | None


@register
class BgwriterCollector(PgCollector):
    """The bgwriter columns of pg_stat_bgwriter (the checkpoint ones: `checkpointer`)."""

    name = "bgwriter"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_bgwriter_buffers_clean_bytes", "counter",
             "Buffers written by the background writer, bytes"),
        spec("metricsd_pg_bgwriter_maxwritten_clean", "counter",
             "Rounds stopped because bgwriter_lru_maxpages buffers were written"),
        spec("metricsd_pg_bgwriter_buffers_alloc_bytes", "counter", "Buffers allocated, bytes"),
        spec("metricsd_pg_bgwriter_buffers_backend_bytes", "counter",
             "Buffers written by backends themselves, bytes (PostgreSQL 13-16)"),
        spec("metricsd_pg_bgwriter_buffers_backend_fsync", "counter",
             "fsync calls backends had to make themselves (PostgreSQL 13-16)"),
        spec("metricsd_pg_bgwriter_stats_reset_timestamp_seconds", "gauge",
             "When these counters were last reset"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        r = await fetch_one(conn, bgwriter_sql(info.version_num))
        bs = info.block_size
        return self.snapshot(now, BgwriterData(
            clean_bytes=int(r["buffers_clean"]) * bs,
            maxwritten_clean=int(r["maxwritten_clean"]),
            alloc_bytes=int(r["buffers_alloc"]) * bs,
            backend_bytes=None if r["buffers_backend"] is None
            else int(r["buffers_backend"]) * bs,
            backend_fsync=None if r["buffers_backend_fsync"] is None
            else int(r["buffers_backend_fsync"]),
            stats_reset=epoch(r["stats_reset"]),
        ))

    def fill(self, out: FamilyBuilder, data: BgwriterData) -> None:
        out.add("metricsd_pg_bgwriter_buffers_clean_bytes", data.clean_bytes)
        out.add("metricsd_pg_bgwriter_maxwritten_clean", data.maxwritten_clean)
        out.add("metricsd_pg_bgwriter_buffers_alloc_bytes", data.alloc_bytes)
        out.add("metricsd_pg_bgwriter_buffers_backend_bytes", data.backend_bytes)
        out.add("metricsd_pg_bgwriter_buffers_backend_fsync", data.backend_fsync)
        out.add("metricsd_pg_bgwriter_stats_reset_timestamp_seconds", data.stats_reset)
