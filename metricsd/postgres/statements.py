"""pg_stat_statements: per-interval deltas, top K with hysteresis, an exact remainder.

Lifetime counters say little about what got slow in the last minutes, so consecutive
snapshots are diffed per (userid, dbid, queryid, toplevel). Counters are read with
pg_stat_statements(false); query text is fetched only for queryids not seen before.
The deltas give both the interval facts (gauges, JSON views) and cumulative counters
that never go backwards (statement_counters.py). metricsd's own statements carry
OWN_MARKER and are left out of both.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from metricsd.config import PostgresConfig
from metricsd.postgres.base import (
    PRIVILEGE_HINT,
    CollectorStatusError,
    FamilyBuilder,
    PgCollector,
    Snapshot,
    fetch_one,
    spec,
)
from metricsd.postgres.registry import register
from metricsd.postgres.statement_counters import (
    CounterField,
    CounterRow,
    StatementCounters,
)
from metricsd.postgres.targets import OWN_MARKER, ServerInfo

log = logging.getLogger(__name__)

KEY_LABELS = ("datname", "user", "queryid", "toplevel")
# A newcomer replaces the weakest exported statement only when its interval time is this
# much larger; an exported one leaves when it falls below rank K * STAY_FACTOR.
ENTER_MARGIN = 0.2
STAY_FACTOR = 1.5
# Query text in the info metric's label: whitespace collapsed and cut, because Prometheus
# keeps every label value in its index (the JSON API has up to query_text_length).
QUERY_LABEL_LENGTH = 200

# The extension may live in any schema: every query names it with quote_ident(schema).
EXTENSION_SQL = """
SELECT e.extversion AS version, quote_ident(n.nspname) AS schema,
       current_setting('pg_stat_statements.max', true) AS max_entries,
       current_setting('track_io_timing') = 'on' AS track_io_timing
FROM (SELECT 1) AS one
LEFT JOIN pg_extension e ON e.extname = 'pg_stat_statements'
LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
"""
# {time}: total_exec_time etc. from 1.8 (PostgreSQL 13), total_time before.
# {toplevel}: the column exists from 1.9 (PostgreSQL 14).
# {io}: blk_read_time until 1.10, shared_ + local_blk_read_time from 1.11 (PostgreSQL 17).
# Columns a version lacks read 0 (their families are not exported on that version).
COUNTERS_SQL = """
SELECT userid, dbid, queryid, {toplevel} AS toplevel, calls, {total} AS total_ms,
       {stddev} AS stddev_ms, {max} AS max_ms, rows, shared_blks_hit, shared_blks_read,
       temp_blks_read, temp_blks_written, {io} AS io_read_ms,
       {plan} AS plan_ms, shared_blks_dirtied, shared_blks_written, local_blks_hit,
       local_blks_read, local_blks_dirtied, local_blks_written, {io_write} AS io_write_ms,
       {wal_bytes} AS wal_bytes, {wal_records} AS wal_records, {jit} AS jit_ms,
       {jit_functions} AS jit_functions, {stats_since} AS stats_since
FROM {schema}.pg_stat_statements(false)
"""
# Texts are per entry: the same queryid can exist in several databases with other texts.
TEXT_SQL = """
SELECT DISTINCT ON (userid, dbid, queryid) userid, dbid, queryid, left(query, $1) AS query,
       rtrim(query) LIKE $3 AS own
FROM {schema}.pg_stat_statements(true) WHERE queryid = ANY($2::bigint[])
"""
INFO_SQL = "SELECT dealloc, stats_reset FROM {schema}.pg_stat_statements_info"
NAMES_SQL = """
SELECT 'd' AS kind, oid, datname AS name FROM pg_database
UNION ALL SELECT 'r', oid, rolname FROM pg_roles
"""

# Raw row layout (tuple indexes): see COUNTERS_SQL; stats_since is kept apart.
CALLS, TOTAL, STDDEV, MAX, ROWS, HIT, READ, TREAD, TWRITE, IO = range(10)
(PLAN, SDIRTY, SWRITE, LHIT, LREAD, LDIRTY, LWRITE, IO_WRITE, WAL_BYTES, WAL_RECORDS, JIT,
 JIT_FUNCTIONS) = range(10, 22)
N_COLUMNS = 22
Key = tuple[int, int, int, bool]

# The cumulative families (metricsd_pg_stat_statements_*_total), by delta column.
COUNTER_FIELDS: tuple[CounterField, ...] = (
    CounterField("calls", CALLS, "count", "Calls"),
    CounterField("exec_seconds", TOTAL, "ms", "Execution time"),
    CounterField("plan_seconds", PLAN, "ms",
                 "Planning time (pg_stat_statements.track_planning on)"),
    CounterField("rows", ROWS, "count", "Rows retrieved or affected"),
    CounterField("shared_hit_bytes", HIT, "blocks", "Shared buffer hits, bytes"),
    CounterField("shared_read_bytes", READ, "blocks", "Shared blocks read, bytes"),
    CounterField("shared_dirtied_bytes", SDIRTY, "blocks", "Shared blocks dirtied, bytes"),
    CounterField("shared_written_bytes", SWRITE, "blocks", "Shared blocks written, bytes"),
    CounterField("local_hit_bytes", LHIT, "blocks", "Local buffer hits, bytes"),
    CounterField("local_read_bytes", LREAD, "blocks", "Local blocks read, bytes"),
    CounterField("local_dirtied_bytes", LDIRTY, "blocks", "Local blocks dirtied, bytes"),
    CounterField("local_written_bytes", LWRITE, "blocks", "Local blocks written, bytes"),
    CounterField("temp_read_bytes", TREAD, "blocks", "Temp blocks read, bytes"),
    CounterField("temp_written_bytes", TWRITE, "blocks", "Temp blocks written, bytes"),
    CounterField("block_read_seconds", IO, "ms",
                 "Time reading shared and local blocks (track_io_timing on)", io_timing=True),
    CounterField("block_write_seconds", IO_WRITE, "ms",
                 "Time writing shared and local blocks (track_io_timing on)", io_timing=True),
    CounterField("wal_bytes", WAL_BYTES, "count", "WAL generated, bytes"),
    CounterField("wal_records", WAL_RECORDS, "count", "WAL records generated"),
    CounterField("jit_seconds", JIT, "ms", "JIT generation, inlining, optimization, "
                 "emission (and deform) time", min_version=(1, 10)),
    CounterField("jit_functions", JIT_FUNCTIONS, "count", "Functions JIT-compiled",
                 min_version=(1, 10)),
)
COUNTER_LABELS = ("datname", "user", "queryid", "toplevel")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def counters_sql(extension_version: str, schema: str = "public") -> str:
    """The counters query for an installed extension version (column names changed)."""
    version = _version_tuple(extension_version)
    exec_names = version >= (1, 8)
    v111 = version >= (1, 11)
    jit = ("jit_generation_time + jit_inlining_time + jit_optimization_time"
           " + jit_emission_time")
    return COUNTERS_SQL.format(
        schema=schema,
        toplevel="toplevel" if version >= (1, 9) else "true",
        total="total_exec_time" if exec_names else "total_time",
        stddev="stddev_exec_time" if exec_names else "stddev_time",
        max="max_exec_time" if exec_names else "max_time",
        io="shared_blk_read_time + local_blk_read_time" if v111 else "blk_read_time",
        io_write="shared_blk_write_time + local_blk_write_time" if v111 else "blk_write_time",
        plan="total_plan_time" if exec_names else "0::float8",
        wal_bytes="wal_bytes::bigint" if exec_names else "0::bigint",
        wal_records="wal_records" if exec_names else "0::bigint",
        jit=(jit + " + jit_deform_time" if v111 else jit) if version >= (1, 10) else "0::float8",
        jit_functions="jit_functions" if version >= (1, 10) else "0::bigint",
        stats_since="stats_since" if v111 else "NULL::timestamptz",
    )


def counter_fields(extension_version: str, track_io_timing: bool) -> tuple[CounterField, ...]:
    """The cumulative families this extension version (and track_io_timing) can fill."""
    version = _version_tuple(extension_version)
    return tuple(f for f in COUNTER_FIELDS
                 if version >= f.min_version and (track_io_timing or not f.io_timing))


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement's activity over the interval (or the `other` remainder)."""

    queryid: str
    datname: str
    user: str
    toplevel: str
    query: str
    calls: int
    time_s: float
    mean_s: float | None
    stddev_s: float | None
    max_s: float | None
    rows: int
    shared_hit_bytes: int
    shared_read_bytes: int
    temp_read_bytes: int
    temp_written_bytes: int
    io_read_s: float
    slow: bool
    exported: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "queryid": self.queryid, "datname": self.datname, "user": self.user,
            "toplevel": self.toplevel == "true", "query": self.query, "calls": self.calls,
            "total_seconds": self.time_s, "mean_seconds": self.mean_s,
            "stddev_seconds": self.stddev_s, "max_seconds": self.max_s, "rows": self.rows,
            "shared_hit_bytes": self.shared_hit_bytes,
            "shared_read_bytes": self.shared_read_bytes,
            "temp_read_bytes": self.temp_read_bytes,
            "temp_written_bytes": self.temp_written_bytes, "slow": self.slow,
            "exported": self.exported,
        }


@dataclass(frozen=True)
class StatementsData:
    """A statements snapshot: the interval's statements, slowest total first."""

    extension_version: str
    interval_s: float | None  # None on the first scrape: a baseline, no deltas yet
    statements: tuple[Statement, ...]  # calls > 0 in the interval, or exported
    other: Statement | None
    tracked: int
    max_entries: int | None
    dealloc_total: int | None  # None before 1.9 (PostgreSQL 13): not known, not zero
    dealloc_in_interval: int | None
    resets_total: int
    reset_in_interval: bool
    hidden: int  # entries whose queryid this role may not see
    # Cumulative counters (exported top K and `other`) and what this version fills.
    counters: tuple[CounterRow, ...] = ()
    counter_fields: tuple[CounterField, ...] = ()
    block_size: int = 8192
    track_io_timing: bool = False
    evicted_in_interval: int | None = None  # entries gone (or re-added) without a reset
    evicted_total: int = 0
    own: int = 0  # metricsd's own statements, left out


def hysteresis_top(
    ranked: list[tuple[Key, float]], current: set[Key], k: int
) -> set[Key]:
    """The keys to export: the top k by value, but incumbents stay while near the top.

    `ranked` is sorted by value, highest first. An incumbent stays while its rank is below
    k * STAY_FACTOR; a newcomer takes a free slot, or replaces the weakest incumbent when
    it beats it by ENTER_MARGIN. So two statements of about equal weight do not swap
    series every interval, while a much hotter newcomer gets in at once.
    """
    stay_rank = max(k, math.ceil(k * STAY_FACTOR))
    keep: list[tuple[Key, float]] = [
        (key, value) for rank, (key, value) in enumerate(ranked)
        if key in current and rank < stay_rank
    ][:k]
    chosen = {key for key, _ in keep}
    newcomers = [(key, value) for key, value in ranked if key not in chosen and value > 0]
    i = 0
    while len(keep) < k and i < len(newcomers):
        keep.append(newcomers[i])
        chosen.add(newcomers[i][0])
        i += 1
    for key, value in newcomers[i:]:
        weakest = min(range(len(keep)), key=lambda j: keep[j][1])
        if value <= keep[weakest][1] * (1 + ENTER_MARGIN):
            break  # newcomers are sorted: no later one can beat the margin either
        chosen.discard(keep[weakest][0])
        keep[weakest] = (key, value)
        chosen.add(key)
    return chosen


@register
class StatementsCollector(PgCollector):
    """Per-interval statement statistics from pg_stat_statements."""

    name = "statements"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_statements_calls", "gauge", "Calls in the interval", *KEY_LABELS),
        spec("metricsd_pg_statements_time_seconds", "gauge",
             "Execution time in the interval", *KEY_LABELS),
        spec("metricsd_pg_statements_mean_seconds", "gauge",
             "Mean execution time in the interval", *KEY_LABELS),
        spec("metricsd_pg_statements_stddev_seconds", "gauge",
             "Standard deviation of execution time in the interval", *KEY_LABELS),
        spec("metricsd_pg_statements_max_seconds", "gauge",
             "Longest execution in the interval, when known", *KEY_LABELS),
        spec("metricsd_pg_statements_rows", "gauge", "Rows in the interval", *KEY_LABELS),
        spec("metricsd_pg_statements_shared_hit_bytes", "gauge",
             "Shared buffer hits in the interval, bytes", *KEY_LABELS),
        spec("metricsd_pg_statements_shared_read_bytes", "gauge",
             "Shared blocks read in the interval, bytes", *KEY_LABELS),
        spec("metricsd_pg_statements_temp_read_bytes", "gauge",
             "Temp blocks read in the interval, bytes", *KEY_LABELS),
        spec("metricsd_pg_statements_temp_written_bytes", "gauge",
             "Temp blocks written in the interval, bytes", *KEY_LABELS),
        spec("metricsd_pg_statements_slow", "gauge",
             "1 when the interval mean exceeds postgres.slow_query_ms", *KEY_LABELS),
        spec("metricsd_pg_statements_query_info", "gauge",
             "Normalised query text of an exported statement; always 1", *KEY_LABELS, "query"),
        spec("metricsd_pg_statements_interval_seconds", "gauge",
             "Length of the interval the statement values cover"),
        spec("metricsd_pg_statements_tracked", "gauge", "Entries in pg_stat_statements"),
        spec("metricsd_pg_statements_max_entries", "gauge", "The pg_stat_statements.max setting"),
        spec("metricsd_pg_statements_dealloc", "counter",
             "pg_stat_statements eviction runs (pg_stat_statements.max too small)"),
        spec("metricsd_pg_statements_resets", "counter", "Statistics resets metricsd detected"),
        spec("metricsd_pg_statements_track_io_timing", "gauge",
             "1 when track_io_timing is on (block I/O time per statement is measured)"),
        spec("metricsd_pg_stat_statements_evicted", "counter",
             "Statements evicted from pg_stat_statements (their work since the previous "
             "scrape is lost): entries gone without a reset, or eviction rounds x entries "
             "per round when larger"),
        *(spec(f.family, "counter", f"{f.doc}; cumulative, kept by metricsd (never goes "
               "backwards)", *COUNTER_LABELS) for f in COUNTER_FIELDS),
    )

    def __init__(self, target: str, config: PostgresConfig) -> None:
        super().__init__(target, config)
        self._prev: dict[Key, tuple[Any, ...]] | None = None
        self._prev_since: dict[Key, Any] = {}
        self._prev_time = 0.0
        self._counters = StatementCounters([f.column for f in COUNTER_FIELDS],
                                           config.top_statements)
        self._own: set[Key] = set()
        self._evicted_total = 0
        self._prev_info: tuple[int, Any] | None = None
        self._texts: dict[Key, str] = {}
        self._names: dict[tuple[str, int], str] = {}
        self._exported: set[Key] = set()
        self._dealloc_total = 0
        self._resets_total = 0
        self._warned_dealloc = False
        self._evicted_in_interval = 0

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        ext = await fetch_one(conn, EXTENSION_SQL)
        if ext["version"] is None:
            raise CollectorStatusError(
                "missing_extension",
                "pg_stat_statements is not installed in this database: CREATE EXTENSION "
                "pg_stat_statements",
            )
        if ext["max_entries"] is None:
            raise CollectorStatusError(
                "missing_extension",
                "pg_stat_statements is not loaded: add it to shared_preload_libraries and "
                "restart PostgreSQL",
            )
        version: str = ext["version"]
        schema: str = ext["schema"]
        try:
            records = await conn.fetch(counters_sql(version, schema))
        except asyncpg.ObjectNotInPrerequisiteStateError as exc:
            raise CollectorStatusError("missing_extension", str(exc)) from exc
        has_info = _version_tuple(version) >= (1, 9)
        info_row = await fetch_one(conn, INFO_SQL.format(schema=schema)) if has_info else None
        # queryid is NULL on entries of other roles when this role lacks pg_read_all_stats.
        end = 4 + N_COLUMNS
        current: dict[Key, tuple[Any, ...]] = {
            r[:4]: r[4:end] for r in records if r[2] is not None}
        hidden = len(records) - len(current)
        await self._fetch_names(conn, current)
        await self._fetch_texts(conn, current, schema)
        # metricsd's own statements (OWN_MARKER) would compete for the top K: left out.
        own = [key for key in current if key in self._own]
        for key in own:
            del current[key]
        since = {r[:4]: r[end] for r in records if r[end] is not None and r[:4] in current}
        max_entries = int(ext["max_entries"]) if ext["max_entries"].isdigit() else None
        data = self._diff(current, since, info_row, now, info.block_size, version,
                          max_entries, hidden)
        fields = counter_fields(version, bool(ext["track_io_timing"]))
        hidden_note = (f"{hidden} entries of other roles have no queryid or text and are left"
                       f" out; {PRIVILEGE_HINT}" if hidden else "")
        return self.snapshot(now, replace(
            data, counter_fields=fields, block_size=info.block_size,
            track_io_timing=bool(ext["track_io_timing"]), own=len(own)), hidden_note)

    async def _fetch_names(self, conn: asyncpg.Connection, current: dict[Key, Any]) -> None:
        names = self._names
        users = {k[0] for k in current}
        databases = {k[1] for k in current}
        if all(("r", u) in names for u in users) and all(("d", d) in names for d in databases):
            return
        rows = await conn.fetch(NAMES_SQL)
        self._names = {(row["kind"], row["oid"]): row["name"] for row in rows}

    async def _fetch_texts(
        self, conn: asyncpg.Connection, current: dict[Key, Any], schema: str
    ) -> None:
        texts = self._texts
        missing = [key for key in current if key not in texts]
        if missing:
            rows = await conn.fetch(TEXT_SQL.format(schema=schema), self.config.query_text_length,
                                    list({key[2] for key in missing}), f"%{OWN_MARKER}")
            found = {(row["userid"], row["dbid"], row["queryid"]): row["query"] for row in rows}
            own = {(row["userid"], row["dbid"], row["queryid"]) for row in rows if row["own"]}
            for key in missing:
                texts[key] = found.get(key[:3], "")
                if key[:3] in own:
                    self._own.add(key)
        limit = self.config.query_text_cache
        if len(texts) > limit:
            # Forget statements gone from pg_stat_statements first, then the oldest.
            for key in [k for k in texts if k not in current][:len(texts) - limit]:
                del texts[key]
            for key in list(texts)[:max(0, len(texts) - limit)]:
                del texts[key]

    def _diff(
        self,
        current: dict[Key, tuple[Any, ...]],
        since: dict[Key, Any],
        info_row: Any,
        now: float,
        block_size: int,
        version: str,
        max_entries: int | None,
        hidden: int,
    ) -> StatementsData:
        prev, prev_info, prev_since = self._prev, self._prev_info, self._prev_since
        self._prev_since = since
        info = (int(info_row["dealloc"]), info_row["stats_reset"]) if info_row else None
        reset = prev_info is not None and info is not None and info[1] != prev_info[1]
        dealloc = 0
        if info is not None and prev_info is not None:
            # After a full reset dealloc restarts from zero, so what is there now is new.
            dealloc = info[0] if reset or info[0] < prev_info[0] else info[0] - prev_info[0]
        self._prev, self._prev_info = current, info
        interval = now - self._prev_time
        self._prev_time = now
        dealloc_total = self._dealloc_total + dealloc if info is not None else None
        if prev is None:
            self._counters.add({}, ())  # `other` exists (at 0) from the baseline on
            return StatementsData(version, None, (), None, len(current), max_entries,
                                  dealloc_total, 0 if info else None, self._resets_total,
                                  False, hidden, counters=self._counter_rows(),
                                  evicted_total=self._evicted_total)
        if dealloc:
            self._dealloc_total += dealloc
            if not self._warned_dealloc:
                self._warned_dealloc = True
                log.warning(
                    "postgres target %s: pg_stat_statements ran %d eviction rounds (each drops"
                    " the least-used 5%% of entries, at least 10); raise "
                    "pg_stat_statements.max (now %s) or statements are lost between scrapes",
                    self.target, dealloc, max_entries,
                )
        went_back = False
        readded = 0
        deltas: dict[Key, tuple[Any, ...]] = {}
        known_max: dict[Key, float | None] = {}
        for key, row in current.items():
            before = None if reset else prev.get(key)
            if before is not None and since.get(key) != prev_since.get(key, since.get(key)):
                readded += 1  # 17+: evicted and created again between two scrapes
                before = None
            elif before is not None and (row[CALLS] < before[CALLS]
                                         or row[TOTAL] < before[TOTAL]):
                went_back = True  # this entry was reset (or evicted and re-created)
                before = None
            if before is None:
                deltas[key] = row
                known_max[key] = row[MAX]
                continue
            calls = row[CALLS] - before[CALLS]
            if calls == 0:
                continue
            deltas[key] = (
                calls, row[TOTAL] - before[TOTAL], _interval_sum_squares(row, before),
                None, *(max(0, a - b) for a, b in zip(row[ROWS:], before[ROWS:], strict=True)),
            )
            known_max[key] = row[MAX] if row[MAX] > before[MAX] else None
        if reset or went_back:
            self._resets_total += 1
        # Entries gone without a full reset were evicted (14+: only when dealloc grew; an
        # entry reset one by one also disappears). On 13 there is no dealloc to tell.
        # Each eviction round drops max(10, 5 % of the entries): most of a storm's entries
        # are created and evicted between two scrapes, unseen, so take the larger figure.
        evicted = 0
        if not reset and (info is None or dealloc):
            evicted = sum(1 for key in prev if key not in current) + readded
            per_round = max(10, (max_entries or 0) * 5 // 100)
            evicted = max(evicted, dealloc * per_round)
        self._evicted_total += evicted
        self._evicted_in_interval = evicted
        return self._build(deltas, known_max, current, interval, block_size, version,
                           max_entries, dealloc if info is not None else None,
                           reset or went_back, hidden)

    def _build(
        self,
        deltas: dict[Key, tuple[Any, ...]],
        known_max: dict[Key, float | None],
        current: dict[Key, tuple[Any, ...]],
        interval: float,
        block_size: int,
        version: str,
        max_entries: int | None,
        dealloc: int | None,
        reset: bool,
        hidden: int,
    ) -> StatementsData:
        ranked = sorted(((k, float(d[TOTAL])) for k, d in deltas.items() if d[CALLS] > 0),
                        key=lambda kv: kv[1], reverse=True)
        live = {k for k in self._exported if k in current}
        # An idle incumbent ranks last but keeps its slot until a newcomer needs it, so a
        # statement that pauses for an interval does not lose its series (and counters).
        active = {k for k, _ in ranked}
        ranked += sorted(((k, 0.0) for k in live if k not in active), key=lambda kv: kv[0])
        self._exported = hysteresis_top(ranked, live, self.config.top_statements)
        self._counters.add(deltas, self._exported)
        slow_ms = self.config.slow_query_ms
        names, texts = self._names, self._texts
        out: list[Statement] = []
        other = [0, 0.0, 0, 0, 0, 0, 0, 0.0]
        for key in {*deltas, *self._exported}:
            d = deltas.get(key)
            exported = key in self._exported
            if d is None:  # an exported statement idle this interval: zeros, not a gap
                d = (0, 0.0, 0.0, None, 0, 0, 0, 0, 0, 0.0)
            calls = int(d[CALLS])
            total_ms = max(0.0, float(d[TOTAL]))
            if not exported:
                for i, v in enumerate((calls, total_ms, d[ROWS], d[HIT], d[READ], d[TREAD],
                                       d[TWRITE], d[IO] or 0.0)):
                    other[i] += v
            if calls == 0 and not exported:
                continue
            mean_ms = total_ms / calls if calls else None
            if d is current.get(key):  # a new entry: its own stddev is the interval's
                stddev_ms = float(d[STDDEV])
            elif calls and mean_ms is not None:
                var = float(d[STDDEV]) / calls - mean_ms * mean_ms
                stddev_ms = math.sqrt(var) if var > 0 else 0.0
            else:
                stddev_ms = None
            max_ms = known_max.get(key)
            userid, dbid, queryid, toplevel = key
            out.append(Statement(
                queryid=str(queryid),
                datname=names.get(("d", dbid), str(dbid)),
                user=names.get(("r", userid), str(userid)),
                toplevel="true" if toplevel else "false",
                query=texts.get(key, ""),
                calls=calls,
                time_s=total_ms / 1000.0,
                mean_s=None if mean_ms is None else mean_ms / 1000.0,
                stddev_s=None if stddev_ms is None else stddev_ms / 1000.0,
                max_s=None if max_ms is None else float(max_ms) / 1000.0,
                rows=int(d[ROWS]),
                shared_hit_bytes=int(d[HIT]) * block_size,
                shared_read_bytes=int(d[READ]) * block_size,
                temp_read_bytes=int(d[TREAD]) * block_size,
                temp_written_bytes=int(d[TWRITE]) * block_size,
                io_read_s=float(d[IO] or 0.0) / 1000.0,
                slow=mean_ms is not None and mean_ms > slow_ms,
                exported=exported,
            ))
        out.sort(key=lambda s: (-s.time_s, s.queryid))
        calls, total_ms = int(other[0]), float(other[1])
        other_stmt = Statement(
            queryid="other", datname="", user="", toplevel="", query="", calls=calls,
            time_s=total_ms / 1000.0,
            mean_s=total_ms / calls / 1000.0 if calls else None,
            stddev_s=None, max_s=None, rows=int(other[2]),
            shared_hit_bytes=int(other[3]) * block_size,
            shared_read_bytes=int(other[4]) * block_size,
            temp_read_bytes=int(other[5]) * block_size,
            temp_written_bytes=int(other[6]) * block_size,
            io_read_s=float(other[7]) / 1000.0,
            slow=calls > 0 and total_ms / calls > slow_ms, exported=True,
        )
        return StatementsData(
            version, interval, tuple(out), other_stmt, len(current), max_entries,
            self._dealloc_total if dealloc is not None else None, dealloc,
            self._resets_total, reset, hidden, counters=self._counter_rows(),
            evicted_in_interval=self._evicted_in_interval, evicted_total=self._evicted_total,
        )

    def _counter_rows(self) -> tuple[CounterRow, ...]:
        names = self._names
        return self._counters.rows({
            key: (names.get(("d", key[1]), str(key[1])), names.get(("r", key[0]), str(key[0])))
            for key in self._counters.values})

    def fill(self, out: FamilyBuilder, data: StatementsData) -> None:
        out.add("metricsd_pg_statements_tracked", data.tracked)
        out.add("metricsd_pg_statements_max_entries", data.max_entries)
        out.add("metricsd_pg_statements_dealloc", data.dealloc_total)
        out.add("metricsd_pg_statements_resets", data.resets_total)
        out.add("metricsd_pg_statements_track_io_timing", 1.0 if data.track_io_timing else 0.0)
        out.add("metricsd_pg_stat_statements_evicted", data.evicted_total)
        fields = [(f.family, f.column, f.scale(data.block_size)) for f in data.counter_fields]
        positions = {column: i for i, column in enumerate(c.column for c in COUNTER_FIELDS)}
        for row in data.counters:
            labels = {"datname": row.datname, "user": row.user, "queryid": row.queryid,
                      "toplevel": row.toplevel}
            out.add_series(labels, [(family, _number(row.values[positions[column]] * scale))
                                    for family, column, scale in fields])
        if data.interval_s is None:
            return
        out.add("metricsd_pg_statements_interval_seconds", data.interval_s)
        rows = [s for s in data.statements if s.exported]
        if data.other is not None:
            rows.append(data.other)
        for s in rows:
            labels = {"datname": s.datname, "user": s.user, "queryid": s.queryid,
                      "toplevel": s.toplevel}
            out.add_series(labels, (
                ("metricsd_pg_statements_calls", s.calls),
                ("metricsd_pg_statements_time_seconds", s.time_s),
                ("metricsd_pg_statements_mean_seconds", s.mean_s),
                ("metricsd_pg_statements_stddev_seconds", s.stddev_s),
                ("metricsd_pg_statements_max_seconds", s.max_s),
                ("metricsd_pg_statements_rows", s.rows),
                ("metricsd_pg_statements_shared_hit_bytes", s.shared_hit_bytes),
                ("metricsd_pg_statements_shared_read_bytes", s.shared_read_bytes),
                ("metricsd_pg_statements_temp_read_bytes", s.temp_read_bytes),
                ("metricsd_pg_statements_temp_written_bytes", s.temp_written_bytes),
                ("metricsd_pg_statements_slow", 1.0 if s.slow else 0.0),
            ))
            if s.queryid != "other" and self.config.export_query_text:
                query = " ".join(s.query.split())[:QUERY_LABEL_LENGTH]
                out.add("metricsd_pg_statements_query_info", 1.0, **labels, query=query)


def _number(value: float) -> float | int:
    """Whole numbers as ints, so counters of calls and bytes print without a fraction."""
    return int(value) if value.is_integer() else value


def _interval_sum_squares(row: tuple[Any, ...], before: tuple[Any, ...]) -> float:
    """Sum of squared times in the interval, rebuilt from calls, mean and stddev.

    pg_stat_statements keeps a population stddev, so sum(x^2) = n * (stddev^2 + mean^2);
    the difference of two such sums is the interval's. The caller turns it back into an
    interval stddev with var = sumsq / n - mean^2.
    """
    def sum_squares(r: tuple[Any, ...]) -> float:
        n = r[CALLS]
        if not n:
            return 0.0
        mean = r[TOTAL] / n
        return float(n * (r[STDDEV] * r[STDDEV] + mean * mean))

    return max(0.0, sum_squares(row) - sum_squares(before))
