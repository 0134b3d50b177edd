"""The protobuf exposition, read back with a small wire decoder written from the protobuf
spec (not from the encoder): families, types, labels, classic and native buckets; and
GET /metrics choosing it only when the scraper asks."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from prometheus_client import Counter, Gauge

from metricsd.app import create_app
from metricsd.export import protobuf as pb
from metricsd.export.protobuf import PROTOBUF_CONTENT_TYPE, wants_protobuf
from metricsd.export.registry import Registry

Message = dict[int, list[Any]]

PROMETHEUS_242_ACCEPT = (  # what Prometheus 2.42 sends with native histograms enabled
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
    "encoding=delimited;q=0.8,application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,"
    "*/*;q=0.2")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode(data: bytes) -> Message:
    """field number -> values (ints for varints, floats for fixed64, bytes for the rest)."""
    out: Message = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value = struct.unpack("<d", data[pos:pos + 8])[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.setdefault(field, []).append(value)
    return out


def unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def families(body: bytes) -> dict[str, Message]:
    out = {}
    pos = 0
    while pos < len(body):
        length, pos = _varint(body, pos)
        family = decode(body[pos:pos + length])
        pos += length
        out[family[1][0].decode()] = family
    return out


def labels(metric: Message) -> dict[str, str]:
    pairs = [decode(p) for p in metric.get(1, [])]
    return {p[1][0].decode(): p[2][0].decode() for p in pairs}


def test_wire_primitives_match_the_protobuf_spec():
    assert pb.varint(1) == b"\x01"
    assert pb.varint(300) == b"\xac\x02"  # the encoding guide's example
    assert [pb.zigzag(n) for n in (0, -1, 1, -2, 2147483647, -2147483648)] == [
        0, 1, 2, 3, 4294967294, 4294967295]


@pytest.mark.parametrize(("accept", "expected"), [
    (PROMETHEUS_242_ACCEPT, True),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=delimited", True),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=text", False),  # the text protobuf format is not served
    ("application/vnd.google.protobuf;proto=other.Message;encoding=delimited", False),
    ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", False),
    ("text/plain;q=0.9,application/vnd.google.protobuf;"
     "proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5", False),
    ("", False),
])
def test_wants_protobuf(accept, expected):
    assert wants_protobuf(accept) is expected


async def test_counters_and_gauges_keep_their_sample_names():
    registry = Registry()  # the registry /metrics uses: members listed in order
    Counter("demo_requests", "Requests.", ["code"], registry=registry).labels("200").inc(3)
    Gauge("demo_temperature", "Degrees.", registry=registry).set(-1.5)
    found = families(await pb.render(registry))
    counter = found["demo_requests_total"]
    assert counter[3] == [pb.COUNTER] and counter[2] == [b"Requests."]
    [metric] = [decode(m) for m in counter[4]]
    assert labels(metric) == {"code": "200"}
    assert decode(metric[3][0])[1] == [3.0]
    assert "demo_requests_created" not in found
    gauge = found["demo_temperature"]
    assert gauge[3] == [pb.GAUGE]
    assert decode(decode(gauge[4][0])[2][0])[1] == [-1.5]


async def test_metrics_serves_native_histograms_when_asked(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config()))
    values = [0.0, 0.001, 0.001, 1.0, 1.0, 1.0, 2.0, 30.0]
    resp = await client.post("/v1/beacons/timings", json=[
        {"service": "s", "route": "/r", "method": "GET", "status": 200, "duration_ms": v * 1000}
        for v in values])
    assert resp.status == 202
    resp = await client.get("/metrics", headers={"Accept": PROMETHEUS_242_ACCEPT})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == PROTOBUF_CONTENT_TYPE
    found = families(await resp.read())
    histogram = found["metricsd_api_request_duration_seconds"]
    assert histogram[3] == [pb.HISTOGRAM]
    [metric] = [decode(m) for m in histogram[4]]
    assert labels(metric) == {"service": "s", "route": "/r", "method": "GET"}
    h = decode(metric[7][0])
    assert h[1] == [len(values)] and h[2][0] == pytest.approx(sum(values))
    # Classic buckets: cumulative, +Inf left to Prometheus (it is the count).
    classic = {decode(b)[2][0]: decode(b)[1][0] for b in h[3]}
    assert classic[0.005] == 3 and classic[1.0] == 6 and classic[30.0] == 8
    assert float("inf") not in classic
    # Native: schema 3, zero bucket for the 0, and the rest in exponential buckets.
    assert [unzigzag(n) for n in h[5]] == [3]
    assert h[6] == [2.0**-16] and h[7] == [1]
    spans = [decode(s) for s in h[12]]
    deltas = [unzigzag(d) for d in h[13]]
    buckets: dict[int, int] = {}
    position = count = i = 0
    for span in spans:
        position += unzigzag(span.get(1, [0])[0])
        for _ in range(span[2][0]):
            count += deltas[i]
            buckets[position] = count
            position, i = position + 1, i + 1
    # 0.001 s: 2^-10 = 0.000977 < 0.001 <= 2^(-79/8): key -79; 1.0: key 0; 2.0: key 8;
    # 30 s: 2^(39/8) = 29.3 < 30 <= 2^5 = 32: key 40.
    assert buckets == {-79: 2, 0: 3, 8: 1, 40: 1}
    # Summaries and counters of the same data are there too.
    assert found["metricsd_api_request_window_seconds"][3] == [pb.SUMMARY]
    assert found["metricsd_api_requests_total"][3] == [pb.COUNTER]


async def test_text_and_openmetrics_are_unchanged(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config()))
    text = await client.get("/metrics")
    assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    om = await client.get("/metrics", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert "native" not in (await text.text()).lower()


async def test_the_snapshot_is_not_changed_by_later_beacons(make_config):
    from metricsd.core import REGISTRY
    from metricsd.export.beacons import StoreSource
    from metricsd.ingest import STORE

    app = create_app(make_config())
    store = app[STORE]
    key = ("s", "/r", "GET")
    for v in (0.1, 0.2, 0.3):
        store.observe("api", key, v, 100.0, 1)
    await store.refresh(101.0)
    [source] = [s for s in app[REGISTRY].sources() if isinstance(s, StoreSource)]
    build = source.native_snapshot()
    for v in (5.0, 6.0):  # written after the snapshot, before it is built
        store.observe("api", key, v, 102.0, 1)
    histogram = next(m for m in build() if m.name == "metricsd_api_request_duration_seconds")
    [native] = [s.native_histogram for s in histogram.samples if s.native_histogram]
    assert native.count_value == 3
    bucket_counts = [sum(native.pos_deltas[: i + 1]) for i in range(len(native.pos_deltas))]
    assert sum(bucket_counts) == 3  # 0.1, 0.2, 0.3: no bucket for 5 s or 6 s
    count = next(s.value for s in histogram.samples if s.name.endswith("_count"))
    assert count == 3


async def test_every_store_histogram_gets_native_buckets(make_config):
    from metricsd.core import REGISTRY
    from metricsd.export.beacons import StoreSource
    from metricsd.ingest import STORE
    from metricsd.vitals import VITALS

    app = create_app(make_config())
    store = app[STORE]
    store.observe("api", ("s", "/r", "GET"), 0.25, 100.0, 1)
    store.observe("operation", ("s", "ai.generate"), 1.5, 100.0, 0)
    for spec in VITALS.values():
        store.observe(spec.name, ("/", "desktop"), 0.5, 100.0, 0)  # (page, device)
    await store.refresh(101.0)
    [source] = [s for s in app[REGISTRY].sources() if isinstance(s, StoreSource)]
    histograms = {f.name for f in source.families if f.type == "histogram"}
    assert histograms == set(source.histograms()) == {
        "metricsd_api_request_duration_seconds", "metricsd_operation_duration_seconds",
        *(f"metricsd_web_vitals_{spec.name.lower()}" + ("_seconds" if spec.unit else "")
          for spec in VITALS.values())}
    for metric in source.native_snapshot()():
        if metric.type == "histogram":
            natives = [s.native_histogram for s in metric.samples if s.native_histogram]
            assert len(natives) == 1, metric.name
            assert natives[0].count_value == 1 and natives[0].schema == 3
