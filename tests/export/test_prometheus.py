"""/metrics: valid for promtool, same samples as prometheus_client, quantiles exact."""

from __future__ import annotations

import asyncio
import math
import subprocess

import numpy as np
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app
from metricsd.core import REGISTRY
from metricsd.export.beacons import StoreSource
from metricsd.export.family import label_string
from metricsd.export.text import format_number
from tests.fixtures.binaries import require_binary

DIST = {
    "uniform": lambda rng, n: rng.uniform(1, 900, n),
    "lognormal": lambda rng, n: rng.lognormal(4, 1.3, n),
    "bimodal": lambda rng, n: rng.permutation(
        np.concatenate([rng.normal(40, 4, n // 2), rng.normal(1500, 90, n - n // 2)])),
    "outliers": lambda rng, n: np.where(rng.random(n) < 0.02, rng.uniform(1e4, 3e4, n),
                                        rng.exponential(20, n)),
}


async def populate(client, n=400, seed=1):
    """Send timings of several shapes and a few vitals; return the durations (ms) sent."""
    rng = np.random.default_rng(seed)
    sent = {}
    for name, make in DIST.items():
        durations = np.abs(make(rng, n))
        sent[name] = durations
        batch = [{"service": "shop", "route": f"/{name}/{i % 3 + 1000}", "method": "GET",
                  "status": (500 if i % 17 == 0 else 200), "duration_ms": float(d)}
                 for i, d in enumerate(durations)]
        # route ids collapse: every item of a distribution lands in one series
        resp = await client.post("/v1/beacons/timings", json=batch)
        assert resp.status == 202
    vitals = [{"name": v, "value": x, "id": f"{v}-{i}", "rating": "good", "delta": x,
               "navigationType": "navigate", "page": f"/p/{i % 2}"}
              for i, (v, x) in enumerate([("LCP", 2100.0), ("CLS", 0.12), ("INP", 180.0),
                                          ("FCP", 900.0), ("TTFB", 300.0), ("LCP", 5000.0)])]
    assert (await client.post("/v1/beacons/vitals", json=vitals)).status == 202
    return sent


@pytest.fixture
async def populated(aiohttp_client, make_config):
    app = create_app(make_config())
    client = await aiohttp_client(app)
    sent = await populate(client)
    return client, app, sent


async def test_exported_quantiles_equal_numpy_percentile(populated):
    client, _, sent = populated
    text = await (await client.get("/metrics")).text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    summary = families["metricsd_api_request_window_seconds"]
    assert summary.type == "summary"
    for name, durations in sent.items():
        expected = np.percentile(durations / 1000.0, [50, 75, 90, 95, 99])
        got = [s.value for s in summary.samples
               if s.labels.get("route") == f"/{name}/:id" and "quantile" in s.labels]
        assert got == pytest.approx(expected, rel=1e-12), name


async def test_promtool_accepts_the_exposition(populated):
    promtool = require_binary("promtool")
    client, _, _ = populated
    body = await (await client.get("/metrics")).read()
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=body, capture_output=True,
        timeout=60)
    # promtool prints lint problems (bad names, units, types) and exits 1 on any of them.
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""


async def test_fast_writer_matches_prometheus_client(populated):
    client, app, _ = populated
    ours = await (await client.get("/metrics")).text()
    theirs = generate_latest(app[REGISTRY]).decode()

    def samples(text):
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    a, b = samples(ours), samples(theirs)
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert value == b[key] or (math.isnan(value) and math.isnan(b[key])), key


async def test_openmetrics_when_asked(populated):
    client, _, _ = populated
    resp = await client.get("/metrics", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await resp.text()
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    families = {f.name: f for f in om_parse(text)}  # the strict OpenMetrics parser
    assert families["metricsd_api_requests"].type == "counter"
    assert families["metricsd_api_request_duration_seconds"].type == "histogram"
    plain = await client.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")


async def test_histogram_is_cumulative_and_counts_match(populated):
    _, app, sent = populated
    registry = app[REGISTRY]
    labels = {"service": "shop", "route": "/uniform/:id", "method": "GET"}
    durations = sent["uniform"] / 1000.0
    for le in ("0.005", "0.1", "0.5", "1.0", "+Inf"):
        bound = math.inf if le == "+Inf" else float(le)
        got = registry.get_sample_value("metricsd_api_request_duration_seconds_bucket",
                                        {**labels, "le": le})
        assert got == np.count_nonzero(durations <= bound), le
    assert registry.get_sample_value(
        "metricsd_api_request_duration_seconds_count", labels) == len(durations)
    errors = sum(1 for i in range(len(durations)) if i % 17 == 0)
    assert registry.get_sample_value(
        "metricsd_api_requests_total", {**labels, "status_class": "5xx"}) == errors


def test_number_and_label_formatting():
    assert [format_number(v) for v in (1.0, 0.25, math.inf, -math.inf, math.nan, 1e20)] == [
        "1", "0.25", "+Inf", "-Inf", "NaN", "1e+20"]
    assert label_string({"a": 'x"y\\z\nw'}) == 'a="x\\"y\\\\z\\nw"'


async def test_cached_text_follows_every_change(aiohttp_client, make_config):
    """Series text is reused between scrapes; it must never lag the store."""
    import time

    from metricsd.ingest import STORE

    clock = [time.time()]
    app = create_app(make_config({"ingest": {"max_series": 6, "window": {"seconds": 60}}}))
    store = app[STORE]
    source = next(s for s in app[REGISTRY].sources() if isinstance(s, StoreSource))
    source.clock = lambda: clock[0]
    client = await aiohttp_client(app)

    def timing(route, ms):
        return {"service": "s", "route": route, "method": "GET", "status": 200,
                "duration_ms": ms}

    async def same_as_library():
        await store.refresh(clock[0])
        ours = await (await client.get("/metrics")).text()
        theirs = generate_latest(app[REGISTRY]).decode()

        def samples(text):
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for f in text_string_to_metric_families(text) for s in f.samples
                    if not s.name.startswith(("metricsd_ingest", "metricsd_series"))}

        a, b = samples(ours), samples(theirs)
        assert a.keys() == b.keys()
        assert all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)
        return ours

    await client.post("/v1/beacons/timings", json=[timing("/a", 10), timing("/b", 20)])
    first = await same_as_library()
    assert await same_as_library() == first  # nothing changed: identical text
    await client.post("/v1/beacons/timings", json=[timing("/a", 300)])
    assert await same_as_library() != first
    clock[0] += 120  # every sample ages out of the 60 s window: quantiles become NaN
    aged = await same_as_library()
    assert 'route="/a",method="GET",quantile="0.5"} NaN' in aged
    store.expire(clock[0] + 7200)  # both series expire; their slots are reused below
    await client.post("/v1/beacons/timings", json=[timing("/c", 5)])
    reused = await same_as_library()
    assert 'route="/a"' not in reused and 'route="/c"' in reused
