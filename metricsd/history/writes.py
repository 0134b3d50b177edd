"""The transactions the writer thread runs: merge deltas, record facts, cut old rows.

Each function takes the connection and returns quickly; they run on the writer thread only.
Beacon rows merge by adding counts and sketch buckets, so partial hours written before a
restart and the rest of the hour written after it add up.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metricsd.history.db import TIMED
from metricsd.history.rollup import Acc, Key
from metricsd.history.sketch import Sketch


def key_text(key: Key) -> str:
    """A series key as stored: a JSON array of its label values."""
    return json.dumps(list(key), ensure_ascii=False, separators=(",", ":"))


TAG_SLOTS = 8  # tag counts kept per row (5 status classes, 3 ratings)


def series_id(conn: sqlite3.Connection, family: str, key: Key, ids: dict[tuple[str, Key], int]
              ) -> int:
    """The id of a (family, key) series, created on first use; `ids` caches them."""
    found = ids.get((family, key))
    if found is None:
        text = key_text(key)
        conn.execute("INSERT OR IGNORE INTO series (family, key) VALUES (?, ?)", (family, text))
        found = int(conn.execute("SELECT id FROM series WHERE family = ? AND key = ?",
                                 (family, text)).fetchone()[0])
        ids[(family, key)] = found
    return found


def tag_bytes(tags: Sequence[int]) -> bytes:
    out = np.zeros(TAG_SLOTS, dtype="<u4")
    n = min(len(tags), TAG_SLOTS)
    out[:n] = tags[:n]
    return out.tobytes()


def merge_beacons(conn: sqlite3.Connection, deltas: Mapping[tuple[int, str, Key], Acc],
                  ids: dict[tuple[str, Key], int] | None = None) -> int:
    """Add each (hour, family, key) delta to what the file holds."""
    ids = {} if ids is None else ids
    get = conn.execute
    for (hour, family, key), acc in deltas.items():
        sid = series_id(conn, family, key, ids)
        row = get("SELECT count, total, tags, bucket_idx, bucket_n FROM beacon_hours "
                  "WHERE hour = ? AND series = ?", (hour, sid)).fetchone()
        tags = np.frombuffer(tag_bytes(acc.tags), dtype="<u4").copy()
        sketch = Sketch(dict(acc.buckets))
        count, total = acc.count, acc.total
        if row is not None:
            count += row[0]
            total += row[1]
            tags += np.frombuffer(row[2], dtype="<u4")
            sketch.merge(Sketch.from_parts(row[3], row[4]))
        idx, n = sketch.to_parts()
        get("INSERT OR REPLACE INTO beacon_hours VALUES (?, ?, ?, ?, ?, ?, ?)",
            (hour, sid, count, total, tags.tobytes(), idx, n))
    return len(deltas)


@dataclass(frozen=True)
class StatementFact:
    """One statement's activity in one scrape interval."""

    hour: int
    target: str
    queryid: str
    query: str
    calls: int
    time_s: float
    rows: int
    mean_s: float | None
    plan_hash: str | None
    at: float


def add_statements(conn: sqlite3.Connection, facts: Sequence[StatementFact]) -> None:
    for f in facts:
        conn.execute(
            "INSERT INTO statement_hours VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (hour, target, queryid) DO UPDATE SET "
            "calls = calls + excluded.calls, time_s = time_s + excluded.time_s, "
            "rows = rows + excluded.rows, "
            "max_mean_s = max(coalesce(max_mean_s, 0), coalesce(excluded.max_mean_s, 0)), "
            "plan_hash = coalesce(excluded.plan_hash, plan_hash)",
            (f.hour, f.target, f.queryid, f.calls, f.time_s, f.rows, f.mean_s, f.plan_hash))
        conn.execute("INSERT OR IGNORE INTO statements VALUES (?, ?, ?, ?)",
                     (f.target, f.queryid, f.query, f.at))


def add_plan_changes(conn: sqlite3.Connection,
                     changes: Sequence[tuple[str, str, float, str | None, str | None, bool]]
                     ) -> None:
    conn.executemany("INSERT OR REPLACE INTO plan_changes VALUES (?, ?, ?, ?, ?, ?)",
                     [(*c[:5], int(c[5])) for c in changes])


def set_indexes(conn: sqlite3.Connection, hour: int,
                rows: Sequence[tuple[str, str, str, int, bool, bool]]) -> None:
    """Cumulative scans per index at the latest sample of the hour (last one wins)."""
    conn.executemany("INSERT OR REPLACE INTO index_hours VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [(hour, t, n, tbl, scans, int(unused), int(valid))
                      for t, n, tbl, scans, unused, valid in rows])


@dataclass(frozen=True)
class TargetFact:
    """One sample of a target's connections, cache hit ratio and replication lag."""

    hour: int
    target: str
    connections: int | None
    max_connections: int | None
    hit_ratio: float | None
    lag_s: float | None


def add_targets(conn: sqlite3.Connection, facts: Sequence[TargetFact]) -> None:
    for f in facts:
        util = (f.connections / f.max_connections
                if f.connections is not None and f.max_connections else None)
        conn.execute(
            "INSERT INTO target_hours VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (hour, target) DO UPDATE SET "
            "peak_connections = max(coalesce(peak_connections, excluded.peak_connections), "
            "  coalesce(excluded.peak_connections, peak_connections)), "
            "max_connections = coalesce(excluded.max_connections, max_connections), "
            "peak_utilisation = max(coalesce(peak_utilisation, excluded.peak_utilisation), "
            "  coalesce(excluded.peak_utilisation, peak_utilisation)), "
            "hit_ratio_sum = hit_ratio_sum + excluded.hit_ratio_sum, "
            "hit_ratio_n = hit_ratio_n + excluded.hit_ratio_n, "
            "peak_lag_s = max(coalesce(peak_lag_s, excluded.peak_lag_s), "
            "  coalesce(excluded.peak_lag_s, peak_lag_s))",
            (f.hour, f.target, f.connections, f.max_connections, util,
             f.hit_ratio or 0.0, int(f.hit_ratio is not None), f.lag_s))


def add_alert_events(conn: sqlite3.Connection,
                     events: Sequence[tuple[float, str, str, str, Mapping[str, str]]]) -> None:
    """(at, fingerprint, kind fired|resolved|notified, alert name, labels)."""
    conn.executemany("INSERT OR IGNORE INTO alert_events VALUES (?, ?, ?, ?, ?)",
                     [(at, fp, kind, name, json.dumps(dict(labels), sort_keys=True))
                      for at, fp, kind, name, labels in events])


def add_quality(conn: sqlite3.Connection, hour: int, values: Mapping[str, float]) -> None:
    for metric, value in values.items():
        conn.execute("INSERT INTO quality_hours VALUES (?, ?, ?) ON CONFLICT (hour, metric) "
                     "DO UPDATE SET value = value + excluded.value", (hour, metric, value))


def mark_up(conn: sqlite3.Connection, minute: int) -> None:
    """metricsd was running during this minute (gaps in these are downtime)."""
    conn.execute("INSERT OR IGNORE INTO uptime_minutes VALUES (?)", (minute,))


def save_report(conn: sqlite3.Connection, period: str, built_at: float, body: Any) -> None:
    conn.execute("INSERT OR REPLACE INTO reports VALUES (?, ?, ?)",
                 (period, built_at, json.dumps(body)))


def cut(conn: sqlite3.Connection, before: float) -> int:
    """Delete everything older than `before` (seconds); return rows deleted."""
    removed = 0
    for table, column in TIMED.items():
        removed += conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (before,)).rowcount
    conn.execute("DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM beacon_hours b "
                 "WHERE b.series = series.id)")
    conn.execute("DELETE FROM statements WHERE NOT EXISTS (SELECT 1 FROM statement_hours h "
                 "WHERE h.target = statements.target AND h.queryid = statements.queryid)")
    return removed


def oldest(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT min(hour) FROM beacon_hours").fetchone()
    other = conn.execute("SELECT min(hour) FROM statement_hours").fetchone()
    values = [v for v in (row[0], other[0]) if v is not None]
    return float(min(values)) if values else None


def bound_size(conn: sqlite3.Connection, max_bytes: int) -> int:
    """Drop the oldest days until pages in use fit `max_bytes`; return days dropped."""
    dropped = 0
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    while True:
        used = (conn.execute("PRAGMA page_count").fetchone()[0]
                - conn.execute("PRAGMA freelist_count").fetchone()[0]) * page
        first = oldest(conn)
        if used <= max_bytes or first is None:
            return dropped
        cut(conn, first + 86400)
        dropped += 1
