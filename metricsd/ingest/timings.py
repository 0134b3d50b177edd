"""API timings from app servers: one request's service, route, method, status and duration."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import numpy as np

from metricsd.config import IngestConfig
from metricsd.errors import BeaconError
from metricsd.export.beacons import (
    View,
    histogram,
    tag_counter,
    window_help,
    window_summary,
    window_tag_gauge,
)
from metricsd.ingest import columnar
from metricsd.ingest.base import (
    SERIES_LIMIT,
    BatchResult,
    BeaconType,
    Context,
    Sample,
    as_object,
    number,
    register,
    stamp_in_range,
    timestamp,
)
from metricsd.ingest.normalize import normalize_method
from metricsd.ingest.selfmetrics import SelfMetrics
from metricsd.store.series import LATENCY_BUCKETS, STATUS_CLASSES, VECTOR_BATCH, FamilySpec, Store

# Raw (service, route, method) triples that passed validation once, mapped to their
# normalised series key. The same triples repeat all day, so one dict lookup replaces the
# checks; when the cache fills it is emptied and refills with what is current (bounded
# memory, no LRU bookkeeping on the hot path).
KEY_CACHE_SIZE = 65536

Key = tuple[str, str, str]
API_HISTOGRAM = "metricsd_api_request_duration_seconds"
API_SUMMARY = "metricsd_api_request_window_seconds"
API_REQUESTS = "metricsd_api_requests"  # counter; samples end in _total
API_WINDOW_REQUESTS = "metricsd_api_window_requests"


@register
class TimingsBeacon(BeaconType):
    """`{"service","route","method","status","duration_ms","timestamp"?}` into the api family."""

    name = "timings"
    needs_token = True
    cors = False
    series = (FamilySpec("api", ("service", "route", "method"), LATENCY_BUCKETS,
                         STATUS_CLASSES, budget="timings"),)

    @classmethod
    def exports(cls, store: Store) -> list[View]:
        (api,) = cls.series
        return [
            histogram(API_HISTOGRAM, "API request latency, cumulative", api),
            window_summary(API_SUMMARY, f"API request latency quantiles {window_help(store)}",
                           api),
            tag_counter(API_REQUESTS, "API requests by status class, cumulative", api,
                        "status_class"),
            window_tag_gauge(API_WINDOW_REQUESTS,
                             "API requests in the current window by status class", api,
                             "status_class"),
        ]

    def __init__(self, config: IngestConfig, store: Store, counters: SelfMetrics) -> None:
        super().__init__(config, store, counters)
        self.max_ms = config.max_duration_ms
        self.keys: dict[Key, Key] = {}
        text = Annotated[str, msgspec.Meta(min_length=1, max_length=config.max_string_length)]
        timing = msgspec.defstruct(
            "Timing",
            [
                ("service", text),
                ("route", text),
                ("method", text),
                ("status", Annotated[int, msgspec.Meta(ge=100, le=599)]),
                ("duration_ms", Annotated[float, msgspec.Meta(ge=0, le=config.max_duration_ms)]),
                ("timestamp", float | None, None),
            ],
            kw_only=True,
        )
        self._decode_batch = msgspec.json.Decoder(list[timing]).decode  # type: ignore[valid-type]
        self._decode_one = msgspec.json.Decoder(timing).decode
        self._columnar = columnar.ColumnarDecoder(config.max_string_length, self.max_ms)
        self._slot_of: dict[Key, int] = {}  # raw triple -> slot, valid for one store layout
        self._layout = -1

    def ingest_body(self, body: bytes, ctx: Context) -> BatchResult | None:
        """Fast path for a batch whose every item is valid: typed decoding in C, no per-item
        checks in Python. None sends the body down the general path, which keeps the
        valid items of a bad batch and explains the others."""
        if b'"duration_ms":[' in body:  # series objects, as the Python client sends them
            return self._ingest_series(body, ctx)
        try:
            start = body.lstrip()[:1]
            # Structs made by msgspec.defstruct at run time: mypy sees no fields on them.
            items: list[Any] = (self._decode_batch(body) if start == b"["
                                else [self._decode_one(body)])
        # RecursionError: msgspec skips unknown fields recursively; deep nesting goes to the
        # general path, whose decoder refuses it before decoding.
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return self._ingest_series(body, ctx)
        n = len(items)
        if not n or n > self.config.max_items:
            return None
        if n < VECTOR_BATCH:
            return self._ingest_few(items, ctx.now)
        raw = list(zip([t.service for t in items], [t.route for t in items],
                       [t.method for t in items], strict=True))
        now = ctx.now
        stamps: list[Any] = [t.timestamp for t in items]
        if stamps.count(None) == n:
            stamps = [now] * n
        else:
            stamps = [now if s is None else stamp_in_range(s, now) for s in stamps]
            if None in stamps:
                return None
        slots = self._known_slots(raw)
        if slots is not None:  # every series exists: one lookup per item, one compiled write
            values = np.fromiter([t.duration_ms for t in items], np.float64, n)
            values /= 1000.0  # the same IEEE division as duration_ms / 1000.0
            self.store.families["api"].record_many(
                np.array(slots, dtype=np.int64), values, np.array(stamps, dtype=np.float64),
                np.fromiter([t.status for t in items], np.int64, n),
                np.zeros(n, dtype=np.int64), tag_div=100)
            return self._outcome([True] * n)
        try:
            keys = list(map(self.keys.__getitem__, raw))
        except KeyError:
            return None  # a triple not seen before: the general path vets it
        stored = self.store.observe_columns(
            "api", keys, [t.duration_ms / 1000.0 for t in items], stamps,
            [t.status // 100 - 1 for t in items], [0] * n,
        )
        return self._outcome(stored)

    def _known_slots(self, raw: list[Key]) -> list[int] | None:
        """The slot of every raw (service, route, method), or None if one has no series yet
        (the store then allocates it and applies the series budget).

        Cached from raw triple straight to slot, so a batch costs one dict lookup per item;
        the cache is dropped whenever the store releases a slot (`Store.layout`), so a
        triple never writes into a slot that now belongs to another series.
        """
        store = self.store
        if self._layout != store.layout:
            self._slot_of.clear()
            self._layout = store.layout
        cache = self._slot_of
        try:
            return list(map(cache.__getitem__, raw))
        except KeyError:
            pass
        slot_of = store.families["api"].slot_of
        out = []
        for triple in raw:
            slot = cache.get(triple)
            if slot is None:
                key = self.keys.get(triple)
                slot = None if key is None else slot_of.get(key)
                if slot is None:
                    return None
                if len(cache) >= KEY_CACHE_SIZE:
                    cache.clear()
                cache[triple] = slot
            out.append(slot)
        return out

    def _ingest_series(self, body: bytes, ctx: Context) -> BatchResult | None:
        """Fast path of columnar batches: every object of a known series, every element
        valid; one vectorised write for the whole batch."""
        objects = self._columnar.decode(body)
        if not objects:
            return None
        cols = columnar.columns(objects, self.keys, ctx.now)
        if cols is None or len(cols[2]) > self.config.max_items:
            return None
        keys, counts, values, stamps, statuses = cols
        stored = self.store.observe_series("api", keys, counts, values, stamps, statuses)
        result = BatchResult()
        for index, (ok, n) in enumerate(zip(stored, counts, strict=True)):
            if ok:
                result.accepted += n
            else:
                for element in range(n):
                    result.reject(index, SERIES_LIMIT, element)
        if result.rejected:
            self.counters.rejected[(self.name, "series_limit")] += result.rejected
        self.counters.accepted[self.name] += result.accepted
        return result

    def count(self, items: list[Any]) -> int:
        return columnar.sample_count(items)

    def ingest(self, items: list[Any], ctx: Context) -> BatchResult:
        """Rows as every beacon type; series objects element by element, by the same parser."""
        if not any(columnar.is_columnar(item) for item in items):
            return super().ingest(items, ctx)
        return columnar.ingest_series(self, items, ctx, ("service", "route", "method"), "status")

    def _ingest_few(self, items: list[Any], now: float) -> BatchResult | None:
        """A handful of typed items (single beacons): a plain loop beats building columns."""
        keys = self.keys
        samples = []
        for t in items:
            key = keys.get((t.service, t.route, t.method))
            stamp = now if t.timestamp is None else stamp_in_range(t.timestamp, now)
            if key is None or stamp is None:
                return None  # the general path vets it and says what is wrong
            samples.append((key, t.duration_ms / 1000.0, stamp, t.status // 100 - 1))
        observe = self.store.observe
        return self._outcome([observe("api", key, value, stamp, tag) is not None
                              for key, value, stamp, tag in samples])

    def _outcome(self, stored: list[bool]) -> BatchResult:
        """The answer and the counters for a batch the fast path stored (True per sample)."""
        result = BatchResult()
        if False not in stored:
            result.accepted = len(stored)
        else:
            for index, ok in enumerate(stored):
                if ok:
                    result.accepted += 1
                else:
                    result.reject(index, SERIES_LIMIT)
            self.counters.rejected[(self.name, "series_limit")] += result.rejected
        self.counters.accepted[self.name] += result.accepted
        return result

    def parse(self, item: Any, ctx: Context) -> Sample:
        # Fast path: a triple seen before and plain numbers in range. Anything else goes
        # to `_explain`, which validates field by field and names the first problem.
        if type(item) is dict:
            s = item.get("service")
            r = item.get("route")
            m = item.get("method")
            status = item.get("status")
            duration = item.get("duration_ms")
            if (
                type(s) is str
                and type(r) is str
                and type(m) is str
                and type(status) is int
                and (type(duration) is float or type(duration) is int)
            ):
                key = self.keys.get((s, r, m))
                if (
                    key is not None
                    and 100 <= status <= 599
                    and 0.0 <= duration <= self.max_ms
                    and "timestamp" not in item
                ):
                    return ("api", key, duration / 1000.0, ctx.now, status // 100 - 1, 0, "")
        return self._explain(item, ctx)

    def _explain(self, item: Any, ctx: Context) -> Sample:
        """The slow path: validate field by field, raising the first problem found."""
        item = as_object(item)
        service = self.string(item, "service")
        route = self.string(item, "route")
        method = self.string(item, "method")
        status = item.get("status")
        if type(status) is not int:
            if status is None:
                raise BeaconError("status is required", "missing_field")
            raise BeaconError("status must be an integer HTTP status code", "wrong_type")
        if not 100 <= status <= 599:
            raise BeaconError("status must be between 100 and 599", "out_of_range")
        duration_ms = number(item, "duration_ms", 0.0, self.max_ms)
        stamp = timestamp(item, ctx.now)
        assert service is not None and route is not None and method is not None
        key = (service, self.path(route, "route"), normalize_method(method))
        if len(self.keys) >= KEY_CACHE_SIZE:
            self.keys.clear()
        self.keys[(service, route, method)] = key
        return ("api", key, duration_ms / 1000.0, stamp, status // 100 - 1, 0, "")
