"""Checkpoints: how many (timed or requested), how long they write and sync, what they write.

PostgreSQL 17 moved these counters from pg_stat_bgwriter to pg_stat_checkpointer (and
added restartpoints, which a standby does instead of checkpoints); the SQL is picked by
version, the metric names are the same on every version.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, epoch, fetch_one, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

CHECKPOINTER_SQL_17 = """
SELECT num_timed AS timed, num_requested AS requested, {done} AS done,
       restartpoints_timed, restartpoints_req, restartpoints_done,
       write_time, sync_time, buffers_written, stats_reset
FROM pg_stat_checkpointer
"""
CHECKPOINTER_SQL_13 = """
SELECT checkpoints_timed AS timed, checkpoints_req AS requested, NULL::int8 AS done,
       NULL::int8 AS restartpoints_timed, NULL::int8 AS restartpoints_req,
       NULL::int8 AS restartpoints_done,
       checkpoint_write_time AS write_time, checkpoint_sync_time AS sync_time,
       buffers_checkpoint AS buffers_written, stats_reset
FROM pg_stat_bgwriter
"""


def checkpointer_sql(version_num: int) -> str:
    if version_num >= 170000:
        # num_done (checkpoints that completed, not skipped as idle) is new in 18.
        return CHECKPOINTER_SQL_17.format(
            done="num_done" if version_num >= 180000 else "NULL::int8")
    return CHECKPOINTER_SQL_13


@dataclass(frozen=True)
class CheckpointerData:
    timed: int
    requested: int
    done: int | None  # 18+
    restartpoints: tuple[int | None, int | None, int | None]  # timed, requested, done (17+)
    write_s: float
    sync_s: float
    written_bytes: int
    stats_reset: float | None


@register
class CheckpointerCollector(PgCollector):
    """pg_stat_checkpointer on 17+, the checkpoint columns of pg_stat_bgwriter before."""

    name = "checkpointer"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_checkpointer_checkpoints", "counter",
             "Checkpoints started, by what asked for them (timed: checkpoint_timeout;"
             " requested: max_wal_size, CHECKPOINT, shutdown)", "kind"),
        spec("metricsd_pg_checkpointer_checkpoints_done", "counter",
             "Checkpoints completed (PostgreSQL 18+)"),
        spec("metricsd_pg_checkpointer_restartpoints", "counter",
             "Restartpoints on a standby (PostgreSQL 17+), by kind: timed, requested, done",
             "kind"),
        spec("metricsd_pg_checkpointer_write_time_seconds", "counter",
             "Time checkpoints spent writing buffers"),
        spec("metricsd_pg_checkpointer_sync_time_seconds", "counter",
             "Time checkpoints spent syncing files"),
        spec("metricsd_pg_checkpointer_buffers_written_bytes", "counter",
             "Buffers written by checkpoints, bytes"),
        spec("metricsd_pg_checkpointer_stats_reset_timestamp_seconds", "gauge",
             "When these counters were last reset"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        r = await fetch_one(conn, checkpointer_sql(info.version_num))
        opt = [None if r[k] is None else int(r[k])
               for k in ("done", "restartpoints_timed", "restartpoints_req",
                         "restartpoints_done")]
        return self.snapshot(now, CheckpointerData(
            timed=int(r["timed"]), requested=int(r["requested"]), done=opt[0],
            restartpoints=(opt[1], opt[2], opt[3]),
            write_s=float(r["write_time"]) / 1000.0, sync_s=float(r["sync_time"]) / 1000.0,
            written_bytes=int(r["buffers_written"]) * info.block_size,
            stats_reset=epoch(r["stats_reset"]),
        ))

    def fill(self, out: FamilyBuilder, data: CheckpointerData) -> None:
        out.add("metricsd_pg_checkpointer_checkpoints", data.timed, kind="timed")
        out.add("metricsd_pg_checkpointer_checkpoints", data.requested, kind="requested")
        out.add("metricsd_pg_checkpointer_checkpoints_done", data.done)
        for kind, value in zip(("timed", "requested", "done"), data.restartpoints,
                               strict=True):
            out.add("metricsd_pg_checkpointer_restartpoints", value, kind=kind)
        out.add("metricsd_pg_checkpointer_write_time_seconds", data.write_s)
        out.add("metricsd_pg_checkpointer_sync_time_seconds", data.sync_s)
        out.add("metricsd_pg_checkpointer_buffers_written_bytes", data.written_bytes)
        out.add("metricsd_pg_checkpointer_stats_reset_timestamp_seconds", data.stats_reset)
