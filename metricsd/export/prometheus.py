"""Custom collectors that turn the store and the daemon's own counters into metric families.

The store is read at scrape time, never written: window statistics come from
`Store.window_stats`, which computes each series' quantiles at most once per tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from prometheus_client.metrics_core import Metric

from metricsd import __version__
from metricsd.export.native import with_native
from metricsd.export.text import header, label_string, number
from metricsd.ingest.selfmetrics import SelfMetrics
from metricsd.store.ring import FloatArray
from metricsd.store.series import (
    NAVIGATION_TYPES,
    QUANTILES,
    RATINGS,
    STATUS_CLASSES,
    VITALS,
    SeriesFamily,
    Store,
    VitalSpec,
    WindowStats,
)
from metricsd.store.snapshot import StoreSnapshot

QUANTILE_LABELS: tuple[str, ...] = tuple(repr(q) for q in QUANTILES)
# Changed series formatted between two yields to the event loop (about 1 ms of work),
# so a scrape never holds up a beacon for long.
RENDER_CHUNK = 200


def vital_base(spec: VitalSpec) -> str:
    """`metricsd_web_vitals_lcp_seconds`, or `metricsd_web_vitals_cls` for the unitless CLS."""
    base = f"metricsd_web_vitals_{spec.name.lower()}"
    return f"{base}_{spec.unit}" if spec.unit else base


def vital_window_name(spec: VitalSpec) -> str:
    base = f"metricsd_web_vitals_{spec.name.lower()}_window"
    return f"{base}_{spec.unit}" if spec.unit else base


API_HISTOGRAM = "metricsd_api_request_duration_seconds"
API_SUMMARY = "metricsd_api_request_window_seconds"
API_REQUESTS = "metricsd_api_requests"  # counter; samples end in _total
API_WINDOW_REQUESTS = "metricsd_api_window_requests"
VITALS_RATINGS = "metricsd_web_vitals_ratings"  # counter
VITALS_WINDOW_RATINGS = "metricsd_web_vitals_window_ratings"


def _window_help(store: Store) -> str:
    return (
        f"over the last {store.pool.capacity} samples no older than "
        f"{store.window_seconds:g}s; _sum and _count are cumulative"
    )


class StoreCollector:
    """Window summaries, cumulative histograms and counters of every beacon family.

    `collect()` builds prometheus_client families (tests, alert evaluation); `write()`
    writes the same samples straight to text for /metrics, several times faster.
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        # slot -> (key, escaped label string); a reused slot is noticed by its key.
        self._label_cache: list[tuple[tuple[str, ...], str] | None] = [None] * store.pool.slots
        self._chunks: dict[str, _Chunks] = {}

    def _label_strings(
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

    async def _section(
        self,
        out: list[str],
        section: str,
        family: SeriesFamily,
        stats: WindowStats,
        render: RowRenderer,
    ) -> None:
        """Append each series' text for one section, re-rendering only changed series.

        Changed series are formatted RENDER_CHUNK at a time with a yield to the event loop
        in between, so 10,000 changed series do not hold up beacons for a whole scrape.
        """
        chunks = self._chunks.get(section)
        if chunks is None:
            chunks = self._chunks[section] = _Chunks(self.store.pool.slots)
        version, stamp = self.store.pool.change_marks(stats.slots)
        stale = chunks.stale(stats.slots, version, stamp)
        for start in range(0, len(stale), RENDER_CHUNK):
            if start:
                await asyncio.sleep(0)
            rows = stale[start : start + RENDER_CHUNK]
            texts = render(family, stats, rows, self._label_strings(family, stats, rows))
            chunks.update(stats.slots[rows], texts, version[rows], stamp[rows])
        text = chunks.text
        out.extend([text[slot] for slot in stats.slots.tolist()])

    async def write(self, out: list[str], openmetrics: bool) -> None:
        """Every store family as exposition text; same samples as collect().

        The caller holds `Store.reading`, so no slot changes hands while this yields.
        """
        now = self.clock()
        api = self.store.families["api"]
        stats = self.store.window_stats(api, now)
        header(out, API_HISTOGRAM, "histogram", "API request latency, cumulative", openmetrics)
        await self._section(out, "api_hist", api, stats, _histogram_rows(API_HISTOGRAM))
        header(out, API_SUMMARY, "summary",
               f"API request latency quantiles {_window_help(self.store)}", openmetrics)
        await self._section(out, "api_summary", api, stats, _summary_rows(API_SUMMARY))
        header(out, API_REQUESTS, "counter", "API requests by status class, cumulative",
               openmetrics)
        await self._section(out, "api_requests", api, stats, _api_request_rows)
        header(out, API_WINDOW_REQUESTS, "gauge",
               "API requests in the current window by status class", openmetrics)
        await self._section(out, "api_window", api, stats, _window_count_rows(
            API_WINDOW_REQUESTS, "", "status_class", STATUS_CLASSES))
        ratings: list[str] = []
        window_ratings: list[str] = []
        for spec in VITALS.values():
            family = self.store.families[spec.name]
            stats = self.store.window_stats(family, now)
            unit = " (seconds)" if spec.unit else " (unitless)"
            hist, summ = vital_base(spec), vital_window_name(spec)
            header(out, hist, "histogram", f"{spec.help}{unit}, cumulative", openmetrics)
            await self._section(out, f"{spec.name}_hist", family, stats, _histogram_rows(hist))
            header(out, summ, "summary",
                   f"{spec.help}{unit} quantiles {_window_help(self.store)}", openmetrics)
            await self._section(out, f"{spec.name}_summary", family, stats, _summary_rows(summ))
            await self._section(ratings, f"{spec.name}_ratings", family, stats,
                          _rating_rows(spec.name))
            await self._section(window_ratings, f"{spec.name}_window", family, stats,
                                _window_count_rows(VITALS_WINDOW_RATINGS,
                                                   f'metric="{spec.name}",', "rating", RATINGS))
        header(out, VITALS_RATINGS, "counter", "Web Vitals reports by rating, cumulative",
               openmetrics)
        out.extend(ratings)
        header(out, VITALS_WINDOW_RATINGS, "gauge",
               "Web Vitals reports in the current window by rating", openmetrics)
        out.extend(window_ratings)

    def names(self) -> dict[str, str]:
        """Family name -> type, for describe() and for name-restricted collection."""
        out = {
            API_HISTOGRAM: "histogram",
            API_SUMMARY: "summary",
            API_REQUESTS: "counter",
            API_WINDOW_REQUESTS: "gauge",
            VITALS_RATINGS: "counter",
            VITALS_WINDOW_RATINGS: "gauge",
        }
        for spec in VITALS.values():
            out[vital_base(spec)] = "histogram"
            out[vital_window_name(spec)] = "summary"
        return out

    def describe(self) -> Iterable[Metric]:
        return [Metric(name, "", kind) for name, kind in self.names().items()]

    def collect(self) -> Iterator[Metric]:
        return self.collect_only(None)

    def native_snapshot(self) -> Callable[[], list[Metric]]:
        """Every family, histograms with native buckets too (the protobuf exposition), over
        a copy of the store taken now: the builder returned may run in a worker thread."""
        now = self.clock()
        frozen = StoreSnapshot(self.store, now)
        # StoreSnapshot offers exactly what the collecting code reads from a Store.
        collector = StoreCollector(cast(Store, frozen), clock=lambda: now)
        return lambda: list(with_native(collector.collect(), frozen.families))

    def collect_only(self, wanted: set[str] | None) -> Iterator[Metric]:
        """Families whose name (or a sample name of it) is in `wanted`; all when None."""
        now = self.clock()

        def want(name: str, kind: str) -> bool:
            if wanted is None:
                return True
            return bool(wanted & sample_names(name, kind))

        api = self.store.families["api"]
        need_api = [
            want(API_HISTOGRAM, "histogram"),
            want(API_SUMMARY, "summary"),
            want(API_REQUESTS, "counter"),
            want(API_WINDOW_REQUESTS, "gauge"),
        ]
        if any(need_api):
            stats = self.store.window_stats(api, now)
            if need_api[0]:
                yield self._histogram(API_HISTOGRAM, "API request latency, cumulative", api, stats)
            if need_api[1]:
                yield self._summary(
                    API_SUMMARY, f"API request latency quantiles {_window_help(self.store)}",
                    api, stats,
                )
            if need_api[2]:
                yield self._api_requests(api, stats)
            if need_api[3]:
                yield self._window_tags(
                    API_WINDOW_REQUESTS, "API requests in the current window by status class",
                    api, stats, "status_class", STATUS_CLASSES,
                )

        need_ratings = want(VITALS_RATINGS, "counter")
        need_window_ratings = want(VITALS_WINDOW_RATINGS, "gauge")
        ratings = Metric(VITALS_RATINGS, "Web Vitals reports by rating, cumulative", "counter")
        window_ratings = Metric(
            VITALS_WINDOW_RATINGS, "Web Vitals reports in the current window by rating", "gauge"
        )
        for spec in VITALS.values():
            family = self.store.families[spec.name]
            hist_name, sum_name = vital_base(spec), vital_window_name(spec)
            need = (want(hist_name, "histogram"), want(sum_name, "summary"))
            if not (any(need) or need_ratings or need_window_ratings):
                continue
            stats = self.store.window_stats(family, now)
            unit = " (seconds)" if spec.unit else " (unitless)"
            if need[0]:
                yield self._histogram(hist_name, f"{spec.help}{unit}, cumulative", family, stats)
            if need[1]:
                yield self._summary(
                    sum_name, f"{spec.help}{unit} quantiles {_window_help(self.store)}",
                    family, stats,
                )
            if need_ratings:
                self._add_ratings(ratings, spec.name, family, stats)
            if need_window_ratings:
                for row, key in enumerate(stats.keys):
                    for tag, rating in enumerate(RATINGS):
                        window_ratings.add_sample(
                            VITALS_WINDOW_RATINGS,
                            {"metric": spec.name, "page": key[0], "rating": rating},
                            float(stats.tag_counts[row, tag]),
                        )
        if need_ratings:
            yield ratings
        if need_window_ratings:
            yield window_ratings

    @staticmethod
    def _labels(family: SeriesFamily, key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(family.spec.labels, key, strict=True))

    def _histogram(
        self, name: str, doc: str, family: SeriesFamily, stats: WindowStats
    ) -> Metric:
        metric = Metric(name, doc, "histogram")
        bounds = [*(repr(float(b)) for b in family.spec.buckets), "+Inf"]
        for key, slot in zip(stats.keys, stats.slots, strict=True):
            labels = self._labels(family, key)
            cumulative = np.cumsum(family.buckets[slot])
            for le, count in zip(bounds, cumulative, strict=True):
                metric.add_sample(f"{name}_bucket", {**labels, "le": le}, float(count))
            metric.add_sample(f"{name}_count", labels, float(cumulative[-1]))
            metric.add_sample(f"{name}_sum", labels, float(family.sums[slot]))
        return metric

    def _summary(self, name: str, doc: str, family: SeriesFamily, stats: WindowStats) -> Metric:
        metric = Metric(name, doc, "summary")
        for row, (key, slot) in enumerate(zip(stats.keys, stats.slots, strict=True)):
            labels = self._labels(family, key)
            for col, q in enumerate(QUANTILE_LABELS):
                value = float(stats.quantiles[row, col])
                metric.add_sample(name, {**labels, "quantile": q}, value)
            metric.add_sample(f"{name}_count", labels, float(family.buckets[slot].sum()))
            metric.add_sample(f"{name}_sum", labels, float(family.sums[slot]))
        return metric

    def _api_requests(self, family: SeriesFamily, stats: WindowStats) -> Metric:
        metric = Metric(API_REQUESTS, "API requests by status class, cumulative", "counter")
        for key, slot in zip(stats.keys, stats.slots, strict=True):
            labels = self._labels(family, key)
            per_class = family.counters[slot].sum(axis=1)
            for tag, status_class in enumerate(STATUS_CLASSES):
                if per_class[tag]:
                    metric.add_sample(
                        f"{API_REQUESTS}_total",
                        {**labels, "status_class": status_class},
                        float(per_class[tag]),
                    )
        return metric

    def _window_tags(
        self,
        name: str,
        doc: str,
        family: SeriesFamily,
        stats: WindowStats,
        label: str,
        values: tuple[str, ...],
    ) -> Metric:
        metric = Metric(name, doc, "gauge")
        for row, key in enumerate(stats.keys):
            labels = self._labels(family, key)
            for tag, value in enumerate(values):
                metric.add_sample(name, {**labels, label: value}, float(stats.tag_counts[row, tag]))
        return metric

    @staticmethod
    def _add_ratings(
        metric: Metric, vital: str, family: SeriesFamily, stats: WindowStats
    ) -> None:
        for key, slot in zip(stats.keys, stats.slots, strict=True):
            counts = family.counters[slot]
            for tag, rating in enumerate(RATINGS):
                for extra, nav in enumerate(NAVIGATION_TYPES):
                    if counts[tag, extra]:
                        metric.add_sample(
                            f"{VITALS_RATINGS}_total",
                            {"metric": vital, "page": key[0], "rating": rating,
                             "navigation_type": nav},
                            float(counts[tag, extra]),
                        )


class _Chunks:
    """One section's rendered text per slot, valid while the ring and its stats are unchanged.

    A scrape then costs a list lookup for every series that saw no sample and lost none to
    age since the last one; only changed series are formatted again.
    """

    def __init__(self, slots: int) -> None:
        self.version = np.full(slots, -1, dtype=np.int64)
        self.stamp = np.full(slots, np.nan)
        self.text: list[str] = [""] * slots

    def stale(
        self, slots: npt.NDArray[np.int64], version: npt.NDArray[np.int64], stamp: FloatArray
    ) -> npt.NDArray[np.int64]:
        return np.nonzero((self.version[slots] != version) | (self.stamp[slots] != stamp))[0]

    def update(
        self,
        slots: npt.NDArray[np.int64],
        texts: list[str],
        version: npt.NDArray[np.int64],
        stamp: FloatArray,
    ) -> None:
        self.version[slots] = version
        self.stamp[slots] = stamp
        for slot, text in zip(slots.tolist(), texts, strict=True):
            self.text[slot] = text


RowRenderer = Callable[[SeriesFamily, WindowStats, npt.NDArray[np.int64], list[str]], list[str]]


def _histogram_rows(name: str) -> RowRenderer:
    def render(
        family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64], labels: list[str]
    ) -> list[str]:
        les = [f',le="{le}"}} ' for le in (*(repr(float(b)) for b in family.spec.buckets),
                                           "+Inf")]
        bucket = f"{name}_bucket{{"
        slots = stats.slots[rows]
        cumulative = np.cumsum(family.buckets[slots], axis=1).tolist()
        sums = family.sums[slots].tolist()
        return [
            "".join([f"{bucket}{lab}{le}{n}\n" for le, n in zip(les, row, strict=True)])
            + f"{name}_count{{{lab}}} {row[-1]}\n{name}_sum{{{lab}}} {number(total)}\n"
            for lab, row, total in zip(labels, cumulative, sums, strict=True)
        ]

    return render


def _summary_rows(name: str) -> RowRenderer:
    def render(
        family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64], labels: list[str]
    ) -> list[str]:
        quantiles = [f',quantile="{q}"}} ' for q in QUANTILE_LABELS]
        start = f"{name}{{"
        slots = stats.slots[rows]
        counts = family.buckets[slots].sum(axis=1).tolist()
        sums = family.sums[slots].tolist()
        return [
            "".join([f"{start}{lab}{q}{number(v)}\n"
                     for q, v in zip(quantiles, qrow, strict=True)])
            + f"{name}_count{{{lab}}} {count}\n{name}_sum{{{lab}}} {number(total)}\n"
            for lab, qrow, count, total in zip(labels, stats.quantiles[rows].tolist(), counts,
                                               sums, strict=True)
        ]

    return render


def _api_request_rows(
    family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64], labels: list[str]
) -> list[str]:
    per_class = family.counters[stats.slots[rows]].sum(axis=2).tolist()
    return [
        "".join([f'{API_REQUESTS}_total{{{lab},status_class="{cls}"}} {n}\n'
                 for cls, n in zip(STATUS_CLASSES, row, strict=True) if n])
        for lab, row in zip(labels, per_class, strict=True)
    ]


def _window_count_rows(
    name: str, prefix: str, label: str, values: tuple[str, ...]
) -> RowRenderer:
    """A gauge of window samples per tag (status class, rating): one line per value."""

    def render(
        family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64], labels: list[str]
    ) -> list[str]:
        return [
            "".join([f'{name}{{{prefix}{lab},{label}="{value}"}} {n}\n'
                     for value, n in zip(values, row, strict=True)])
            for lab, row in zip(labels, stats.tag_counts[rows].tolist(), strict=True)
        ]

    return render


def _rating_rows(vital: str) -> RowRenderer:
    def render(
        family: SeriesFamily, stats: WindowStats, rows: npt.NDArray[np.int64], labels: list[str]
    ) -> list[str]:
        counts = family.counters[stats.slots[rows]].tolist()
        return [
            "".join([
                f'{VITALS_RATINGS}_total{{metric="{vital}",{lab},rating="{rating}",'
                f'navigation_type="{nav}"}} {n}\n'
                for rating, per_nav in zip(RATINGS, per_rating, strict=True)
                for nav, n in zip(NAVIGATION_TYPES, per_nav, strict=True) if n
            ])
            for lab, per_rating in zip(labels, counts, strict=True)
        ]

    return render




class SelfCollector:
    """The daemon's own ingest counters and series budget."""

    def __init__(self, store: Store, counters: SelfMetrics) -> None:
        self.store = store
        self.counters = counters

    def describe(self) -> Iterable[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        build = Metric("metricsd_build_info", "metricsd version; always 1", "gauge")
        build.add_sample("metricsd_build_info", {"version": __version__}, 1.0)
        yield build
        c = self.counters
        yield _counter("metricsd_ingest_accepted", "Beacon items accepted", ("type",),
                       c.accepted)
        yield _counter("metricsd_ingest_rejected", "Beacon items or requests rejected by reason",
                       ("type", "reason"), c.rejected)
        yield _counter("metricsd_ingest_requests", "Beacon HTTP requests by response code",
                       ("type", "code"), c.requests)
        yield _counter("metricsd_ingest_rate_limited", "Beacon requests answered 429",
                       ("type",), c.rate_limited)
        yield _counter("metricsd_ingest_vitals_duplicates",
                       "Repeated web-vitals ids: updated in place or ignored",
                       ("action",), c.vitals_duplicates)
        series = Metric("metricsd_series", "Live series per family", "gauge")
        for name, family in self.store.families.items():
            series.add_sample("metricsd_series", {"family": name}, float(len(family)))
        yield series
        limit = Metric("metricsd_series_limit", "ingest.max_series", "gauge")
        limit.add_sample("metricsd_series_limit", {}, float(self.store.pool.slots))
        yield limit
        yield _counter("metricsd_series_dropped_samples",
                       "Samples refused because ingest.max_series was reached", ("family",),
                       self.store.dropped)
        yield _counter("metricsd_series_expired",
                       "Series removed after ingest.series_idle_timeout", ("family",),
                       self.store.expired)


def _counter(
    name: str, doc: str, labels: tuple[str, ...], counts: Mapping[Any, int]
) -> Metric:
    """A counter family from a mapping of label value (or tuple of them) to count."""
    metric = Metric(name, doc, "counter")
    for key, value in counts.items():
        values = key if isinstance(key, tuple) else (key,)
        metric.add_sample(
            f"{name}_total", dict(zip(labels, map(str, values), strict=True)), float(value)
        )
    return metric


def sample_names(name: str, kind: str) -> set[str]:
    """Every sample name a family of this type can produce (what PromQL selectors use)."""
    if kind == "counter":
        return {f"{name}_total", f"{name}_created", name}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created", name}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    return {name}
