"""Columnar timings batches record exactly what the same samples sent as rows record."""

from __future__ import annotations

import random
import time

import orjson
import pytest

from metricsd.config import load_config
from metricsd.ingest import store_families
from metricsd.ingest.base import Context
from metricsd.ingest.selfmetrics import SelfMetrics
from metricsd.ingest.timings import TimingsBeacon
from metricsd.store.series import Store

BAD_ELEMENTS = [  # (field, value) that make one row item invalid
    ("status", 700), ("status", "200"), ("status", None), ("status", 99.5),
    ("duration_ms", -1.0), ("duration_ms", "12"), ("duration_ms", 1e12), ("duration_ms", None),
    ("timestamp", 1.0), ("timestamp", "now"),
]


def make(max_series: int = 100) -> tuple[TimingsBeacon, Store, SelfMetrics]:
    config = load_config(None, env={}).ingest
    store = Store(max_series=max_series, window_samples=64, window_seconds=300,
                  idle_timeout=3600, families=store_families())
    counters = SelfMetrics()
    return TimingsBeacon(config, store, counters), store, counters


def rows(rng: random.Random, now: float, n: int, bad: float) -> list[dict]:
    """Runs of samples of a few series, some elements invalid, some with timestamps."""
    out: list[dict] = []
    while len(out) < n:
        series = {"service": f"s{rng.randrange(3)}", "route": f"/o/{rng.randrange(12)}",
                  "method": rng.choice(["GET", "post"])}
        status = rng.choice([200, 204, 301, 404, 503]) if rng.random() < 0.5 else None
        for _ in range(rng.randint(1, 30)):
            row = {**series, "status": status or rng.choice([200, 201, 404, 500]),
                   "duration_ms": round(rng.lognormvariate(2, 1.5), 3)}
            if rng.random() < 0.2:
                row["timestamp"] = now - rng.uniform(0, 200)
            if rng.random() < bad:
                field, value = rng.choice(BAD_ELEMENTS)
                row[field] = value
            out.append(row)
    return out[:n]


def to_series(items: list[dict]) -> tuple[list[dict], list[tuple[int, int]]]:
    """Consecutive rows of one series as one object; where each row went (index, element)."""
    objects: list[dict] = []
    where: list[tuple[int, int]] = []
    for row in items:
        key = (row["service"], row["route"], row["method"])
        last = objects[-1] if objects else None
        if last is None or (last["service"], last["route"], last["method"]) != key:
            last = {"service": key[0], "route": key[1], "method": key[2], "status": [],
                    "duration_ms": [], "timestamp": []}
            objects.append(last)
        last["status"].append(row.get("status"))
        last["duration_ms"].append(row.get("duration_ms"))
        last["timestamp"].append(row.get("timestamp"))
        where.append((len(objects) - 1, len(last["duration_ms"]) - 1))
    for obj in objects:  # the short forms: one status for all, no timestamps
        if len(set(map(repr, obj["status"]))) == 1 and obj["status"][0] is not None:
            obj["status"] = obj["status"][0]
        if all(t is None for t in obj["timestamp"]):
            del obj["timestamp"]
    return objects, where


def state(store: Store, now: float) -> dict:
    family = store.families["api"]
    pool = store.pool
    stats = store.window_stats(family, now)
    out = {}
    for row, (key, slot) in enumerate(zip(stats.keys, stats.slots, strict=True)):
        n = int(pool.filled[slot])
        out[key] = (family.buckets[slot].tolist(), family.counters[slot].tolist(),
                    float(family.sums[slot]), float(family.last_seen[slot]),
                    pool.values[slot, :n].tolist(), pool.stamps[slot, :n].tolist(),
                    pool.tags_of(slot)[:n].tolist(), int(pool.written[slot]),
                    int(stats.counts[row]), stats.quantiles[row].tolist())
    return out


def send(beacon: TimingsBeacon, items: list, ctx: Context):  # type: ignore[no-untyped-def]
    """What the handler does: the fast path from the body, else the general path."""
    result = beacon.ingest_body(orjson.dumps(items), ctx)
    return result if result is not None else beacon.ingest(items, ctx)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("max_series", [100, 5])
def test_columnar_records_what_rows_record(seed, max_series):
    rng = random.Random(seed)
    now = time.time()
    items = rows(rng, now, rng.randint(1, 400), bad=[0.0, 0.05, 0.3][seed % 3])
    objects, where = to_series(items)
    by_rows, rows_store, rows_counters = make(max_series)
    by_cols, cols_store, cols_counters = make(max_series)
    for _ in range(2):  # the second pass finds every valid series in the key cache
        r = send(by_rows, items, Context(now))
        c = send(by_cols, objects, Context(now))
        assert (c.accepted, c.rejected) == (r.accepted, r.rejected)
        # Same errors, the row's position mapped to (object, element).
        expected = [(*where[e["index"]], e["reason"]) for e in r.errors]
        assert [(e["index"], e["element"], e["reason"]) for e in c.errors] == expected
    assert state(cols_store, now) == state(rows_store, now)
    assert dict(cols_counters.accepted) == dict(rows_counters.accepted)
    assert dict(cols_counters.rejected) == dict(rows_counters.rejected)


def test_valid_columnar_batches_of_known_series_take_the_fast_path():
    beacon, store, _ = make()
    now = time.time()
    objects = [{"service": "shop", "route": f"/r{k}", "method": "GET",
                "status": [200, 503] * 50, "duration_ms": [float(i) for i in range(100)]}
               for k in range(10)]
    body = orjson.dumps(objects)
    assert beacon.ingest_body(body, Context(now)) is None  # unseen series: general path
    assert beacon.ingest(objects, Context(now)).accepted == 1000
    result = beacon.ingest_body(body, Context(now))
    assert result is not None and (result.accepted, result.rejected) == (1000, 0)
    slot = store.families["api"].slot_of[("shop", "/r3", "GET")]
    assert int(store.pool.written[slot]) == 200  # a window of 64: the newest 64 are kept
    assert sorted(store.pool.values[slot].tolist()) == [i / 1000.0 for i in range(36, 100)]


@pytest.mark.parametrize("obj, reason", [
    ({"status": [200, 200], "duration_ms": [1.0, 2.0, 3.0]}, "length_mismatch"),
    ({"status": 200, "duration_ms": [1.0, 2.0, 3.0], "timestamp": [None]}, "length_mismatch"),
    ({"status": 200, "duration_ms": [1.0, 2.0, 3.0], "timestamp": 5.0}, "wrong_type"),
])
def test_arrays_that_do_not_line_up_reject_every_element(obj, reason):
    beacon, _, counters = make()
    ok = {"service": "a", "route": "/x", "method": "GET", "status": 200, "duration_ms": [5.0]}
    result = send(beacon, [ok, {"service": "a", "route": "/y", "method": "GET", **obj}],
                  Context(time.time()))
    assert (result.accepted, result.rejected) == (1, 3)
    assert {e["reason"] for e in result.errors} == {reason}
    assert {e["index"] for e in result.errors} == {1}
    assert counters.rejected[("timings", reason)] == 3


async def test_columnar_over_http_counts_samples_for_max_items(aiohttp_client, make_config):
    from metricsd.app import create_app

    app = create_app(make_config({"ingest": {"max_items": 50}}))
    client = await aiohttp_client(app)
    obj = {"service": "a", "route": "/x", "method": "GET", "status": 200,
           "duration_ms": [1.0] * 40}
    resp = await client.post("/v1/beacons/timings", json=[obj])
    assert resp.status == 202 and (await resp.json())["accepted"] == 40
    resp = await client.post("/v1/beacons/timings", json=[obj, obj])
    assert resp.status == 413 and (await resp.json())["reason"] == "too_many_items"
    resp = await client.post("/v1/beacons/timings", json=[{**obj, "duration_ms": [1.0, -2.0]}])
    body = await resp.json()
    assert resp.status == 202 and body["accepted"] == 1
    assert body["errors"] == [{"index": 0, "element": 1, "reason": "out_of_range",
                               "error": body["errors"][0]["error"]}]
