"""The beacon store as a family source: views of store families, read from window stats.

A store family (API latency, one Web Vital) is exported as several families: a
cumulative histogram, a window summary, and counters or window gauges split by the
ring's tag (status class, rating). Each beacon kind lists its views (`exports`) with the
builders below; `StoreSource` reads them from `Store.window_stats`, which computes each
series' quantiles at most once per tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import cast

import numpy as np
import numpy.typing as npt
from prometheus_client.metrics_core import Metric

from metricsd.export.family import (
    Family,
    Labels,
    Marks,
    Reader,
    Rows,
    Value,
    histogram_columns,
    label_string,
    samples,
    summary_columns,
    value_columns,
)
from metricsd.export.native import with_native
from metricsd.store.series import QUANTILES, FamilySpec, SeriesFamily, Store, WindowStats
from metricsd.store.snapshot import StoreSnapshot

I64 = npt.NDArray[np.int64]
# Values of some rows of a store family: one list per row, one value per column.
ValuesOf = Callable[[SeriesFamily, WindowStats, I64], list[list[Value]]]
# The same values as arrays for the compiled writer (ArrayRows.arrays).
Arrays = tuple[I64, npt.NDArray[np.float64], I64]
ArraysOf = Callable[[SeriesFamily, WindowStats, I64], Arrays]


def histogram_values(
    family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
) -> list[list[Value]]:
    """Cumulative buckets, _count, _sum (cumulative since the series was created)."""
    slots = stats.slots[rows]
    cumulative = np.cumsum(family.buckets[slots], axis=1).tolist()
    sums = family.sums[slots].tolist()
    return [[*c, c[-1], s] for c, s in zip(cumulative, sums, strict=True)]


def histogram_arrays(family: SeriesFamily, stats: WindowStats, rows: I64) -> Arrays:
    """histogram_values as arrays: the _sum is the one float column."""
    slots = stats.slots[rows]
    buckets = family.buckets[slots]
    width = buckets.shape[1]
    ints = np.zeros((len(rows), width + 2), dtype=np.int64)
    np.cumsum(buckets, axis=1, out=ints[:, :width])
    ints[:, width] = ints[:, width - 1]
    float_col = np.full(width + 2, -1, dtype=np.int64)
    float_col[width + 1] = 0
    return ints, family.sums[slots].reshape(-1, 1), float_col


def summary_values(
    family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
) -> list[list[Value]]:
    """Window quantiles, then the cumulative _count and _sum."""
    slots = stats.slots[rows]
    counts = family.buckets[slots].sum(axis=1).tolist()
    sums = family.sums[slots].tolist()
    return [[*q, n, s] for q, n, s in zip(stats.quantiles[rows].tolist(), counts, sums,
                                          strict=True)]


def summary_arrays(family: SeriesFamily, stats: WindowStats, rows: I64) -> Arrays:
    """summary_values as arrays: quantiles and _sum are floats, _count an integer."""
    slots = stats.slots[rows]
    q = stats.quantiles.shape[1]
    ints = np.zeros((len(rows), q + 2), dtype=np.int64)
    ints[:, q] = family.buckets[slots].sum(axis=1)
    floats = np.empty((len(rows), q + 1))
    floats[:, :q] = stats.quantiles[rows]
    floats[:, q] = family.sums[slots]
    float_col = np.full(q + 2, -1, dtype=np.int64)
    float_col[:q] = np.arange(q)
    float_col[q + 1] = q
    return ints, floats, float_col


def _integers(ints: I64) -> Arrays:
    """Arrays of integer columns only."""
    return (ints, np.zeros((len(ints), 0)), np.full(ints.shape[1], -1, dtype=np.int64))


def tag_totals(
    family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
) -> list[list[Value]]:
    """Cumulative count per tag (status class), summed over the second dimension."""
    out: list[list[Value]] = family.counters[stats.slots[rows]].sum(axis=2).tolist()
    return out


def tag_extra_totals(
    family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
) -> list[list[Value]]:
    """Cumulative count per (tag, extra): rating x navigation type."""
    counts = family.counters[stats.slots[rows]]
    width = family.counters.shape[1] * family.counters.shape[2]
    return cast(list[list[Value]], counts.reshape(len(rows), width).tolist())


def tag_totals_arrays(family: SeriesFamily, stats: WindowStats, rows: I64) -> Arrays:
    return _integers(family.counters[stats.slots[rows]].sum(axis=2))


def tag_extra_totals_arrays(family: SeriesFamily, stats: WindowStats, rows: I64) -> Arrays:
    counts = family.counters[stats.slots[rows]]
    return _integers(counts.reshape(len(rows), counts.shape[1] * counts.shape[2]))


def window_tags_arrays(family: SeriesFamily, stats: WindowStats, rows: I64) -> Arrays:
    return _integers(stats.tag_counts[rows].astype(np.int64, copy=False))


def window_tags(
    family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
) -> list[list[Value]]:
    """Window samples per tag."""
    out: list[list[Value]] = stats.tag_counts[rows].tolist()
    return out


@dataclass(frozen=True)
class View:
    """One exported family over one or more store families (a constant label tells which)."""

    family: Family
    parts: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (store family, const labels)
    values: ValuesOf

    @property
    def arrays(self) -> ArraysOf | None:
        """The array form of `values`, when it has one (the compiled writer uses it)."""
        return ARRAYS.get(self.values)


def window_help(store: Store) -> str:
    """How a window summary's help ends: the window's size and age limit."""
    return (f"over the last {store.pool.capacity} samples no older than "
            f"{store.window_seconds:g}s; _sum and _count are cumulative")


def histogram(name: str, help: str, series: FamilySpec) -> View:
    """The cumulative histogram of a store family."""
    return View(Family(name, "histogram", help, series.labels, histogram_columns(series.buckets)),
                ((series.name, ()),), histogram_values)


def window_summary(name: str, help: str, series: FamilySpec) -> View:
    """The exact window quantiles of a store family, with cumulative _sum and _count."""
    return View(Family(name, "summary", help, series.labels, summary_columns(QUANTILES)),
                ((series.name, ()),), summary_values)


def tag_counter(name: str, help: str, series: FamilySpec, label: str) -> View:
    """A counter per ring tag (status class), zeros left out."""
    return View(Family(name, "counter", help, series.labels,
                       value_columns(label, "counter", series.tags), omit_zero=True),
                ((series.name, ()),), tag_totals)


def window_tag_gauge(name: str, help: str, series: FamilySpec, label: str) -> View:
    """Window samples per ring tag (status class, rating)."""
    return View(Family(name, "gauge", help, series.labels,
                       value_columns(label, "gauge", series.tags)),
                ((series.name, ()),), window_tags)


# Every ValuesOf above and its array form: a pair must give the same values (tests check).
ARRAYS: dict[ValuesOf, ArraysOf] = {
    histogram_values: histogram_arrays,
    summary_values: summary_arrays,
    tag_totals: tag_totals_arrays,
    tag_extra_totals: tag_extra_totals_arrays,
    window_tags: window_tags_arrays,
}


class StoreRows:
    """The series of one store family for one exported family, at one instant."""

    def __init__(
        self,
        source: StoreSource,
        view: View,
        family: SeriesFamily,
        stats: WindowStats,
        const: tuple[tuple[str, str], ...],
    ) -> None:
        self.source = source
        self.family = family
        self.stats = stats
        self.view = view
        self.const = dict(const)
        self.prefix = label_string(self.const) + "," if const else ""

    @cached_property
    def marks(self) -> Marks:
        """Ring versions and stats times: only the writer asks (readers never pay for it)."""
        pool = self.source.store.pool
        version, stamp = pool.change_marks(self.stats.slots)
        return Marks(f"{self.view.family.name}:{self.family.spec.name}", pool.slots,
                     self.stats.slots, version, stamp)

    def __len__(self) -> int:
        return len(self.stats.keys)

    def texts(self, rows: npt.NDArray[np.int64]) -> list[str]:
        texts = self.source.label_texts(self.family, self.stats, rows)
        if self.prefix:
            return [self.prefix + t for t in texts]
        return texts

    def labels(self, rows: npt.NDArray[np.int64]) -> list[Labels]:
        names = self.family.spec.labels
        keys = self.stats.keys
        return [{**self.const, **dict(zip(names, keys[i], strict=True))} for i in rows.tolist()]

    def values(self, rows: npt.NDArray[np.int64]) -> Sequence[Sequence[Value]]:
        return self.view.values(self.family, self.stats, rows)

    def label_bytes(self, rows: I64) -> list[bytes]:
        texts = self.source.label_bytes(self.family, self.stats, rows)
        if self.prefix:
            prefix = self.prefix.encode()
            return [prefix + t for t in texts]
        return texts

    def arrays(self, rows: I64) -> Arrays | None:
        arrays = self.view.arrays
        return None if arrays is None else arrays(self.family, self.stats, rows)


class StoreSource:
    """The beacon store as a family source; the store is read, never written."""

    def __init__(
        self, store: Store, views: Sequence[View], clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.clock = clock
        self.views = list(views)
        self._families = [v.family for v in self.views]
        self._by_name = {v.family.name: v for v in self.views}
        # slot -> (key, escaped label string, its UTF-8); a reused slot is noticed by its key.
        self._label_cache: list[tuple[tuple[str, ...], str, bytes] | None] = (
            [None] * store.pool.slots)
        # store family -> (the stats of the last read, every row's label bytes)
        self._bytes_memo: dict[str, tuple[WindowStats, list[bytes]]] = {}

    @property
    def families(self) -> Sequence[Family]:
        return self._families

    async def prepare(self, now: float) -> None:
        """Recompute stale window quantiles, sorting in a worker thread."""
        await self.store.refresh(now)

    def _labels(
        self, family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
    ) -> list[tuple[tuple[str, ...], str, bytes]]:
        """Escaped label strings of some rows, cached per slot (a reused slot is noticed)."""
        cache = self._label_cache
        names = family.spec.labels
        out = []
        slots = stats.slots[rows].tolist()
        for row, slot in zip(rows.tolist(), slots, strict=True):
            key = stats.keys[row]
            hit = cache[slot]
            if hit is None or hit[0] != key:
                text = label_string(dict(zip(names, key, strict=True)))
                hit = (key, text, text.encode())
                cache[slot] = hit
            out.append(hit)
        return out

    def label_texts(
        self, family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
    ) -> list[str]:
        """Escaped label strings of some rows."""
        return [hit[1] for hit in self._labels(family, stats, rows)]

    def label_bytes(self, family: SeriesFamily, stats: WindowStats, rows: I64) -> list[bytes]:
        """The same, UTF-8 encoded (the compiled writer's input). Listed once per read of
        a store family (`stats`), which all of its views share."""
        memo = self._bytes_memo.get(family.spec.name)
        if memo is None or memo[0] is not stats:
            every = np.arange(len(stats.keys), dtype=np.int64)
            memo = (stats, [hit[2] for hit in self._labels(family, stats, every)])
            self._bytes_memo[family.spec.name] = memo
        texts = memo[1]
        return [texts[i] for i in rows.tolist()]

    def read(self) -> Reader:
        """Window stats at one instant, computed once per store family and shared."""
        now = self.clock()
        stats: dict[str, WindowStats] = {}

        def rows(family: Family) -> list[Rows]:
            view = self._by_name[family.name]
            out: list[Rows] = []
            for name, const in view.parts:
                series = self.store.families[name]
                if name not in stats:
                    stats[name] = self.store.window_stats(series, now)
                out.append(StoreRows(self, view, series, stats[name], const))
            return out

        return rows

    def histograms(self) -> dict[str, str]:
        """Histogram family name -> its store family: the ones that carry native buckets."""
        return {v.family.name: v.parts[0][0] for v in self.views
                if v.family.type == "histogram" and len(v.parts) == 1}

    def native_snapshot(self) -> Callable[[], list[Metric]]:
        """Every family, histograms with native buckets too (the protobuf exposition), over
        a copy of the store taken now: the builder returned may run in a worker thread."""
        now = self.clock()
        frozen = StoreSnapshot(self.store, now)
        # StoreSnapshot offers exactly what the reading code asks a Store for; the rows'
        # change marks (which it lacks) are computed only by the text writer.
        source = StoreSource(cast(Store, frozen), self.views, clock=lambda: now)
        histograms = self.histograms()

        def build() -> list[Metric]:
            read = source.read()
            metrics = []
            for family in source.families:
                metric = Metric(family.name, family.help, family.type)
                for rows in read(family):
                    for sample in samples(family, rows):
                        metric.add_sample(*sample)
                metrics.append(metric)
            return list(with_native(metrics, histograms, frozen.families))

        return build
