"""The timings fast path (typed decoding) must record exactly what the general path does."""

from __future__ import annotations

import time

import numpy as np
import orjson

from metricsd.config import load_config
from metricsd.ingest import store_families
from metricsd.ingest.base import Context
from metricsd.ingest.selfmetrics import SelfMetrics
from metricsd.ingest.timings import TimingsBeacon
from metricsd.store.series import Store


def make(max_series=100):
    config = load_config(None, env={}).ingest
    store = Store(max_series=max_series, window_samples=64, window_seconds=300,
                  idle_timeout=3600, families=store_families())
    return TimingsBeacon(config, store, SelfMetrics()), store


def batch(now, n=200):
    rng = np.random.default_rng(5)
    return [{"service": f"s{i % 3}", "route": f"/o/{i}", "method": "post",
             "status": int(rng.choice([200, 201, 404, 503])),
             "duration_ms": float(rng.lognormal(2, 1)),
             **({"timestamp": now - 10 - i % 5} if i % 4 == 0 else {})} for i in range(n)]


def state(store, now):
    family = store.families["api"]
    stats = store.window_stats(family, now)
    return {key: (family.buckets[slot].tolist(), family.counters[slot].tolist(),
                  round(float(family.sums[slot]), 9), stats.counts[row],
                  stats.quantiles[row].tolist())
            for row, (key, slot) in enumerate(zip(stats.keys, stats.slots, strict=True))}


def test_fast_path_records_what_the_general_path_records():
    now = time.time()
    items = batch(now)
    body = orjson.dumps(items)
    general, general_store = make()
    fast, fast_store = make()
    # Warm the label caches of `fast` with a first pass, then compare one pass each.
    assert fast.ingest_body(body, Context(now)) is None  # unseen strings: general path
    fast.ingest(items, Context(now))
    fast_store_before = state(fast_store, now)
    result = fast.ingest_body(body, Context(now))
    assert result is not None and result.accepted == len(items)
    general.ingest(items, Context(now))
    general.ingest(items, Context(now))
    assert state(fast_store, now) == state(general_store, now)
    assert state(fast_store, now) != fast_store_before


def test_fast_path_declines_bad_batches_and_counts_the_series_limit():
    now = time.time()
    beacon, _ = make(max_series=2)
    good = {"service": "a", "route": "/x", "method": "GET", "status": 200, "duration_ms": 1.0}
    beacon.ingest([good], Context(now))
    for bad in ({**good, "status": True}, {**good, "duration_ms": -1},
                {**good, "timestamp": now + 86400}, {**good, "route": "/new"}):
        assert beacon.ingest_body(orjson.dumps([good, bad]), Context(now)) is None
    beacon.ingest([{**good, "service": "b"}, {**good, "service": "c"}], Context(now))
    body = orjson.dumps([good, {**good, "service": "b"}, {**good, "service": "c"}])
    result = beacon.ingest_body(body, Context(now))
    assert (result.accepted, result.rejected) == (2, 1)
    assert result.errors[0]["index"] == 2 and result.errors[0]["reason"] == "series_limit"


def test_large_fast_batch_reports_series_limit_per_item():
    now = time.time()
    beacon, _ = make(max_series=2)
    items = [{"service": "a", "route": f"/r{i % 3}", "method": "GET", "status": 200,
              "duration_ms": 1.0} for i in range(60)]  # three series, room for two
    beacon.ingest(items[:3], Context(now))  # learn the strings (general path)
    result = beacon.ingest_body(orjson.dumps(items), Context(now))
    assert (result.accepted, result.rejected) == (40, 20)
    assert [e["index"] for e in result.errors] == list(range(2, 60, 3))
    assert beacon.counters.rejected[("timings", "series_limit")] == 21


def test_cached_slots_are_dropped_when_a_series_expires():
    """The fast path caches raw triple -> slot; after expiry that slot may belong to
    another series, which must never receive the old triple's samples."""
    beacon, store = make(max_series=1)
    now = time.time()
    x = [{"service": "s", "route": "/x", "method": "GET", "status": 200,
          "duration_ms": 1.0}] * 40
    y = [{**item, "route": "/y"} for item in x]
    beacon.ingest(x, Context(now))  # general path: allocates /x
    assert beacon.ingest_body(orjson.dumps(x), Context(now)).accepted == 40  # cached slot
    assert store.expire(now + 7200) == 1
    beacon.ingest(y, Context(now + 7200))  # /y takes the freed slot
    result = beacon.ingest_body(orjson.dumps(x), Context(now + 7200))
    assert result is not None and result.accepted == 0  # /x: no slot left (max_series 1)
    family = store.families["api"]
    assert list(family.slot_of) == [("s", "/y", "GET")]
    assert int(family.counters[family.slot_of[("s", "/y", "GET")]].sum()) == 40
