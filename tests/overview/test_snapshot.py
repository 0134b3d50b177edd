"""Cached read views: computed once per second at most, shared by concurrent readers, correct."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from metricsd.app import create_app
from metricsd.ingest import STORE
from metricsd.overview import VIEWS, model
from metricsd.overview.snapshot import Cached


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def counting(delay: float = 0.0):
    calls: list[float] = []

    async def compute(now: float) -> float:
        calls.append(now)
        await asyncio.sleep(delay)
        return now

    return compute, calls


async def test_concurrent_readers_share_one_computation():
    compute, calls = counting(delay=0.05)
    view = Cached(compute)
    snaps = await asyncio.gather(*(view.get() for _ in range(50)))
    assert len(calls) == 1 and view.computations == 1
    assert all(s is snaps[0] for s in snaps)


@pytest.mark.parametrize("seed", range(5))
async def test_a_snapshot_is_recomputed_only_when_a_second_old(seed):
    rng = np.random.default_rng(seed)
    clock = Clock()
    compute, calls = counting()
    view = Cached(compute, clock=clock)
    for step in rng.exponential(0.3, 200):
        clock.now += float(step)
        snap = await view.get()
        assert 0.0 <= clock.now - snap.computed_at < 1.0  # never more than a second old
        assert snap.value == snap.computed_at
    starts = np.diff(calls)
    assert len(starts) and (starts >= 1.0).all()  # at most one computation per second


async def test_a_reader_that_leaves_does_not_cancel_the_others():
    compute, calls = counting(delay=0.05)
    view = Cached(compute)
    first = asyncio.ensure_future(view.get())
    second = asyncio.ensure_future(view.get())
    await asyncio.sleep(0.01)
    first.cancel()
    snap = await second
    assert snap.value == calls[0] and view.computations == 1


async def test_a_failed_computation_reaches_its_readers_and_the_next_reader_retries():
    attempts = []

    async def compute(now: float) -> float:
        attempts.append(now)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return now

    view = Cached(compute)
    results = await asyncio.gather(view.get(), view.get(), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and len(attempts) == 1
    assert (await view.get()).value == attempts[1]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 1001, 4096])
def test_quantile_is_numpy_percentile_bit_for_bit(n):
    rng = np.random.default_rng(n)
    for values in (rng.lognormal(-3, 2, n), rng.integers(0, 5, n).astype(float),
                   np.full(n, 0.25)):
        for q in (0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0):
            assert model.quantile(values, q) == np.percentile(values, q * 100)


@pytest.fixture
async def client(aiohttp_client, make_config):
    app = create_app(make_config({"ingest": {"rate_limit": {"enabled": False}}}))
    return await aiohttp_client(app)


def random_timings(rng, routes: int, per_route: int):
    sent: dict[tuple[str, str, str], list[tuple[float, int]]] = {}
    batch = []
    for r in range(routes):
        for _ in range(int(rng.integers(1, per_route))):
            duration = float(rng.lognormal(3, 1.2))
            status = int(rng.choice([200, 201, 404, 500, 503]))
            key = (f"svc{r % 3}", f"/r{r}", "GET")
            sent.setdefault(key, []).append((duration, status))
            batch.append({"service": key[0], "route": key[1], "method": "GET",
                          "status": status, "duration_ms": duration})
    return sent, batch


async def test_summary_document_equals_an_independent_numpy_computation(client):
    rng = np.random.default_rng(7)
    sent, batch = random_timings(rng, routes=60, per_route=80)
    assert (await client.post("/v1/beacons/timings", json=batch)).status == 202
    asked = time.time()
    doc = await (await client.get("/v1/summary")).json()
    assert asked - 1.0 <= doc["generated_at"] <= time.time()
    rows = {(r["service"], r["route"], r["method"]): r for r in doc["api"]}
    assert set(rows) == set(sent)
    for key, samples in sent.items():
        seconds = np.array([d for d, _ in samples]) / 1000.0
        row = rows[key]
        assert row["count"] == len(samples)
        expected = np.percentile(seconds, [50, 75, 90, 95, 99])
        got = [row["quantiles"][p] for p in ("p50", "p75", "p90", "p95", "p99")]
        assert got == pytest.approx(expected, rel=1e-12)
        errors = sum(1 for _, s in samples if s >= 500)
        assert row["status"]["5xx"] == errors
        assert row["error_ratio"] == pytest.approx(errors / len(samples))
    counts = [r["count"] for r in doc["api"]]
    assert counts == sorted(counts, reverse=True)  # busiest first


async def test_page_figures_equal_an_independent_numpy_computation(client):
    rng = np.random.default_rng(11)
    sent, batch = random_timings(rng, routes=90, per_route=60)
    assert (await client.post("/v1/beacons/timings", json=batch)).status == 202
    snap = await client.app[VIEWS].page.get()
    api = snap.value["api"]
    everything = np.concatenate([np.array([d for d, _ in s]) / 1000.0 for s in sent.values()])
    assert api["p95"] == np.percentile(everything, 95)  # the overall p95 over every route
    assert api["requests"] == len(everything) and api["route_count"] == len(sent)
    errors = sum(1 for s in sent.values() for _, status in s if status >= 500)
    assert api["error_ratio"] == pytest.approx(errors / len(everything))
    p95 = {k: float(np.percentile(np.array([d for d, _ in s]) / 1000.0, 95))
           for k, s in sent.items()}
    slowest = sorted(p95, key=lambda k: (-p95[k], *k))[: model.MAX_ROUTES]
    assert [(r["service"], r["route"], r["method"]) for r in api["routes"]] == slowest
    assert [r["p95"] for r in api["routes"]] == pytest.approx([p95[k] for k in slowest])


async def test_overall_p95_thinned_by_ring_position_beyond_the_sample_cap(client, monkeypatch):
    rng = np.random.default_rng(5)
    _, batch = random_timings(rng, routes=20, per_route=200)
    assert (await client.post("/v1/beacons/timings", json=batch)).status == 202
    monkeypatch.setattr(model, "OVERALL_MAX_SAMPLES", 500)
    store = client.app[STORE]
    pool, family = store.pool, store.families["api"]
    slots = sorted(family.slot_of.values())
    total = int(sum(pool.filled[s] for s in slots))
    stride = -(-total // 500)
    kept = np.concatenate([pool.values[s, : pool.filled[s]][::stride] for s in slots])
    api = await model.api_overview(store, time.time())
    assert stride > 1 and api["p95"] == np.percentile(kept, 95)


async def test_concurrent_requests_compute_each_view_once(client):
    rng = np.random.default_rng(3)
    _, batch = random_timings(rng, routes=200, per_route=30)
    assert (await client.post("/v1/beacons/timings", json=batch)).status == 202
    views = client.app[VIEWS]
    before = (views.series.computations, views.page.computations)
    summaries = await asyncio.gather(*(client.get("/v1/summary") for _ in range(20)))
    pages = await asyncio.gather(*(client.get("/") for _ in range(20)))
    assert {r.status for r in summaries + pages} == {200}
    assert (views.series.computations, views.page.computations) == (before[0] + 1,
                                                                   before[1] + 1)
    bodies = {await r.read() for r in summaries}
    assert len(bodies) == 1  # the same bytes for everyone


def test_rows_orjson_refuses_are_still_encoded():
    """The store refuses such labels (metricsd.labels); the encoder must not 500 if one slips."""
    import json

    from metricsd.overview.series import _encode

    rows = [{"route": "/x\udcff", "count": 1}, {"route": "/ok", "count": 2}]
    assert json.loads(_encode(rows)) == rows


async def test_the_page_is_rendered_once_per_snapshot_and_variant(client):
    from metricsd.web.page import MAX_RENDERED, RENDERED

    first = await (await client.get("/")).read()
    assert await (await client.get("/")).read() is not None
    rendered = client.app[RENDERED]
    assert len(rendered) == 1 and next(iter(rendered.values())) == first
    paused = await (await client.get("/?refresh=0")).text()
    assert "auto-refresh paused" in paused and len(rendered) == 2
    for i in range(3 * MAX_RENDERED):  # distinct ?token= values cannot grow it unbounded
        assert (await client.get(f"/?token=t{i}")).status == 200
        assert len(rendered) <= MAX_RENDERED
    client.app[VIEWS].invalidate()
    await client.get("/")
    assert len(rendered) == 1  # a new snapshot drops the old renders


async def test_a_reload_invalidates_the_views(client):
    from metricsd import core

    views = client.app[VIEWS]
    await views.page.get()
    await views.series.get()
    result = await core.reload(client.app, core.current_config(client.app))
    assert result.ok
    assert views.page.latest is None and views.series.latest is None
