"""Series budget: cardinality capped, ids collapsed, idle series expired, memory bounded."""

from __future__ import annotations

import time
import tracemalloc
import uuid

import numpy as np

from metricsd.app import create_app
from metricsd.core import REGISTRY
from metricsd.ingest import STORE, store_families
from metricsd.ingest.normalize import normalize_path
from metricsd.store.series import Store


def test_normalisation_collapses_ids():
    cases = {
        "/orders/123": "/orders/:id",
        "/orders/123/items/9?expand=1#top": "/orders/:id/items/:id",
        f"/users/{uuid.uuid4()}": "/users/:id",
        "/blobs/9f86d081884c7d659a2feaa0c55ad015": "/blobs/:id",
        "/t/01ARZ3NDEKTSV4RRFFQ69G5FAV": "/t/:id",  # ULID
        "/orders/{id}": "/orders/{id}",  # a template stays a template
        "/search/shoes": "/search/shoes",
        "/deadbeef": "/deadbeef",  # short words that happen to be hex stay
        "//a//b/": "/a/b",
        "": "/",
    }
    assert {raw: normalize_path(raw) for raw in cases} == cases


async def test_100k_raw_routes_stay_within_max_series(aiohttp_client, make_config):
    app = create_app(make_config({"ingest": {"max_series": 503, "budgets": {"timings": 500},
                                             "window": {"samples": 64}}}))
    client = await aiohttp_client(app)
    store = app[STORE]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for start in range(0, 100_000, 5000):
        batch = []
        for i in range(start, start + 5000):
            # Half are ids that must collapse, half are genuinely distinct words.
            route = f"/orders/{i}" if i % 2 else f"/search/term{chr(97 + i % 26)}x{i}"
            batch.append({"service": "shop", "route": route, "method": "GET", "status": 200,
                          "duration_ms": 5.0})
        resp = await client.post("/v1/beacons/timings", json=batch)
        assert resp.status == 202
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    registry = app[REGISTRY]
    assert len(store.families["api"]) == 500
    assert registry.get_sample_value("metricsd_series", {"family": "api"}) == 500
    # All 50,000 id routes landed in one series; 49,501 distinct words found no slot.
    assert registry.get_sample_value(
        "metricsd_api_requests_total",
        {"service": "shop", "route": "/orders/:id", "method": "GET", "status_class": "2xx"},
    ) == 50_000
    assert registry.get_sample_value(
        "metricsd_series_dropped_samples_total", {"family": "api"}) == 50_000 - 499
    # Python-side growth is the bounded caches, not per-route state (rings are numpy,
    # preallocated before the snapshot).
    assert grown < 40 * 2**20, f"python heap grew by {grown / 2**20:.1f} MiB"


def test_ring_memory_is_preallocated_and_fixed():
    store = Store(max_series=1000, window_samples=2048, window_seconds=300, idle_timeout=60,
                  families=store_families())
    pool = store.pool
    nbytes = pool.values.nbytes + pool.stamps.nbytes + pool.tags.nbytes + pool.top.nbytes
    # value, stamp, a 4-bit tag and, for the upper half plus 1/32, a uint16 column.
    assert nbytes == 1000 * (2048 * (8 + 8 + 0.5) + (1025 + 64 + 1) * 2)
    for i in range(5000):
        store.observe("api", ("s", f"/r{i}", "GET"), 0.1, 1.0, 1)
    assert store.series_count == 1000
    assert pool.values.nbytes + pool.stamps.nbytes + pool.tags.nbytes + pool.top.nbytes == nbytes


def test_idle_series_expire_and_free_their_slot():
    store = Store(max_series=2, window_samples=16, window_seconds=300, idle_timeout=60,
                  families=store_families())
    now = time.time()
    store.observe("api", ("s", "/old", "GET"), 0.1, now - 120, 1)
    store.observe("api", ("s", "/new", "GET"), 0.2, now, 1)
    assert store.observe("api", ("s", "/third", "GET"), 0.3, now, 1) is None
    assert store.expire(now) == 1
    assert store.expired["api"] == 1
    assert store.observe("api", ("s", "/third", "GET"), 0.3, now, 1) is not None
    stats = store.window_stats(store.families["api"], now)
    got = dict(zip(stats.keys, stats.quantiles[:, 0].tolist(), strict=True))
    # The reused slot shows only the new series' sample, never the expired one's.
    assert got == {("s", "/new", "GET"): 0.2, ("s", "/third", "GET"): 0.3}
    assert np.array_equal(stats.counts, [1, 1])
