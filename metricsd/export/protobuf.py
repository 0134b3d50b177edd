"""The protobuf exposition (io.prometheus.client.MetricFamily, length-delimited), by hand.

Prometheus asks for it first when native histograms are enabled, and it is the only
format that carries them. The same families the text writer renders (prometheus_client
`Metric` objects) are encoded here; a histogram series whose family also carries a sample
with `native_histogram` set gets the sparse exponential buckets (schema, zero bucket,
spans, deltas) next to its classic buckets. The wire format is written directly (varints,
zigzag, length prefixes; metrics.proto is proto2, so repeated scalars are not packed):
no generated code, no protobuf runtime.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import NativeHistogram, Sample

from metricsd.export.beacons import StoreSource
from metricsd.export.registry import Registry, SourceCollector

PROTOBUF_CONTENT_TYPE = ("application/vnd.google.protobuf; "
                         "proto=io.prometheus.client.MetricFamily; encoding=delimited")
_PROTO = "io.prometheus.client.MetricFamily"

# MetricType
COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM = 0, 1, 2, 3, 4
_DOUBLE = struct.Struct("<d")


def _q(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def wants_protobuf(accept: str) -> bool:
    """True when the scraper prefers the delimited MetricFamily protobuf (q-values honoured)."""
    best_other = 0.0
    protobuf = 0.0
    for part in accept.split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        if media == "application/vnd.google.protobuf":
            options = {p.split("=", 1)[0].strip(): p.partition("=")[2].strip()
                       for p in params}
            if options.get("proto") == _PROTO and options.get("encoding") == "delimited":
                protobuf = max(protobuf, _q(params))
        elif media:
            best_other = max(best_other, _q(params))
    return protobuf > 0 and protobuf >= best_other


# ---- wire format ------------------------------------------------------------------------


_SMALL = [bytes((i,)) for i in range(128)]


def varint(value: int) -> bytes:
    """Base-128 varint of a non-negative int (negative int64 as two's complement, 10 bytes)."""
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def zigzag(value: int) -> int:
    """sint32/sint64 encoding: small magnitudes, either sign, stay short."""
    return (value << 1) ^ (value >> 63) if value < 0 else value << 1


# Field keys (field number << 3 | wire type) of every field used: one byte each.
_KEY = {(field, wire): varint(field << 3 | wire) for field in range(1, 17) for wire in (0, 1, 2)}


def _key(field: int, wire: int) -> bytes:
    return _KEY[(field, wire)]


def _uint(field: int, value: int) -> bytes:
    return _KEY[(field, 0)] + varint(value)


def _sint(field: int, value: int) -> bytes:
    return _KEY[(field, 0)] + varint(zigzag(value))


def _double(field: int, value: float) -> bytes:
    return _KEY[(field, 1)] + _DOUBLE.pack(value)


def _bytes(field: int, data: bytes) -> bytes:
    return _KEY[(field, 2)] + varint(len(data)) + data


def _string(field: int, text: str) -> bytes:
    return _bytes(field, text.encode("utf-8"))


# ---- messages ---------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _label_set(items: tuple[tuple[str, str], ...]) -> bytes:
    """Encoded label pairs; the same series repeats across families, so they are cached."""
    return b"".join(_bytes(1, _string(1, k) + _string(2, v)) for k, v in items)


def _labels(labels: Mapping[str, str]) -> bytes:
    return _label_set(tuple(labels.items()))


@lru_cache(maxsize=4096)
def _bucket_bound(bound: float) -> bytes:
    return _double(2, bound)


def _metric(labels: Mapping[str, str], field: int, body: bytes,
            timestamp: float | None = None) -> bytes:
    """A Metric: labels, the typed value message in `field`, optional timestamp_ms."""
    out = _labels(labels) + _bytes(field, body)
    if timestamp is not None:
        out += _KEY[(6, 0)] + varint(int(float(timestamp) * 1000))
    return out


def _family(name: str, doc: str, kind: int, metrics: Iterable[bytes]) -> bytes:
    body = _string(1, name) + _string(2, doc) + _uint(3, kind)
    body += b"".join(_bytes(4, m) for m in metrics)
    return varint(len(body)) + body


def _count(value: float) -> int:
    return int(value) if math.isfinite(value) and value >= 0 else 0


def native_fields(native: NativeHistogram) -> bytes:
    """Histogram fields 5-13: schema, zero bucket, positive (and negative) spans and deltas."""
    out = _sint(5, native.schema) + _double(6, native.zero_threshold)
    out += _uint(7, _count(native.zero_count))
    for spans, deltas, span_field, delta_field in (
        (native.neg_spans, native.neg_deltas, 9, 10),
        (native.pos_spans, native.pos_deltas, 12, 13),
    ):
        for span in spans or ():
            out += _bytes(span_field, _sint(1, span.offset) + _uint(2, span.length))
        for delta in deltas or ():
            out += _sint(delta_field, int(delta))
    if not native.pos_spans and not native.neg_spans:
        out += _bytes(12, _sint(1, 0) + _uint(2, 0))  # no-op span: native though empty
    return out


@dataclass
class _HistogramSeries:
    """What the samples of one histogram series say, gathered before encoding."""

    buckets: list[tuple[float, float]] = field(default_factory=list)
    count: float | None = None
    total: float | None = None
    native: NativeHistogram | None = None
    timestamp: float | None = None

    def encode(self) -> bytes:
        native = self.native
        count = self.count if self.count is not None else (native.count_value if native else 0)
        total = self.total if self.total is not None else (native.sum_value if native else 0)
        body = _uint(1, _count(float(count))) + _double(2, float(total))
        bucket = _KEY[(3, 2)]
        for bound, cumulative in self.buckets:
            inner = _uint(1, _count(cumulative)) + _bucket_bound(bound)
            body += bucket + varint(len(inner)) + inner
        if native is not None:
            body += native_fields(native)
        return body


def _stamp(sample: Sample) -> float | None:
    value = sample.timestamp
    if value is None:
        return None
    return float(value) if isinstance(value, int | float) else value.sec + value.nsec / 1e9


def _histograms(metric: Metric) -> Iterator[bytes]:
    name = metric.name
    series: dict[tuple[tuple[str, str], ...], _HistogramSeries] = {}
    for sample in metric.samples:
        key = tuple((k, v) for k, v in sample.labels.items() if k != "le")
        one = series.setdefault(key, _HistogramSeries())
        if sample.native_histogram is not None:
            one.native = sample.native_histogram
        elif sample.name == f"{name}_bucket":
            bound = float(sample.labels["le"])
            if not math.isinf(bound):  # Prometheus adds +Inf from the count
                one.buckets.append((bound, sample.value))
        elif sample.name == f"{name}_count":
            one.count, one.timestamp = sample.value, _stamp(sample)
        elif sample.name == f"{name}_sum":
            one.total = sample.value
    for key, one in series.items():
        yield _metric(dict(key), 7, one.encode(), one.timestamp)


def _summaries(metric: Metric) -> Iterator[bytes]:
    name = metric.name
    series: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
    for sample in metric.samples:
        key = tuple((k, v) for k, v in sample.labels.items() if k != "quantile")
        series.setdefault(key, []).append(sample)
    for key, samples in series.items():
        count, total, quantiles = 0.0, 0.0, b""
        for sample in samples:
            if sample.name == f"{name}_count":
                count = sample.value
            elif sample.name == f"{name}_sum":
                total = sample.value
            elif "quantile" in sample.labels:
                quantiles += _bytes(3, _double(1, float(sample.labels["quantile"]))
                                    + _double(2, sample.value))
        yield _metric(dict(key), 4, _uint(1, _count(count)) + _double(2, total) + quantiles)


def _simple(metric: Metric) -> Iterator[bytes]:
    """Counters, gauges and the rest: one family per sample name (as client_golang names them)."""
    by_name: dict[str, list[Sample]] = {}
    for sample in metric.samples:
        if sample.name.endswith("_created"):
            continue  # created timestamps: Prometheus 2.x does not read them from protobuf
        by_name.setdefault(sample.name, []).append(sample)
    for sample_name, samples in by_name.items():
        if metric.type == "counter" and sample_name.endswith("_total"):
            kind, value_field = COUNTER, 3
        elif metric.type == "gauge":
            kind, value_field = GAUGE, 2
        else:
            kind, value_field = UNTYPED, 5
        yield _family(sample_name, metric.documentation, kind, (
            _metric(s.labels, value_field, _double(1, s.value), _stamp(s)) for s in samples))


def encode_family(metric: Metric) -> bytes:
    """One prometheus_client family as delimited MetricFamily message(s)."""
    if metric.type == "histogram":
        return _family(metric.name, metric.documentation, HISTOGRAM, _histograms(metric))
    if metric.type == "summary":
        return _family(metric.name, metric.documentation, SUMMARY, _summaries(metric))
    return b"".join(_simple(metric))


async def collect(registry: Registry) -> list[Metric]:
    """Every family with samples, members in order. The store's source copies its state on
    the loop and builds its families, native buckets included, in a worker thread; the
    others are collected on the loop (they are small)."""
    out: list[Metric] = []
    for collector in list(registry.members):
        if isinstance(collector, SourceCollector) and isinstance(collector.source, StoreSource):
            families = await asyncio.to_thread(collector.source.native_snapshot())
        else:
            families = list(collector.collect())
        out.extend(metric for metric in families if metric.samples)
    return out


def encode(families: Iterable[Metric]) -> bytes:
    """The body for collected families; pure, so it can run in a worker thread."""
    return b"".join(encode_family(metric) for metric in families)


async def render(registry: Registry) -> bytes:
    """collect() then encode() on the loop (tests, small registries)."""
    return encode(await collect(registry))
