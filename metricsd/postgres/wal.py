"""WAL generation: records, full-page images and bytes (pg_stat_wal, 14+), and the position.

The WAL position (`pg_current_wal_lsn()` on a primary, the last replayed LSN on a
standby) is a byte counter on every version, so `rate()` of it is the WAL rate even on
13, which has no pg_stat_wal. PostgreSQL 18 moved the write/sync counts and times to
pg_stat_io (object "wal"); those four families exist on 14-17 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, epoch, fetch_one, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

POSITION_SQL = """
SELECT pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                            ELSE pg_current_wal_lsn() END, '0/0')::int8 AS position
"""
STAT_WAL_SQL = """
SELECT wal_records, wal_fpi, wal_bytes::int8 AS wal_bytes, wal_buffers_full, {io} stats_reset
FROM pg_stat_wal
"""
_NO_IO = ("NULL::int8 AS wal_write, NULL::int8 AS wal_sync, NULL::float8 AS wal_write_time,"
          " NULL::float8 AS wal_sync_time,")


def stat_wal_sql(version_num: int) -> str:
    io = _NO_IO if version_num >= 180000 else "wal_write, wal_sync, wal_write_time, wal_sync_time,"
    return STAT_WAL_SQL.format(io=io)


@dataclass(frozen=True)
class WalData:
    position_bytes: int | None
    records: int | None = None  # pg_stat_wal (14+) from here on
    fpi: int | None = None
    bytes: int | None = None
    buffers_full: int | None = None
    writes: int | None = None  # 14-17
    syncs: int | None = None
    write_s: float | None = None
    sync_s: float | None = None
    stats_reset: float | None = None


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def _ms(value: Any) -> float | None:
    return None if value is None else float(value) / 1000.0


@register
class WalCollector(PgCollector):
    """pg_stat_wal (14+) and the current WAL position (every version)."""

    name = "wal"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_wal_position_bytes", "gauge",
             "WAL position (LSN) in bytes: written on a primary, replayed on a standby"),
        spec("metricsd_pg_wal_records", "counter", "WAL records generated (14+)"),
        spec("metricsd_pg_wal_fpi", "counter", "Full-page images in the WAL (14+)"),
        spec("metricsd_pg_wal_bytes", "counter", "WAL generated, bytes (14+)"),
        spec("metricsd_pg_wal_buffers_full", "counter",
             "WAL writes forced because wal_buffers was full (14+)"),
        spec("metricsd_pg_wal_writes", "counter", "WAL buffer writes to disk (14-17)"),
        spec("metricsd_pg_wal_syncs", "counter", "WAL file syncs (14-17)"),
        spec("metricsd_pg_wal_write_time_seconds", "counter",
             "Time writing WAL (14-17, with track_wal_io_timing)"),
        spec("metricsd_pg_wal_sync_time_seconds", "counter",
             "Time syncing WAL (14-17, with track_wal_io_timing)"),
        spec("metricsd_pg_wal_stats_reset_timestamp_seconds", "gauge",
             "When pg_stat_wal was last reset (14+)"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        position = await conn.fetchval(POSITION_SQL)
        position = None if position is None else int(position)
        if info.version_num < 140000:
            return self.snapshot(now, WalData(position))
        r = await fetch_one(conn, stat_wal_sql(info.version_num))
        timing = info.version_num < 180000 and await conn.fetchval(
            "SELECT current_setting('track_wal_io_timing')::bool")
        return self.snapshot(now, WalData(
            position_bytes=position, records=int(r["wal_records"]), fpi=int(r["wal_fpi"]),
            bytes=int(r["wal_bytes"]), buffers_full=int(r["wal_buffers_full"]),
            writes=_count(r["wal_write"]), syncs=_count(r["wal_sync"]),
            write_s=_ms(r["wal_write_time"]) if timing else None,
            sync_s=_ms(r["wal_sync_time"]) if timing else None,
            stats_reset=epoch(r["stats_reset"]),
        ))

    def fill(self, out: FamilyBuilder, data: WalData) -> None:
        out.add("metricsd_pg_wal_position_bytes", data.position_bytes)
        out.add("metricsd_pg_wal_records", data.records)
        out.add("metricsd_pg_wal_fpi", data.fpi)
        out.add("metricsd_pg_wal_bytes", data.bytes)
        out.add("metricsd_pg_wal_buffers_full", data.buffers_full)
        out.add("metricsd_pg_wal_writes", data.writes)
        out.add("metricsd_pg_wal_syncs", data.syncs)
        out.add("metricsd_pg_wal_write_time_seconds", data.write_s)
        out.add("metricsd_pg_wal_sync_time_seconds", data.sync_s)
        out.add("metricsd_pg_wal_stats_reset_timestamp_seconds", data.stats_reset)
