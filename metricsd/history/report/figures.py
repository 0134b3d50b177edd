"""One period's figures read from the history file: sketches merged, counters summed.

Quantiles come from the merged hourly sketches (relative error <= 1%, see sketch.py), never
from averaged hourly percentiles; counts are exact sums of the hourly rows.
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metricsd.history.report.period import Period
from metricsd.history.sketch import Sketch
from metricsd.history.writes import TAG_SLOTS

API_FAMILY = "api"
API_LABELS = ("service", "route", "method")
STATUS_5XX = 4  # index of "5xx" in the api family's tags (store.series.STATUS_CLASSES)
VITALS = ("LCP", "INP", "CLS", "FCP", "TTFB")
RATINGS = ("good", "needs-improvement", "poor")
_OFFSET = 1 << 15  # -sketch.ZERO


class Series:
    """One series over the period: count, exact tag counts and the merged sketch.

    Hourly pieces are kept as their stored bytes and merged once, with numpy, when first
    asked for (a week at 10,000 series is 1.7 million hourly pieces).
    """

    __slots__ = ("_idx", "_n", "_sketch", "_tag_blobs", "_tags", "count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self._tag_blobs: list[bytes] = []
        self._idx: list[bytes] = []
        self._n: list[bytes] = []
        self._tags: list[int] | None = None
        self._sketch: Sketch | None = None

    def add(self, tags: bytes, idx: bytes, n: bytes) -> None:
        self._tag_blobs.append(tags)
        self._idx.append(idx)
        self._n.append(n)

    def absorb(self, other: Series) -> None:
        """Add another series (a family's total)."""
        self.count += other.count
        self.total += other.total
        self._tag_blobs += other._tag_blobs
        self._idx += other._idx
        self._n += other._n
        self._tags = self._sketch = None

    @property
    def tags(self) -> list[int]:
        if self._tags is None:
            blob = b"".join(self._tag_blobs)
            rows = np.frombuffer(blob, dtype="<u4").reshape(-1, TAG_SLOTS)
            self._tags = rows.sum(axis=0, dtype=np.int64).tolist()
        return self._tags

    @property
    def sketch(self) -> Sketch:
        if self._sketch is None:
            idx = np.frombuffer(b"".join(self._idx), dtype="<i2")
            counts = np.frombuffer(b"".join(self._n), dtype="<u4").astype(np.int64)
            # Indexes fit in 16 bits (sketch.ZERO is the lowest): one dense bincount, no sort.
            dense = np.bincount(idx.astype(np.int64) + _OFFSET, weights=counts,
                                minlength=1 << 16)
            (present,) = np.nonzero(dense)
            self._sketch = Sketch(dict(zip((present - _OFFSET).tolist(),
                                           dense[present].astype(np.int64).tolist(),
                                           strict=True)))
        return self._sketch


@dataclass
class Statement:
    target: str
    queryid: str
    query: str
    calls: int = 0
    time_s: float = 0.0
    rows: int = 0
    first_seen: float = 0.0
    plan_hash: str | None = None

    @property
    def mean_s(self) -> float | None:
        return self.time_s / self.calls if self.calls else None


@dataclass
class Figures:
    """Everything a report section needs about one period."""

    period: Period
    beacons: dict[str, dict[tuple[str, ...], Series]] = field(default_factory=dict)
    daily: dict[str, dict[str, Series]] = field(default_factory=dict)  # family -> day -> all
    statements: dict[tuple[str, str], Statement] = field(default_factory=dict)
    plan_changes: list[dict[str, Any]] = field(default_factory=list)
    indexes: list[dict[str, Any]] = field(default_factory=list)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[tuple[float, str, str, str, dict[str, str]]] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)
    up_minutes: list[int] = field(default_factory=list)
    first_up_minute: int | None = None  # the first minute the file ever recorded

    def merged(self, family: str) -> Series:
        """Every series of a family together (the fleet-wide or site-wide distribution)."""
        out = Series()
        for s in self.beacons.get(family, {}).values():
            out.absorb(s)
        return out


def read(conn: sqlite3.Connection, period: Period) -> Figures:
    """Read one period from an open history connection."""
    fig = Figures(period)
    start, end = period.start, period.end
    days = period.days()

    names = {sid: (family, tuple(json.loads(key)))
             for sid, family, key in conn.execute("SELECT id, family, key FROM series")}
    by_id: dict[int, Series] = {}
    for sid, count, total in conn.execute(
            "SELECT series, sum(count), sum(total) FROM beacon_hours WHERE hour >= ? AND "
            "hour < ? GROUP BY series", (start, end)):
        if sid not in names:  # pragma: no cover - removed by retention meanwhile
            continue
        family, key = names[sid]
        s = by_id[sid] = fig.beacons.setdefault(family, {}).setdefault(key, Series())
        s.count += count
        s.total += total
    day_starts = [a for _, a, _ in days]
    day_names = [name for name, _, _ in days]
    family_of = {sid: names[sid][0] for sid in by_id}
    daily: dict[tuple[str, int], Series] = {}  # (family, day index) -> every series
    for hour, sid, tags, idx, n in conn.execute(
            "SELECT hour, series, tags, bucket_idx, bucket_n FROM beacon_hours "
            "WHERE hour >= ? AND hour < ?", (start, end)):
        piece = by_id.get(sid)
        if piece is None:  # pragma: no cover
            continue
        piece.add(tags, idx, n)
        slot = (family_of[sid], bisect_right(day_starts, hour) - 1)
        d = daily.get(slot)
        if d is None:
            d = daily[slot] = Series()
        d.add(tags, idx, n)
    for (family, day), d in daily.items():
        fig.daily.setdefault(family, {})[day_names[day]] = d
    for target, qid, calls, time_s, rows, plan, query, first in conn.execute(
            "SELECT h.target, h.queryid, sum(h.calls), sum(h.time_s), sum(h.rows), "
            "max(h.plan_hash), s.query, s.first_seen FROM statement_hours h "
            "LEFT JOIN statements s ON s.target = h.target AND s.queryid = h.queryid "
            "WHERE h.hour >= ? AND h.hour < ? GROUP BY h.target, h.queryid", (start, end)):
        fig.statements[(target, qid)] = Statement(target, qid, query or "", calls, time_s, rows,
                                                  first or 0.0, plan)
    for target, qid, at, old, new, regression in conn.execute(
            "SELECT target, queryid, at, old_hash, new_hash, regression FROM plan_changes "
            "WHERE at >= ? AND at < ? ORDER BY at", (start, end)):
        fig.plan_changes.append({"target": target, "queryid": qid, "at": at,
                                 "old_hash": old, "new_hash": new,
                                 "regression": bool(regression)})
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    first_scans: dict[tuple[str, str], int] = {}
    for _hour, target, name, tbl, scans, unused, valid in conn.execute(
            "SELECT hour, target, name, tbl, scans, unused, valid FROM index_hours "
            "WHERE hour >= ? AND hour < ? ORDER BY hour", (start, end)):
        first_scans.setdefault((target, name), scans)
        latest[(target, name)] = {"target": target, "index": name, "table": tbl,
                                  "scans_total": scans, "unused": bool(unused),
                                  "valid": bool(valid)}
    for k, row in latest.items():
        row["scans"] = max(0, row["scans_total"] - first_scans[k])
        fig.indexes.append(row)
    agg: dict[str, dict[str, Any]] = defaultdict(dict)
    for target, peak_conn, max_conn, util, hsum, hn, lag in conn.execute(
            "SELECT target, max(peak_connections), max(max_connections), "
            "max(peak_utilisation), sum(hit_ratio_sum), sum(hit_ratio_n), max(peak_lag_s) "
            "FROM target_hours WHERE hour >= ? AND hour < ? GROUP BY target", (start, end)):
        agg[target] = {"peak_connections": peak_conn, "max_connections": max_conn,
                       "peak_utilisation": util,
                       "cache_hit_ratio": hsum / hn if hn else None,
                       "peak_replication_lag_seconds": lag}
    fig.targets = dict(agg)
    # Alerts that fired before the period and resolved in it count for their time inside.
    for at, fp, kind, name, labels in conn.execute(
            "SELECT at, fingerprint, kind, name, labels FROM alert_events "
            "WHERE at < ? AND (at >= ? OR kind = 'fired') ORDER BY at", (end, start - 7 * 86400)):
        fig.alerts.append((at, fp, kind, name, json.loads(labels)))
    for metric, value in conn.execute(
            "SELECT metric, sum(value) FROM quality_hours WHERE hour >= ? AND hour < ? "
            "GROUP BY metric", (start, end)):
        fig.quality[metric] = value
    fig.up_minutes = [m for (m,) in conn.execute(
        "SELECT minute FROM uptime_minutes WHERE minute >= ? AND minute < ? ORDER BY minute",
        (start // 60, end // 60))]
    fig.first_up_minute = conn.execute("SELECT min(minute) FROM uptime_minutes").fetchone()[0]
    return fig
