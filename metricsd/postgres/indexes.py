"""Indexes of the target's database: scans, size, validity, unused verdicts and bloat.

"Unused" means zero scans since the statistics were reset, or (PostgreSQL 16+, from
last_idx_scan) no scan for postgres.unused_index_idle, and no constraint behind the
index; the statistics' age is exported beside it, because a day-old reset proves little.
"""

from __future__ import annotations

import math
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

LABELS = ("schema", "table", "index")
PAGE_OVERHEAD = 24 + 16  # page header + btree special space
INDEX_TUPLE_HEADER = 8  # IndexTupleData: heap pointer + flags
LINE_POINTER = 4
MAXALIGN = 8
INNER_FILL = 0.7

INDEXES_SQL = """
SELECT s.indexrelid, {last_scan} AS last_scan,
       s.schemaname AS schema, s.relname AS "table", s.indexrelname AS index,
       s.idx_scan AS scans, s.idx_tup_read AS tuples_read, s.idx_tup_fetch AS tuples_fetched,
       coalesce(io.idx_blks_hit, 0) AS blks_hit, coalesce(io.idx_blks_read, 0) AS blks_read,
       pg_relation_size(s.indexrelid) AS size_bytes,
       i.indisvalid AS valid, i.indisunique AS is_unique, i.indisprimary AS is_primary,
       EXISTS (SELECT 1 FROM pg_constraint c
               WHERE c.conindid = s.indexrelid AND c.contype IN ('p', 'u', 'x'))
         AS backs_constraint,
       am.amname AS method, ic.reltuples, i.indnatts AS natts,
       has_table_privilege(s.relid, 'SELECT') AS readable,
       coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(ic.reloptions) AS o
                 WHERE o LIKE 'fillfactor=%'), 90) AS fillfactor,
       count(*) OVER () AS relations
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
JOIN pg_class ic ON ic.oid = s.indexrelid
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_statio_user_indexes io ON io.indexrelid = s.indexrelid
WHERE s.indexrelid NOT IN ({locked}) AND s.relid NOT IN ({locked})
ORDER BY pg_relation_size(s.indexrelid) DESC, s.indexrelid
LIMIT $1
"""


def indexes_sql(version_num: int) -> str:
    """pg_stat_user_indexes.last_idx_scan exists from PostgreSQL 16."""
    return INDEXES_SQL.format(
        last_scan="s.last_idx_scan" if version_num >= 160000 else "NULL::timestamptz",
        locked=LOCKED_RELATIONS_SQL)


# Average key width per index from pg_stats (only columns the role may read). This is the
# costliest query of the view, and widths move slowly, so it runs every WIDTHS_REFRESH_S.
WIDTHS_SQL = """
SELECT i.indexrelid, sum(st.avg_width)::int AS data_width, count(st.avg_width) AS columns
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) AS k(attnum)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = c.relname
                AND st.attname = a.attname
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
  AND i.indexrelid = ANY($1::oid[])
GROUP BY i.indexrelid
"""
WIDTHS_REFRESH_S = 300.0
STATS_AGE_SQL = """
SELECT extract(epoch FROM now() - coalesce(
    (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
    pg_postmaster_start_time()))::float8 AS age
"""


@dataclass(frozen=True, slots=True)
class Index:
    """One index as the statistics see it, with metricsd's verdicts."""

    schema: str
    table: str
    index: str
    scans: int
    tuples_read: int
    tuples_fetched: int
    hit_bytes: int
    read_bytes: int
    size_bytes: int
    valid: bool
    unique: bool
    primary: bool
    backs_constraint: bool
    unused: bool
    bloat_bytes: int | None
    bloat_ratio: float | None
    last_scan: float | None = None  # PostgreSQL 16+

    @property
    def bloated(self) -> bool:
        return self.bloat_bytes is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "table": self.table, "index": self.index,
            "scans": self.scans, "tuples_read": self.tuples_read,
            "tuples_fetched": self.tuples_fetched, "size_bytes": self.size_bytes,
            "valid": self.valid, "unique": self.unique, "primary": self.primary,
            "backs_constraint": self.backs_constraint, "unused": self.unused,
            "bloat_bytes": self.bloat_bytes, "bloat_ratio": self.bloat_ratio,
            "last_scan": self.last_scan,
        }


@dataclass(frozen=True)
class IndexesData:
    indexes: tuple[Index, ...]
    stats_age_s: float
    omitted: int = 0  # indexes beyond postgres.max_relations, not exported


def estimate_btree_pages(
    reltuples: float, data_width: int, fillfactor: int, block_size: int
) -> int:
    """Pages a freshly built btree of these rows would take (statistics only, no extension).

    Leaf tuples are MAXALIGN(8-byte header + average key width) plus a 4-byte line
    pointer, packed to the fillfactor; inner pages are added at the default 70 % fill, plus
    the metapage. NULLs and suffix truncation make real indexes slightly smaller, so the
    bloat estimate errs on the low side.
    """
    tuple_bytes = math.ceil((INDEX_TUPLE_HEADER + data_width) / MAXALIGN) * MAXALIGN
    tuple_bytes += LINE_POINTER
    usable = block_size - PAGE_OVERHEAD
    leaf = math.ceil(reltuples * tuple_bytes / (usable * fillfactor / 100.0))
    inner = math.ceil(leaf * tuple_bytes / (usable * INNER_FILL)) if leaf > 1 else 0
    return max(1, leaf) + inner + 1


@register
class IndexesCollector(PgCollector):
    """pg_stat_user_indexes, pg_statio_user_indexes and pg_index of the target database."""

    name = "indexes"
    min_server_version = 130000
    per_database = True
    specs = (
        spec("metricsd_pg_indexes_scans", "counter", "Index scans", *LABELS),
        spec("metricsd_pg_indexes_tuples_read", "counter", "Index entries returned by scans",
             *LABELS),
        spec("metricsd_pg_indexes_tuples_fetched", "counter",
             "Live table rows fetched by simple index scans", *LABELS),
        spec("metricsd_pg_indexes_hit_bytes", "counter", "Index blocks found in shared buffers",
             *LABELS),
        spec("metricsd_pg_indexes_read_bytes", "counter", "Index blocks read", *LABELS),
        spec("metricsd_pg_indexes_size_bytes", "gauge", "Index size on disk", *LABELS),
        spec("metricsd_pg_indexes_info", "gauge", "Index properties; always 1",
             *LABELS, "unique", "primary", "constraint"),
        spec("metricsd_pg_indexes_valid", "gauge", "0 for an invalid index", *LABELS),
        spec("metricsd_pg_indexes_unused", "gauge",
             "1 when no scans since the statistics were reset (or, on 16+, none within"
             " postgres.unused_index_idle) and no constraint", *LABELS),
        spec("metricsd_pg_indexes_last_scan_timestamp_seconds", "gauge",
             "When the index was last scanned (last_idx_scan, PostgreSQL 16+)", *LABELS),
        spec("metricsd_pg_indexes_bloat_bytes", "gauge", "Estimated bloat (btree)", *LABELS),
        spec("metricsd_pg_indexes_bloat_ratio", "gauge", "Estimated bloat / size", *LABELS),
        spec("metricsd_pg_indexes_stats_age_seconds", "gauge",
             "Age of the statistics behind the unused verdict"),
        spec("metricsd_pg_indexes_omitted", "gauge",
             "Indexes not exported because of postgres.max_relations (the largest are kept)"),
    )

    def __init__(self, target: str, config: PostgresConfig) -> None:
        super().__init__(target, config)
        self._widths: dict[int, tuple[int, int]] = {}  # indexrelid -> (width, columns)
        self._widths_at = -math.inf
        self._widths_for: set[int] = set()  # indexes that existed at the last refresh

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        rows = await conn.fetch(indexes_sql(info.version_num), self.config.max_relations)
        omitted = int(rows[0]["relations"]) - len(rows) if rows else 0
        age = await conn.fetchval(STATS_AGE_SQL)
        if now - self._widths_at >= WIDTHS_REFRESH_S or any(
                r["indexrelid"] not in self._widths_for for r in rows):
            self._widths = {r["indexrelid"]: (r["data_width"], r["columns"])
                            for r in await conn.fetch(WIDTHS_SQL,
                                                      [r["indexrelid"] for r in rows])}
            self._widths_at = now
            self._widths_for = {r["indexrelid"] for r in rows}
        bs = info.block_size
        indexes = []
        for r in rows:
            bloat_bytes, bloat_ratio = self._bloat(r, self._widths.get(r["indexrelid"]), bs)
            protected = r["is_primary"] or r["is_unique"] or r["backs_constraint"]
            last_scan = epoch(r["last_scan"])
            indexes.append(Index(
                schema=r["schema"], table=r["table"], index=r["index"],
                scans=int(r["scans"] or 0), tuples_read=int(r["tuples_read"] or 0),
                tuples_fetched=int(r["tuples_fetched"] or 0),
                hit_bytes=int(r["blks_hit"]) * bs, read_bytes=int(r["blks_read"]) * bs,
                size_bytes=int(r["size_bytes"]), valid=bool(r["valid"]),
                unique=bool(r["is_unique"]), primary=bool(r["is_primary"]),
                backs_constraint=bool(r["backs_constraint"]),
                unused=bool(r["valid"]) and not protected and (
                    not r["scans"] or idle(last_scan, now, self.config.unused_index_idle)),
                bloat_bytes=bloat_bytes, bloat_ratio=bloat_ratio, last_scan=last_scan,
            ))
        indexes.sort(key=lambda i: (i.schema, i.table, i.index))
        # pg_stats hides the columns of tables the role may not SELECT: no bloat estimate.
        hidden = sum(1 for r in rows if r["method"] == "btree" and not r["readable"])
        note = (f"{hidden} btree indexes get no bloat estimate: pg_stats hides the columns of"
                " tables the role may not read (GRANT pg_read_all_data TO <role> on 14+, or"
                " GRANT SELECT on those tables)") if hidden else ""
        return self.snapshot(now, IndexesData(tuple(indexes), float(age or 0.0), omitted),
                             note)

    def _bloat(
        self, r: Any, width: tuple[int, int] | None, block_size: int
    ) -> tuple[int | None, float | None]:
        """(bytes, ratio) when the estimate is possible and above postgres.bloat_min_bytes."""
        if (r["method"] != "btree" or r["reltuples"] is None or r["reltuples"] < 0
                or width is None or width[1] != r["natts"] or not r["size_bytes"]):
            return None, None
        expected = estimate_btree_pages(float(r["reltuples"]), int(width[0]),
                                        int(r["fillfactor"]), block_size)
        actual_pages = int(r["size_bytes"]) // block_size
        bloat = max(0, actual_pages - expected) * block_size
        if bloat < max(1, self.config.bloat_min_bytes):
            return None, None
        return bloat, bloat / int(r["size_bytes"])

    def fill(self, out: FamilyBuilder, data: IndexesData) -> None:
        out.add("metricsd_pg_indexes_stats_age_seconds", data.stats_age_s)
        out.add("metricsd_pg_indexes_omitted", float(data.omitted))
        for i in data.indexes:
            labels = {"schema": i.schema, "table": i.table, "index": i.index}
            text = out.add_series(labels, (
                ("metricsd_pg_indexes_scans", i.scans),
                ("metricsd_pg_indexes_tuples_read", i.tuples_read),
                ("metricsd_pg_indexes_tuples_fetched", i.tuples_fetched),
                ("metricsd_pg_indexes_hit_bytes", i.hit_bytes),
                ("metricsd_pg_indexes_read_bytes", i.read_bytes),
                ("metricsd_pg_indexes_size_bytes", i.size_bytes),
                ("metricsd_pg_indexes_valid", 1.0 if i.valid else 0.0),
                ("metricsd_pg_indexes_unused", 1.0 if i.unused else 0.0),
                ("metricsd_pg_indexes_bloat_bytes", i.bloat_bytes),
                ("metricsd_pg_indexes_bloat_ratio", i.bloat_ratio),
                ("metricsd_pg_indexes_last_scan_timestamp_seconds", i.last_scan),
            ))
            flags = {"unique": _bool(i.unique), "primary": _bool(i.primary),
                     "constraint": _bool(i.backs_constraint)}
            # The flags are true/false, nothing to escape: extend the series' label text.
            out.add_text("metricsd_pg_indexes_info",
                         f'{text},unique="{flags["unique"]}",primary="{flags["primary"]}",'
                         f'constraint="{flags["constraint"]}"', {**labels, **flags}, 1.0)


def idle(last_scan: float | None, now: float, limit_s: float) -> bool:
    """Scanned once, but not for `limit_s` (only known where last_idx_scan exists)."""
    return last_scan is not None and now - last_scan > limit_s


def _bool(value: bool) -> str:
    return "true" if value else "false"
