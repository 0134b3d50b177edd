"""WAL archiving: segments archived and failed, when, and whether it is failing now.

A failing archive_command keeps every unarchived segment in pg_wal until the disk is
full, so "the last attempt failed" (`failing`) is exported beside the counters. The
number of segments waiting (`.ready` files) needs pg_ls_archive_statusdir, which only
superusers and pg_monitor members may call; for other roles it is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, epoch, fetch_one, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

ARCHIVER_SQL = """
SELECT current_setting('archive_mode') <> 'off' AS enabled,
       archived_count, failed_count, last_archived_time, last_failed_time, stats_reset,
       pg_has_role(current_user, 'pg_monitor', 'USAGE') AS may_list
FROM pg_stat_archiver
"""
# A separate statement: PostgreSQL checks EXECUTE on every function of a plan when it
# starts, even in a CASE branch that never runs, so a role without the grant would fail
# the whole view.
PENDING_SQL = "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"


@dataclass(frozen=True)
class ArchiverData:
    enabled: bool
    archived: int
    failed: int
    last_archived: float | None
    last_failed: float | None
    pending: int | None
    stats_reset: float | None

    @property
    def failing(self) -> bool:
        """The latest attempt failed: no success since the last failure."""
        if self.last_failed is None:
            return False
        return self.last_archived is None or self.last_failed > self.last_archived


@register
class ArchiverCollector(PgCollector):
    """pg_stat_archiver, archive_mode and the archive_status backlog."""

    name = "archiver"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_archiver_enabled", "gauge", "1 when archive_mode is on or always"),
        spec("metricsd_pg_archiver_archived", "counter", "WAL files archived"),
        spec("metricsd_pg_archiver_failed", "counter", "Failed attempts to archive a WAL file"),
        spec("metricsd_pg_archiver_failing", "gauge",
             "1 when the latest archiving attempt failed"),
        spec("metricsd_pg_archiver_last_archived_timestamp_seconds", "gauge",
             "When the last WAL file was archived"),
        spec("metricsd_pg_archiver_last_failed_timestamp_seconds", "gauge",
             "When archiving last failed"),
        spec("metricsd_pg_archiver_pending_segments", "gauge",
             "WAL files waiting to be archived (.ready); needs pg_monitor"),
        spec("metricsd_pg_archiver_stats_reset_timestamp_seconds", "gauge",
             "When pg_stat_archiver was last reset"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        r = await fetch_one(conn, ARCHIVER_SQL)
        pending = None
        if r["enabled"] and r["may_list"]:
            pending = int(await conn.fetchval(PENDING_SQL))
        return self.snapshot(now, ArchiverData(
            enabled=bool(r["enabled"]), archived=int(r["archived_count"]),
            failed=int(r["failed_count"]), last_archived=epoch(r["last_archived_time"]),
            last_failed=epoch(r["last_failed_time"]),
            pending=pending,
            stats_reset=epoch(r["stats_reset"]),
        ))

    def fill(self, out: FamilyBuilder, data: ArchiverData) -> None:
        out.add("metricsd_pg_archiver_enabled", 1.0 if data.enabled else 0.0)
        out.add("metricsd_pg_archiver_archived", data.archived)
        out.add("metricsd_pg_archiver_failed", data.failed)
        out.add("metricsd_pg_archiver_failing", 1.0 if data.failing else 0.0)
        out.add("metricsd_pg_archiver_last_archived_timestamp_seconds", data.last_archived)
        out.add("metricsd_pg_archiver_last_failed_timestamp_seconds", data.last_failed)
        out.add("metricsd_pg_archiver_pending_segments", data.pending)
        out.add("metricsd_pg_archiver_stats_reset_timestamp_seconds", data.stats_reset)
