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

# Values of some rows of a store family: one list per row, one value per column.
ValuesOf = Callable[[SeriesFamily, WindowStats, npt.NDArray[np.int64]], list[list[Value]]]


def histogram_values(
    family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
) -> list[list[Value]]:
    """Cumulative buckets, _count, _sum (cumulative since the series was created)."""
    slots = stats.slots[rows]
    cumulative = np.cumsum(family.buckets[slots], axis=1).tolist()
    sums = family.sums[slots].tolist()
    return [[*c, c[-1], s] for c, s in zip(cumulative, sums, strict=True)]


def summary_values(
    family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
) -> list[list[Value]]:
    """Window quantiles, then the cumulative _count and _sum."""
    slots = stats.slots[rows]
    counts = family.buckets[slots].sum(axis=1).tolist()
    sums = family.sums[slots].tolist()
    return [[*q, n, s] for q, n, s in zip(stats.quantiles[rows].tolist(), counts, sums,
                                          strict=True)]


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
        # slot -> (key, escaped label string); a reused slot is noticed by its key.
        self._label_cache: list[tuple[tuple[str, ...], str] | None] = [None] * store.pool.slots

    @property
    def families(self) -> Sequence[Family]:
        return self._families

    async def prepare(self, now: float) -> None:
        """Recompute stale window quantiles, sorting in a worker thread."""
        await self.store.refresh(now)

    def label_texts(
        self, family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64]
    ) -> list[str]:
        """Escaped label strings of some rows, cached per slot (a reused slot is noticed)."""
        cache = self._label_cache
        names = family.spec.labels
        out = []
        slots = stats.slots[rows].tolist()
        for row, slot in zip(rows.tolist(), slots, strict=True):
            key = stats.keys[row]
            hit = cache[slot]
            if hit is None or hit[0] != key:
                hit = (key, label_string(dict(zip(names, key, strict=True))))
                cache[slot] = hit
            out.append(hit[1])
        return out

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
