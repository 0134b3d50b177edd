"""pg_stat_io (PostgreSQL 16+): I/O by backend type and object (relation, temp, wal on 18).

The view has a fixed set of rows, so the series are bounded by the server, not by the
workload. Cells PostgreSQL marks as not applicable
(NULL) are left out. Times are only exported while track_io_timing is on: with it off
they stay 0, which would read as "no time spent".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

LABELS = ("backend_type", "object")
OPERATIONS = ("reads", "writes", "writebacks", "extends", "hits", "evictions", "reuses",
              "fsyncs")
TIMED = ("reads", "writes", "writebacks", "extends", "fsyncs")
SIZED = ("reads", "writes", "extends")  # byte columns on 18; op_bytes multiples before


def io_sql(version_num: int) -> str:
    """The query for this server: 18 has byte columns, 16 and 17 have op_bytes.

    Contexts (normal, vacuum, bulkread, bulkwrite, init) are summed: per context the view
    has over 800 cells on 18, per (backend_type, object) about 200. sum() of only NULLs
    stays NULL, so "not applicable" survives the sum.
    """
    counts = ", ".join(f"sum({op})::int8 AS {op}" for op in OPERATIONS)
    times = ", ".join(f"sum({op[:-1]}_time)::float8 AS {op[:-1]}_time" for op in TIMED)
    if version_num >= 180000:
        sized = ", ".join(f"sum({op[:-1]}_bytes)::int8 AS {op}_bytes" for op in SIZED)
    else:
        sized = ", ".join(f"sum({op} * op_bytes)::int8 AS {op}_bytes" for op in SIZED)
    return (f"SELECT backend_type, object, {counts}, {times}, {sized},"
            " current_setting('track_io_timing')::bool AS timing FROM pg_stat_io"
            " GROUP BY backend_type, object ORDER BY backend_type, object")


@dataclass(frozen=True, slots=True)
class IoRow:
    """One (backend_type, object) pair, contexts summed; None where PostgreSQL says n/a."""

    backend_type: str
    object: str
    operations: tuple[int | None, ...]  # in OPERATIONS order
    seconds: tuple[float | None, ...]  # in TIMED order; all None without track_io_timing
    bytes: tuple[int | None, ...]  # in SIZED order


@dataclass(frozen=True)
class IoData:
    rows: tuple[IoRow, ...]
    timing: bool


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@register
class IoCollector(PgCollector):
    """pg_stat_io: operations, bytes and (with track_io_timing) time per cell."""

    name = "io"
    min_server_version = 160000
    specs = (
        spec("metricsd_pg_io_operations", "counter",
             "I/O operations (reads, writes, writebacks, extends, hits, evictions, reuses,"
             " fsyncs)", *LABELS, "op"),
        spec("metricsd_pg_io_bytes", "counter", "Bytes read, written and extended",
             *LABELS, "op"),
        spec("metricsd_pg_io_time_seconds", "counter",
             "Time spent in I/O operations (only with track_io_timing = on)", *LABELS, "op"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        records = await conn.fetch(io_sql(info.version_num))
        timing = bool(records[0]["timing"]) if records else False
        rows = tuple(
            IoRow(
                r["backend_type"], r["object"],
                tuple(_int(r[op]) for op in OPERATIONS),
                tuple(None if not timing or r[f"{op[:-1]}_time"] is None
                      else float(r[f"{op[:-1]}_time"]) / 1000.0 for op in TIMED),
                tuple(_int(r[f"{op}_bytes"]) for op in SIZED),
            )
            for r in records
        )
        return self.snapshot(now, IoData(rows, timing))

    def fill(self, out: FamilyBuilder, data: IoData) -> None:
        for row in data.rows:
            cell = {"backend_type": row.backend_type, "object": row.object}
            for op, count in zip(OPERATIONS, row.operations, strict=True):
                out.add("metricsd_pg_io_operations", count, **cell, op=op)
            for op, size in zip(SIZED, row.bytes, strict=True):
                out.add("metricsd_pg_io_bytes", size, **cell, op=op)
            for op, seconds in zip(TIMED, row.seconds, strict=True):
                out.add("metricsd_pg_io_time_seconds", seconds, **cell, op=op)
