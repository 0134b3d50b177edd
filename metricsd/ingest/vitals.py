"""Web Vitals from browsers, as Google's `web-vitals` library reports them.

web-vitals reports CLS and INP again on every page hide (same `id`, larger value) and
everything again after a back/forward-cache restore (new `id`). A repeated id updates its
sample in the window in place, so window quantiles see each page view once with its
latest value; the cumulative histogram and rating counters keep the first report, because
Prometheus counters cannot move an observation to another bucket.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from metricsd import labels
from metricsd.config import IngestConfig
from metricsd.errors import BeaconError
from metricsd.export.beacons import (
    View,
    histogram,
    tag_extra_totals,
    window_help,
    window_summary,
    window_tags,
)
from metricsd.export.family import Column, Family, value_columns
from metricsd.ingest import attribution
from metricsd.ingest.attribution import Attribution, AttributionStore
from metricsd.ingest.base import (
    SERIES_LIMIT,
    BatchResult,
    BeaconType,
    Context,
    Sample,
    as_object,
    number,
    register,
)
from metricsd.ingest.normalize import referer_path
from metricsd.ingest.pages import PageBudget, Templates
from metricsd.ingest.selfmetrics import SelfMetrics
from metricsd.store.series import FamilySpec, Store
from metricsd.vitals import (
    CONNECTIONS,
    NAVIGATION_TYPES,
    RATINGS,
    VITALS,
    connection_type,
    device_class,
)

UNKNOWN_PAGE = "unknown"
VITALS_RATINGS = "metricsd_web_vitals_ratings"  # counter
VITALS_WINDOW_RATINGS = "metricsd_web_vitals_window_ratings"
VITALS_WINDOW_SHARE = "metricsd_web_vitals_window_rating_ratio"
ATTRIBUTION_WINDOW = "metricsd_web_vitals_attribution_window_seconds"
ATTRIBUTION_FAMILY = "attribution"  # store family of the sub-parts: (page, part)
LABELS = ("page", "device")
# The counters' second dimension: navigation type x connection type, nav-major.
EXTRAS = tuple(f"{nav}/{conn}" for nav in NAVIGATION_TYPES for conn in CONNECTIONS)
_CONN_INDEX = {name: i for i, name in enumerate(CONNECTIONS)}
MAX_CLS = 100.0  # a page that shifts more than this is reporting garbage
_NAV_INDEX = {name: i for i, name in enumerate(NAVIGATION_TYPES)}
_OTHER_NAV = _NAV_INDEX["other"]
_PART_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 4.0, 8.0)


def window_shares(
    family: Any, stats: Any, rows: Any
) -> list[list[float | int]]:
    """Share of the window's page views per rating (0 for an empty window)."""
    counts = stats.tag_counts[rows]
    totals = stats.counts[rows].reshape(-1, 1)
    out: list[list[float | int]] = np.where(totals > 0, counts / np.maximum(totals, 1),
                                            0.0).tolist()
    return out


@dataclass
class VitalsState:
    """What outlives a reload of the beacon kind: the page budget and attribution."""

    budget: PageBudget
    attribution: AttributionStore = field(default_factory=AttributionStore)


_STATE: WeakKeyDictionary[Store, VitalsState] = WeakKeyDictionary()


class Dedupe:
    """Recently seen web-vitals ids -> where their sample sits, bounded in time and count."""

    def __init__(self, ttl: float, max_ids: int) -> None:
        self.ttl = ttl
        self.max_ids = max_ids
        # (name, id) -> [first seen, slot, generation, seq, value, tag]
        self.seen: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()

    def get(self, key: tuple[str, str], now: float) -> list[Any] | None:
        cutoff = now - self.ttl
        seen = self.seen
        while seen:  # insertion order is first-seen order: expire from the front
            oldest = next(iter(seen.values()))
            if oldest[0] >= cutoff:
                break
            seen.popitem(last=False)
        return seen.get(key)

    def add(self, key: tuple[str, str], entry: list[Any]) -> None:
        if len(self.seen) >= self.max_ids:
            self.seen.popitem(last=False)
        self.seen[key] = entry


@register
class VitalsBeacon(BeaconType):
    """A web-vitals Metric object (`name`, `value`, `rating`, `delta`, `id`, ...) per item."""

    name = "vitals"
    needs_token = False
    cors = True
    series = (*(FamilySpec(spec.name, LABELS, spec.buckets, RATINGS, EXTRAS, budget="vitals")
                for spec in VITALS.values()),
              FamilySpec(ATTRIBUTION_FAMILY, ("page", "part"), _PART_BUCKETS, ("",),
                         budget="vitals"))

    @classmethod
    def exports(cls, store: Store) -> list[View]:
        out = []
        vitals = cls.series[: len(VITALS)]
        for spec, series in zip(VITALS.values(), vitals, strict=True):
            unit = " (seconds)" if spec.unit else " (unitless)"
            out.append(histogram(spec.histogram_name, f"{spec.help}{unit}, cumulative", series))
            out.append(window_summary(spec.window_name,
                                      f"{spec.help}{unit} quantiles {window_help(store)}", series))
        # One family for every vital, told apart by a `metric` label.
        every = tuple((s.name, (("metric", s.name),)) for s in vitals)
        ratings = tuple(Column("_total", (("rating", rating), ("navigation_type", nav),
                                          ("connection", conn)))
                        for rating in RATINGS for nav in NAVIGATION_TYPES for conn in CONNECTIONS)
        labels_ = ("metric", *LABELS)
        out.append(View(Family(VITALS_RATINGS, "counter",
                               "Web Vitals reports by rating, navigation and connection type, "
                               "cumulative", labels_, ratings, omit_zero=True),
                        every, tag_extra_totals))
        out.append(View(Family(VITALS_WINDOW_RATINGS, "gauge",
                               "Web Vitals reports in the current window by rating",
                               labels_, value_columns("rating", "gauge", RATINGS)),
                        every, window_tags))
        out.append(View(Family(VITALS_WINDOW_SHARE, "gauge",
                               "Share of the window's page views per rating (0..1)",
                               labels_, value_columns("rating", "gauge", RATINGS)),
                        every, window_shares))
        parts = cls.series[-1]
        out.append(window_summary(ATTRIBUTION_WINDOW,
                                  "Web Vitals attribution sub-parts (seconds) quantiles "
                                  f"{window_help(store)}", parts))
        return out

    def __init__(self, config: IngestConfig, store: Store, counters: SelfMetrics) -> None:
        super().__init__(config, store, counters)
        self.dedupe = Dedupe(config.vitals_dedupe_ttl, config.vitals_dedupe_max_ids)
        self.max_ms = config.max_duration_ms
        self.templates = Templates(config.pages.templates)
        state = _STATE.get(store)
        if state is None:
            state = _STATE[store] = VitalsState(PageBudget(
                config.pages.budget, config.series_idle_timeout,
                on_overflow=self._count_other))
            state.budget.on_evict = state.attribution.forget
        state.budget.limit = config.pages.budget
        self.state = state
        # Attribution of the current batch by item id, written by parse, read by record.
        self._attribution: dict[str, Attribution] = {}

    def _count_other(self) -> None:
        self.counters.pages_other[self.name] += 1

    def parse(self, item: Any, ctx: Context) -> Sample:
        item = as_object(item)
        name = item.get("name")
        if type(name) is not str:
            raise BeaconError("name is required: one of " + ", ".join(VITALS), "missing_field")
        spec = VITALS.get(name)
        if spec is None:
            raise BeaconError(
                f"unknown vital {name[:32]!r}: use one of " + ", ".join(VITALS), "unknown_name"
            )
        if spec.unit:  # web-vitals reports times in milliseconds; we export seconds
            value = number(item, "value", 0.0, self.max_ms) / 1000.0
        else:
            value = number(item, "value", 0.0, MAX_CLS)
        if "delta" in item:
            number(item, "delta", -self.max_ms, self.max_ms)
        rating = item.get("rating")
        if rating is not None and rating not in RATINGS:
            raise BeaconError("rating must be one of " + ", ".join(RATINGS), "wrong_type")
        ident = self.string(item, "id")
        nav = self.string(item, "navigationType", required=False)
        page = self.string(item, "page", required=False)
        if page is not None:
            page = self.path(page, "page")
        elif ctx.referer:
            page = self._referer_page(ctx.referer)
        assert ident is not None
        page = self.state.budget.admit(page, ctx.now) if page else UNKNOWN_PAGE
        device = device_class(item.get("device"), ctx.user_agent, ctx.ch_mobile)
        conn = _CONN_INDEX[connection_type(item.get("connection"))]
        attr = attribution.parse(spec.name, item.get("attribution"), self.max_len, self.max_ms)
        if attr is not None:
            self._attribution[ident] = attr
        nav_index = _NAV_INDEX.get(nav, _OTHER_NAV) if nav else _NAV_INDEX["navigate"]
        return (
            spec.name,
            (page, device),
            value,
            ctx.now,
            spec.rating_index(value),
            nav_index * len(CONNECTIONS) + conn,
            ident,
        )

    def path(self, raw: str, name: str) -> str:
        """Route templates first (ingest.pages.templates), then the automatic id collapse."""
        path = self.templates.apply(raw)
        if len(path) > self.max_len:
            raise BeaconError(
                f"{name} is longer than {self.max_len} characters once ids become :id",
                "bad_string")
        return path

    def _referer_page(self, referer: str) -> str | None:
        """The page of a Referer header, held to the same rules as the `page` field.

        A header is untrusted bytes (aiohttp keeps undecodable ones as lone surrogates),
        so its path passes metricsd.labels like any beacon field; a bad one rejects the item.
        """
        raw = referer_path(referer[: self.max_len * 4])
        if not raw:
            return None
        return self.path(labels.check(raw, "page (from the Referer header)", self.max_len),
                         "page (from the Referer header)")

    def record(self, samples: list[Sample], result: BatchResult, indexes: list[int]) -> None:
        """Write new ids; a repeated id updates its window sample instead of adding one."""
        pool = self.store.pool
        duplicates = self.counters.vitals_duplicates
        for sample, index in zip(samples, indexes, strict=True):
            family, key, value, stamp, tag, extra, ident = sample
            entry = self.dedupe.get((family, ident), stamp)
            if entry is not None:
                _, slot, generation, seq, old_value, old_tag = entry
                if (old_value, old_tag) != (value, tag) and pool.replace(
                    slot, generation, seq, value, tag
                ):
                    entry[4], entry[5] = value, tag
                    duplicates["updated"] += 1
                else:
                    duplicates["ignored"] += 1
                result.accepted += 1
                continue
            where = self.store.observe(family, key, value, stamp, tag, extra)
            if where is None:
                result.reject(index, SERIES_LIMIT)
                continue
            slot, seq = where
            self.dedupe.add(
                (family, ident), [stamp, slot, int(pool.generation[slot]), seq, value, tag]
            )
            result.accepted += 1
            attr = self._attribution.get(ident)
            if attr is not None:
                self._attribute(family, key[0], value, tag, stamp, attr)
        self._attribution.clear()

    def _attribute(self, vital: str, page: str, value: float, rating: int, stamp: float,
                   attr: Attribution) -> None:
        """Targets into the page's heavy hitters, sub-parts into their window (first report)."""
        self.state.attribution.add(page, vital, value, rating, attr)
        for part, seconds in attr.parts:
            self.store.observe(ATTRIBUTION_FAMILY, (page, part), seconds, stamp)
