"""Exact window quantiles: the rings must agree with numpy.percentile on the same window."""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import pytest

from metricsd.ingest import store_families
from metricsd.store import exponential
from metricsd.store.ring import RingPool, block_stats
from metricsd.store.series import QUANTILES, Store

QS = np.asarray(QUANTILES)


def _stats(pool: RingPool, slots: list[int], cutoff: float, ntags: int = 1):
    rows = pool.copy_rows(np.asarray(slots, dtype=np.int64))
    return block_stats(rows, cutoff, pool.qs, ntags)


def _distributions(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    bimodal = np.concatenate([rng.normal(0.05, 0.005, n // 2), rng.normal(1.5, 0.1, n - n // 2)])
    outliers = rng.exponential(0.02, n)
    outliers[rng.choice(n, n // 50, replace=False)] = rng.uniform(10, 30, n // 50)
    return {
        "uniform": rng.uniform(0, 1, n),
        "lognormal": rng.lognormal(-3, 1.2, n),
        "bimodal": rng.permutation(bimodal),
        "outliers": outliers,
        "ties": rng.integers(0, 4, n).astype(float),
    }


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000])
def test_quantiles_equal_numpy_percentile(n):
    rng = np.random.default_rng(n)
    data = _distributions(rng, n)
    pool = RingPool(len(data), 1024, QUANTILES)
    slots = []
    for values in data.values():
        slot = pool.allocate()
        for v in values:
            pool.push(slot, float(v), 100.0)
        slots.append(slot)
    stats = _stats(pool, slots, cutoff=0.0)
    for row, (name, values) in enumerate(data.items()):
        window = values[-1024:]
        expected = np.percentile(window, QS * 100)  # default method: linear (type 7)
        assert stats.counts[row] == len(window), name
        np.testing.assert_array_equal(stats.quantiles[row], expected, err_msg=name)
        assert stats.sums[row] == pytest.approx(window.sum())


def test_window_by_count_keeps_only_the_newest_samples():
    pool = RingPool(1, 16, QUANTILES)
    slot = pool.allocate()
    for i in range(100):  # 0..99; only 84..99 fit
        pool.push(slot, float(i), 1.0)
    stats = _stats(pool, [slot], cutoff=0.0)
    assert stats.counts[0] == 16
    np.testing.assert_array_equal(stats.quantiles[0], np.percentile(np.arange(84, 100), QS * 100))


def test_window_by_age_drops_old_samples():
    pool = RingPool(1, 64, QUANTILES)
    slot = pool.allocate()
    for i in range(10):
        pool.push(slot, 1000.0 + i, stamp=float(i))  # old and slow
    for i in range(10):
        pool.push(slot, float(i), stamp=100.0 + i)  # recent and fast
    stats = _stats(pool, [slot], cutoff=50.0)
    assert stats.counts[0] == 10
    np.testing.assert_array_equal(stats.quantiles[0], np.percentile(np.arange(10.0), QS * 100))
    assert stats.min_stamps[0] == 100.0
    empty = _stats(pool, [slot], cutoff=1000.0)
    assert empty.counts[0] == 0 and np.isnan(empty.quantiles[0]).all()


def test_compiled_writes_equal_plain_python_writes():
    """record (one sample) and record_many (batches) leave rings, histograms, sums and
    counters exactly as plain Python would: bisect for the bucket, += in order, the ring
    written column by column (RingPool.push), including batches larger than a ring."""
    rng = np.random.default_rng(7)
    n = 3000
    slots_in = rng.integers(0, 5, n)
    values = rng.lognormal(-3, 2, n)
    values[::50] = 0.1  # exactly on a bucket bound
    values[::41] = 0.0  # native histograms' zero bucket
    stamps = rng.uniform(0, 100, n)
    tags = rng.integers(0, 5, n).astype(np.uint8)
    extras = np.zeros(n, dtype=np.int64)
    stores = [Store(max_series=5, window_samples=256, window_seconds=300, idle_timeout=1,
                    families=store_families())
              for _ in range(2)]
    for store in stores:
        for i in range(5):
            store.slot(store.families["api"], ("s", f"/{i}", "GET"))
    a, b = (store.families["api"] for store in stores)
    bounds = list(a.spec.buckets)
    ref = RingPool(5, 256, QUANTILES)
    for _ in range(5):
        ref.allocate()
    buckets = np.zeros_like(a.buckets)
    sums = np.zeros(5)
    counters = np.zeros_like(a.counters)
    last_seen = np.zeros(5)
    for i in range(n):
        s, v, t = int(slots_in[i]), float(values[i]), int(tags[i])
        buckets[s, bisect_left(bounds, v)] += 1
        sums[s] += v
        counters[s, t, 0] += 1
        last_seen[s] = max(last_seen[s], stamps[i])
        ref.push(s, v, float(stamps[i]), t)
        a.record(s, v, float(stamps[i]), t, 0)
    for chunk in np.array_split(np.arange(n), 7):  # uneven batches, some > capacity
        b.record_many(slots_in[chunk], values[chunk], stamps[chunk], tags[chunk], extras[chunk])
    for family in (a, b):
        for name in ("pos", "filled", "written", "values", "stamps", "tags"):
            np.testing.assert_array_equal(getattr(family.pool, name), getattr(ref, name), name)
        np.testing.assert_array_equal(family.buckets[:5], buckets)
        np.testing.assert_array_equal(family.sums[:5], sums)
        np.testing.assert_array_equal(family.counters[:5], counters)
        np.testing.assert_array_equal(family.last_seen[:5], last_seen)
    # Native histogram rows, grouped by slot inside a mixed batch, count what one-by-one did.
    assert sorted(a.native) == sorted(b.native) == list(range(5))
    for s in range(5):
        np.testing.assert_array_equal(a.native[s], b.native[s])
    np.testing.assert_array_equal(a.native_zero, b.native_zero)
    assert int(b.native_zero[:5].sum()) == int((values <= exponential.ZERO_THRESHOLD).sum())
    mine = [int(t) for s, t in zip(slots_in, tags, strict=True) if s == 0]
    newest = {q % 256: mine[q] for q in range(len(mine))}  # column -> last tag written there
    assert ref.tags_of(0)[: len(newest)].tolist() == [newest[c] for c in range(len(newest))]


def test_replace_updates_in_place_until_the_ring_wraps_or_is_reused():
    pool = RingPool(1, 4, QUANTILES)
    slot = pool.allocate()
    gen = int(pool.generation[slot])
    seq = pool.push(slot, 1.0, 1.0)
    assert pool.replace(slot, gen, seq, 5.0, 2)
    assert _stats(pool, [slot], 0.0, 3).quantiles[0][0] == 5.0
    for _ in range(3):
        pool.push(slot, 2.0, 1.0)
    assert pool.replace(slot, gen, seq, 6.0, 2)  # still the oldest of four
    pool.push(slot, 2.0, 1.0)  # overwrites it
    assert not pool.replace(slot, gen, seq, 7.0, 2)
    assert 7.0 not in pool.values[slot]
    pool.release(slot)
    assert pool.allocate() == slot
    assert not pool.replace(slot, gen, seq, 8.0, 2)


def test_cache_recomputes_only_what_changed_or_aged():
    pool = RingPool(2, 8, QUANTILES)
    s0, s1 = pool.allocate(), pool.allocate()
    pool.push(s0, 1.0, 10.0)
    pool.push(s1, 2.0, 20.0)
    slots = np.asarray([s0, s1])
    pool.refresh(slots, cutoff=0.0, now=30.0, ntags=1)
    assert not pool.stale(slots, 0.0, fresh_after=40.0).any()
    pool.push(s1, 3.0, 25.0)
    assert pool.stale(slots, 0.0, fresh_after=40.0).tolist() == [False, True]
    # s0's only sample (stamp 10) falls out of a window starting at 15.
    assert pool.stale(slots, 15.0, fresh_after=40.0).tolist() == [True, True]
    # Within one tick, nothing is recomputed twice.
    assert not pool.stale(slots, 15.0, fresh_after=29.5).any()


def test_stats_of_a_slot_that_changed_hands_are_not_kept():
    pool = RingPool(1, 8, QUANTILES)
    slot = pool.allocate()
    pool.push(slot, 100.0, 1.0)
    rows = pool.copy_rows(np.asarray([slot]))  # copied for a worker thread...
    pool.release(slot)  # ...while the series expires and its slot goes to another
    assert pool.allocate() == slot
    pool.push(slot, 1.0, 1.0)
    pool.store_stats(rows, block_stats(rows, 0.0, pool.qs, 1), computed_at=5.0)
    # The new owner's row is still stale, so its own stats get computed, not 100.0.
    assert pool.stale(np.asarray([slot]), 0.0, fresh_after=4.5).tolist() == [True]
    pool.refresh(np.asarray([slot]), 0.0, now=6.0, ntags=1)
    assert pool.cached(np.asarray([slot]), 1)[0][0, 0] == 1.0
