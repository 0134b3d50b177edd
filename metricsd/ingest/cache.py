"""Cache statistics from apps: hits and misses since the client's last report, and top keys.

A report is `{"service", "cache", "hits", "misses", "evictions"?, "entries"?,
"size_bytes"?, "top_keys"?: [{"key", "hits"}]}`. Counts are added to cumulative
counters; the window hit ratio is taken over the reports of the last
`ingest.window.seconds`; top keys go into a Space-Saving summary per cache (bounded,
never labels), shown on the page and in `GET /v1/cache`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from metricsd.config import IngestConfig
from metricsd.errors import BeaconError
from metricsd.export.family import Family, Reader, RowList, Rows, Source, value_columns
from metricsd.ingest.base import (
    SERIES_LIMIT,
    BatchResult,
    BeaconType,
    Context,
    Sample,
    as_object,
    register,
)
from metricsd.ingest.selfmetrics import SelfMetrics
from metricsd.store.series import Store

MAX_COUNT = 2**53  # counts above this are not exact as JSON numbers
MAX_TOP_KEYS = 100  # per report
# Reports kept per cache for the window ratio; older ones are summed into nothing (they
# leave the window), so a client reporting every second costs at most this many tuples.
MAX_WINDOW_REPORTS = 4096
LABELS = ("service", "cache")
CacheKey = tuple[str, str]


class SpaceSaving:
    """Metwally et al.'s Space-Saving summary: the heaviest keys in `capacity` counters.

    A key that is not tracked takes the place of the smallest counter and inherits its
    count, so an estimate is never below the true count and above it by at most the
    `error` recorded with it (at most total / capacity).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def add(self, key: str, count: int) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += count
            return
        if len(counts) < self.capacity:
            counts[key] = count
            self.errors[key] = 0
            return
        smallest = min(counts, key=counts.__getitem__)
        floor = counts.pop(smallest)
        del self.errors[smallest]
        counts[key] = floor + count
        self.errors[key] = floor

    def top(self, n: int) -> list[tuple[str, int, int]]:
        """(key, estimated hits, maximum overestimate), heaviest first."""
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(key, count, self.errors[key]) for key, count in items]


@dataclass
class CacheSeries:
    """One (service, cache): cumulative counts, last gauges, window reports, top keys."""

    top: SpaceSaving
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int | None = None
    size_bytes: int | None = None
    last_seen: float = 0.0
    window: deque[tuple[float, int, int]] = field(default_factory=deque)

    def window_counts(self, since: float) -> tuple[int, int]:
        """Hits and misses reported after `since` (older reports are dropped)."""
        window = self.window
        while window and window[0][0] < since:
            window.popleft()
        return sum(h for _, h, _ in window), sum(m for _, _, m in window)


@dataclass(frozen=True)
class CacheReport:
    """One validated report."""

    key: CacheKey
    hits: int
    misses: int
    evictions: int
    entries: int | None
    size_bytes: int | None
    top_keys: tuple[tuple[str, int], ...]


def count(item: dict[str, Any], name: str, required: bool = False) -> int | None:
    """A non-negative JSON integer (not a bool, not a float) below 2**53."""
    value = item.get(name)
    if value is None:
        if required:
            raise BeaconError(f"{name} is required", "missing_field")
        return None
    if type(value) is not int:
        raise BeaconError(f"{name} must be a non-negative integer", "wrong_type")
    if not 0 <= value <= MAX_COUNT:
        raise BeaconError(f"{name} must be between 0 and 2**53", "out_of_range")
    return value


class CacheState:
    """Every cache's series, bounded by the cache budget; read by /metrics, the page, JSON."""

    def __init__(self, config: IngestConfig, budget: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.window_seconds = config.window.seconds
        self.idle_timeout = config.series_idle_timeout
        self.top_n = config.cache_top_keys
        self.budget = budget
        self.clock = clock
        self.series: dict[CacheKey, CacheSeries] = {}

    def add(self, report: CacheReport, now: float) -> bool:
        """Apply one report; False when a new cache would exceed the budget."""
        series = self.series.get(report.key)
        if series is None:
            self.expire(now)
            if len(self.series) >= self.budget:
                return False
            series = self.series[report.key] = CacheSeries(SpaceSaving(2 * self.top_n))
        series.hits += report.hits
        series.misses += report.misses
        series.evictions += report.evictions
        if report.entries is not None:
            series.entries = report.entries
        if report.size_bytes is not None:
            series.size_bytes = report.size_bytes
        series.last_seen = now
        if report.hits or report.misses:
            series.window.append((now, report.hits, report.misses))
            if len(series.window) > MAX_WINDOW_REPORTS:
                series.window.popleft()
        for key, hits in report.top_keys:
            series.top.add(key, hits)
        return True

    def expire(self, now: float) -> int:
        """Forget caches not reported for `series_idle_timeout`, as idle store series go."""
        idle = [k for k, s in self.series.items() if now - s.last_seen > self.idle_timeout]
        for key in idle:
            del self.series[key]
        return len(idle)

    def view(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every cache as JSON-ready dicts (GET /v1/cache and the page), busiest first."""
        now = self.clock() if now is None else now
        self.expire(now)
        out: list[dict[str, Any]] = []
        for (service, cache), s in self.series.items():
            hits, misses = s.window_counts(now - self.window_seconds)
            total = hits + misses
            out.append({
                "service": service, "cache": cache,
                "hits_total": s.hits, "misses_total": s.misses, "evictions_total": s.evictions,
                "entries": s.entries, "size_bytes": s.size_bytes,
                "window_requests": total,
                "window_hit_ratio": hits / total if total else None,
                "top_keys": [{"key": k, "hits": n, "max_error": e}
                             for k, n, e in s.top.top(self.top_n)],
            })
        out.sort(key=lambda c: (-c["window_requests"], c["service"], c["cache"]))
        return out


class CacheSource:
    """The cache families on /metrics, built from CacheState at read time."""

    def __init__(self, state: CacheState) -> None:
        self.state = state
        self.requests = Family("metricsd_cache_requests", "counter",
                               "Cache lookups reported by clients, by result, cumulative",
                               LABELS, value_columns("result", "counter", ("hit", "miss")))
        self.evictions = Family("metricsd_cache_evictions", "counter",
                                "Cache evictions reported by clients, cumulative", LABELS)
        self.entries = Family("metricsd_cache_entries", "gauge",
                              "Entries in the cache at its last report", LABELS)
        self.size = Family("metricsd_cache_size_bytes", "gauge",
                           "Cache size in bytes at its last report", LABELS)
        self.ratio = Family("metricsd_cache_window_hit_ratio", "gauge",
                            "Hits / (hits + misses) over the reports of the window", LABELS)
        self.window = Family("metricsd_cache_window_requests", "gauge",
                             "Cache lookups (hits + misses) reported in the window", LABELS)

    @property
    def families(self) -> Sequence[Family]:
        return [self.requests, self.evictions, self.entries, self.size, self.ratio, self.window]

    async def prepare(self, now: float) -> None:
        return None

    def read(self) -> Reader:
        state = self.state
        now = state.clock()
        state.expire(now)
        blocks: dict[str, RowList] = {f.name: RowList() for f in self.families}
        since = now - state.window_seconds
        for (service, cache), s in sorted(state.series.items()):
            labels = {"service": service, "cache": cache}
            blocks["metricsd_cache_requests"].add(labels, s.hits, s.misses)
            blocks["metricsd_cache_evictions"].add(labels, s.evictions)
            if s.entries is not None:
                blocks["metricsd_cache_entries"].add(labels, s.entries)
            if s.size_bytes is not None:
                blocks["metricsd_cache_size_bytes"].add(labels, s.size_bytes)
            hits, misses = s.window_counts(since)
            blocks["metricsd_cache_window_requests"].add(labels, hits + misses)
            if hits + misses:
                blocks["metricsd_cache_window_hit_ratio"].add(labels, hits / (hits + misses))

        def rows(family: Family) -> list[Rows]:
            block = blocks[family.name]
            return [block] if len(block) else []

        return rows


def cache_budget(config: IngestConfig) -> int:
    """How many (service, cache) pairs may exist: the `cache` share of ingest.budgets."""
    return config.series_budgets()["cache"]


@register
class CacheBeacon(BeaconType):
    """A cache's counts since the client's last report; not kept in the sample store."""

    name = "cache"
    needs_token = True
    cors = False

    def __init__(self, config: IngestConfig, store: Store, counters: SelfMetrics) -> None:
        super().__init__(config, store, counters)
        self.state = CacheState(config, cache_budget(config))

    def sources(self) -> list[Source]:
        return [CacheSource(self.state)]

    def own_budget(self) -> int | None:
        return self.state.budget

    def own_series(self) -> int:
        return len(self.state.series)

    def reloaded(self, previous: BeaconType) -> None:
        """Counts and top keys survive a reload; the window and the budget do not change."""
        if isinstance(previous, CacheBeacon):
            previous.state.top_n = self.config.cache_top_keys
            self.state = previous.state

    def parse(self, item: Any, ctx: Context) -> Sample:
        raise NotImplementedError("cache reports are not store samples: see ingest()")

    def report(self, item: Any) -> CacheReport:
        """Validate one report; BeaconError names the first problem."""
        item = as_object(item)
        service = self.string(item, "service")
        cache = self.string(item, "cache")
        assert service is not None and cache is not None
        hits = count(item, "hits", required=True)
        misses = count(item, "misses", required=True)
        assert hits is not None and misses is not None
        top = item.get("top_keys")
        top_keys: list[tuple[str, int]] = []
        if top is not None:
            if type(top) is not list:
                raise BeaconError("top_keys must be an array of {key, hits}", "wrong_type")
            if len(top) > MAX_TOP_KEYS:
                raise BeaconError(f"top_keys holds at most {MAX_TOP_KEYS} keys", "out_of_range")
            for entry in top:
                entry = as_object(entry)
                key = self.string(entry, "key")
                key_hits = count(entry, "hits", required=True)
                assert key is not None and key_hits is not None
                top_keys.append((key, key_hits))
        return CacheReport((service, cache), hits, misses, count(item, "evictions") or 0,
                           count(item, "entries"), count(item, "size_bytes"), tuple(top_keys))

    def ingest(self, items: list[Any], ctx: Context) -> BatchResult:
        result = BatchResult()
        for index, item in enumerate(items):
            try:
                report = self.report(item)
            except BeaconError as exc:
                result.reject(index, exc)
                self.counters.rejected[(self.name, exc.reason)] += 1
                continue
            if self.state.add(report, ctx.now):
                result.accepted += 1
            else:
                result.reject(index, SERIES_LIMIT)
                self.counters.rejected[(self.name, "series_limit")] += 1
        self.counters.accepted[self.name] += result.accepted
        return result
