"""Tables of the target's database: scan mix, tuples, maintenance, missing-index candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from metricsd.config import PostgresConfig
from metricsd.postgres.base import (
    LOCKED_RELATIONS_SQL,
    FamilyBuilder,
    PgCollector,
    Snapshot,
    epoch,
    spec,
)
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

LABELS = ("schema", "table")
# Missing-index verdicts use the scans of the last half to whole window, not the lifetime
# counters (one full-table UPDATE a month ago must not flag a table for good).
MISSING_INDEX_WINDOW_S = 3600.0
Scans = dict[int, tuple[int, int, int]]  # relid -> (seq_scan, seq_tup_read, idx_scan)

TABLES_SQL = f"""
SELECT relid, schemaname AS schema, relname AS "table", seq_scan, seq_tup_read,
       coalesce(idx_scan, 0) AS idx_scan, n_live_tup, n_dead_tup,
       greatest(last_vacuum, last_autovacuum) AS last_vacuum,
       greatest(last_analyze, last_autoanalyze) AS last_analyze,
       pg_relation_size(relid) AS size_bytes, count(*) OVER () AS relations
FROM pg_stat_user_tables
WHERE relid NOT IN ({LOCKED_RELATIONS_SQL})
ORDER BY pg_relation_size(relid) DESC, relid
LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class Table:
    """One table's statistics and whether it looks like it lacks an index."""

    schema: str
    table: str
    seq_scans: int
    seq_tuples_read: int
    index_scans: int
    live_tuples: int
    dead_tuples: int
    size_bytes: int
    last_vacuum: float | None
    last_analyze: float | None
    missing_index: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "table": self.table, "seq_scans": self.seq_scans,
            "seq_tuples_read": self.seq_tuples_read, "index_scans": self.index_scans,
            "live_tuples": self.live_tuples, "dead_tuples": self.dead_tuples,
            "size_bytes": self.size_bytes, "last_vacuum": self.last_vacuum,
            "last_analyze": self.last_analyze, "missing_index": self.missing_index,
        }


@dataclass(frozen=True)
class TablesData:
    tables: tuple[Table, ...]
    verdict_window_s: float = 0.0  # how far back the missing-index verdicts look
    omitted: int = 0  # tables beyond postgres.max_relations, not exported


class ScanWindow:
    """Two checkpoints, the older one between half a window and a window old."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.base: tuple[float, Scans] | None = None
        self.next: tuple[float, Scans] | None = None

    def advance(self, now: float, current: Scans) -> tuple[float, Scans]:
        """Record `current`; returns the checkpoint to diff against (time, scans)."""
        if self.base is None or self.next is None:
            self.base = self.next = (now, current)
        elif now - self.next[0] >= self.window_s / 2:
            self.base, self.next = self.next, (now, current)
        return self.base

    @staticmethod
    def delta(now_scans: tuple[int, int, int], before: tuple[int, int, int] | None
              ) -> tuple[int, int, int]:
        """Scans since `before`; a table new since then, or reset, counts from zero."""
        if before is None or any(a < b for a, b in zip(now_scans, before, strict=True)):
            return now_scans
        return (now_scans[0] - before[0], now_scans[1] - before[1], now_scans[2] - before[2])


def is_missing_index_candidate(
    live: int, seq_scans: int, seq_tuples_read: int, index_scans: int, min_rows: int
) -> bool:
    """Large, and read mostly by sequential scans that actually read rows."""
    return (live >= min_rows and seq_scans > index_scans
            and seq_tuples_read >= max(1, min_rows))


@register
class TablesCollector(PgCollector):
    """pg_stat_user_tables of the target database."""

    name = "tables"
    min_server_version = 130000
    per_database = True
    specs = (
        spec("metricsd_pg_tables_seq_scans", "counter", "Sequential scans", *LABELS),
        spec("metricsd_pg_tables_seq_tuples_read", "counter", "Rows read by sequential scans",
             *LABELS),
        spec("metricsd_pg_tables_index_scans", "counter", "Index scans on the table", *LABELS),
        spec("metricsd_pg_tables_live_tuples", "gauge", "Estimated live rows", *LABELS),
        spec("metricsd_pg_tables_dead_tuples", "gauge", "Estimated dead rows", *LABELS),
        spec("metricsd_pg_tables_size_bytes", "gauge", "Heap size", *LABELS),
        spec("metricsd_pg_tables_last_vacuum_timestamp_seconds", "gauge",
             "Latest manual or auto vacuum", *LABELS),
        spec("metricsd_pg_tables_last_analyze_timestamp_seconds", "gauge",
             "Latest manual or auto analyze", *LABELS),
        spec("metricsd_pg_tables_missing_index", "gauge",
             "1 for a large table read mostly by sequential scans in the last 30-60 minutes",
             *LABELS),
        spec("metricsd_pg_tables_omitted", "gauge",
             "Tables not exported because of postgres.max_relations (the largest are kept)"),
    )

    def __init__(self, target: str, config: PostgresConfig) -> None:
        super().__init__(target, config)
        self._window = ScanWindow(MISSING_INDEX_WINDOW_S)

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        min_rows = self.config.missing_index_min_rows
        tables = []
        rows = await conn.fetch(TABLES_SQL, self.config.max_relations)
        omitted = int(rows[0]["relations"]) - len(rows) if rows else 0
        current: Scans = {r["relid"]: (int(r["seq_scan"] or 0), int(r["seq_tup_read"] or 0),
                                       int(r["idx_scan"])) for r in rows}
        since, base = self._window.advance(now, current)
        first = since == now
        for r in rows:
            live, seq, seq_read, idx = (int(r["n_live_tup"] or 0), int(r["seq_scan"] or 0),
                                        int(r["seq_tup_read"] or 0), int(r["idx_scan"]))
            d_seq, d_read, d_idx = ScanWindow.delta(current[r["relid"]], base.get(r["relid"]))
            tables.append(Table(
                schema=r["schema"], table=r["table"], seq_scans=seq, seq_tuples_read=seq_read,
                index_scans=idx, live_tuples=live, dead_tuples=int(r["n_dead_tup"] or 0),
                size_bytes=int(r["size_bytes"]), last_vacuum=epoch(r["last_vacuum"]),
                last_analyze=epoch(r["last_analyze"]),
                missing_index=not first and is_missing_index_candidate(
                    live, d_seq, d_read, d_idx, min_rows),
            ))
        tables.sort(key=lambda t: (t.schema, t.table))
        return self.snapshot(now, TablesData(tuple(tables), now - since, omitted))

    def fill(self, out: FamilyBuilder, data: TablesData) -> None:
        out.add("metricsd_pg_tables_omitted", float(data.omitted))
        for t in data.tables:
            out.add_series({"schema": t.schema, "table": t.table}, (
                ("metricsd_pg_tables_seq_scans", t.seq_scans),
                ("metricsd_pg_tables_seq_tuples_read", t.seq_tuples_read),
                ("metricsd_pg_tables_index_scans", t.index_scans),
                ("metricsd_pg_tables_live_tuples", t.live_tuples),
                ("metricsd_pg_tables_dead_tuples", t.dead_tuples),
                ("metricsd_pg_tables_size_bytes", t.size_bytes),
                ("metricsd_pg_tables_last_vacuum_timestamp_seconds", t.last_vacuum),
                ("metricsd_pg_tables_last_analyze_timestamp_seconds", t.last_analyze),
                ("metricsd_pg_tables_missing_index", 1.0 if t.missing_index else 0.0),
            ))
