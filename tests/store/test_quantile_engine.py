"""Incremental window quantiles: any interleaving of writes, evictions and reads stays exact.

A plain Python model keeps each series' last `capacity` samples; after every read the pool's
stats must equal numpy.percentile (bit for bit), the count, per-tag counts and oldest stamp
of that model's window, however the sorted tops were merged, rebuilt, or installed late
from a copy taken before more writes.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metricsd.store.ring import RingPool, block_stats
from metricsd.store.series import QUANTILES

QS = np.asarray(QUANTILES)
NTAGS = 3

values = st.one_of(
    st.sampled_from([0.0, 0.001, 0.5, 1.0, 2.0]),  # ties
    st.integers(0, 4000).map(lambda k: 1.0 + k * 2.0**-52),  # differ only in the lowest bits
    st.floats(0.0, 100.0, allow_nan=False, allow_infinity=False),
)
sample = st.tuples(values, st.floats(0.0, 100.0), st.integers(0, NTAGS))  # tag NTAGS: uncounted
op = st.one_of(
    st.tuples(st.just("push"), st.integers(0, 2), sample),
    st.tuples(st.just("many"), st.integers(0, 2), st.lists(sample, min_size=1, max_size=40)),
    st.tuples(st.just("batch"), st.lists(st.tuples(st.integers(0, 2), sample), min_size=1,
                                         max_size=60)),
    st.tuples(st.just("replace"), st.integers(0, 2), st.integers(0, 40), values),
    st.tuples(st.just("read"), st.floats(-5.0, 110.0)),
    st.tuples(st.just("late"), st.floats(-5.0, 110.0), st.lists(
        st.tuples(st.integers(0, 2), sample), max_size=30)),
    st.tuples(st.just("reuse"), st.integers(0, 2)),
)


class Model:
    """What the rings should hold: per slot, the newest `cap` (value, stamp, tag)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.rows: dict[int, list[list[float]]] = {}
        self.written: dict[int, int] = {}

    def push(self, slot: int, v: float, s: float, t: int) -> None:
        self.rows.setdefault(slot, []).append([v, s, t])
        del self.rows[slot][: -self.cap]
        self.written[slot] = self.written.get(slot, 0) + 1

    def window(self, slot: int, cutoff: float) -> list[list[float]]:
        return [x for x in self.rows.get(slot, []) if x[1] >= cutoff]


def check(pool: RingPool, model: Model, slots: list[int], cutoff: float) -> None:
    arr = np.asarray(slots, dtype=np.int64)
    q, n, _, tags, oldest = pool.cached(arr, NTAGS)
    for row, slot in enumerate(slots):
        window = model.window(slot, cutoff)
        assert n[row] == len(window)
        if window:
            vals = np.asarray([x[0] for x in window])
            np.testing.assert_array_equal(q[row], np.percentile(vals, QS * 100))
            assert oldest[row] == min(x[1] for x in window)
        else:
            assert np.isnan(q[row]).all()
        for t in range(NTAGS):
            assert tags[row, t] == sum(1 for x in window if x[2] == t)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cap=st.sampled_from([16, 20, 64]), ops=st.lists(op, max_size=40))
def test_any_interleaving_matches_numpy_percentile(cap, ops):
    pool = RingPool(3, cap, QUANTILES)
    slots = [pool.allocate() for _ in range(3)]
    model = Model(cap)
    gens = {s: int(pool.generation[s]) for s in slots}

    def write(slot: int, smp: tuple[float, float, int]) -> None:
        pool.push(slot, smp[0], smp[1], smp[2])
        model.push(slot, *smp)

    for o in ops:
        kind = o[0]
        if kind == "push":
            write(o[1], o[2])
        elif kind == "many":
            slot, items = o[1], o[2]
            for x in items:
                write(slot, x)
        elif kind == "batch":
            items = o[1]
            for slot, x in items:
                write(slot, x)
        elif kind == "replace":
            slot, back, v = o[1], o[2], o[3]
            seq = model.written.get(slot, 0) - 1 - back
            if seq >= 0 and pool.replace(slot, gens[slot], seq, v, 1):
                model.rows[slot][seq - model.written[slot]][0] = v
                model.rows[slot][seq - model.written[slot]][2] = 1
        elif kind == "read":  # merge what can be merged, rebuild the rest
            cutoff = o[1]
            arr = np.asarray(slots, dtype=np.int64)
            pool.rebuild(pool.merge(arr, cutoff, 0.0, NTAGS), cutoff, 0.0, NTAGS)
            check(pool, model, slots, cutoff)
        elif kind == "late":  # a worker's rebuild installed after more writes
            cutoff = o[1]
            arr = np.asarray(slots, dtype=np.int64)
            rows = pool.copy_rows(arr)
            for slot, x in o[2]:
                write(slot, x)
            pool.store_stats(rows, block_stats(rows, cutoff, pool.qs, NTAGS), 0.0, cutoff)
            pool.rebuild(pool.merge(arr, cutoff, 0.0, NTAGS), cutoff, 0.0, NTAGS)
            check(pool, model, slots, cutoff)
        elif kind == "reuse":
            slot = o[1]
            pool.release(slot)
            assert pool.allocate() == slot
            gens[slot] = int(pool.generation[slot])
            model.rows[slot] = []
            model.written[slot] = 0
    arr = np.asarray(slots, dtype=np.int64)
    pool.rebuild(pool.merge(arr, 50.0, 0.0, NTAGS), 50.0, 0.0, NTAGS)
    check(pool, model, slots, 50.0)


def test_a_few_new_samples_are_merged_not_rebuilt():
    """The fast path is taken: after one rebuild, small deltas never ask for another."""
    rng = np.random.default_rng(3)
    pool = RingPool(50, 2048, QUANTILES)
    slots = np.asarray([pool.allocate() for _ in range(50)], dtype=np.int64)
    for s in slots:
        for v in rng.lognormal(size=2048):
            pool.push(int(s), float(v), 10.0)
    assert len(pool.merge(slots, 0.0, 0.0, 1)) == 50  # first read: nothing to merge into
    pool.rebuild(slots, 0.0, 0.0, 1)
    model = {int(s): list(pool.values[s]) for s in slots}
    for step in range(30):
        for s in slots:
            new = rng.lognormal(size=3)
            for v in new:
                pool.push(int(s), float(v), 10.0)
            model[int(s)] = (model[int(s)] + list(new))[-2048:]
        assert len(pool.merge(slots, 0.0, float(step), 1)) == 0
        q = pool.cached(slots, 1)[0]
        for row, s in enumerate(slots):
            np.testing.assert_array_equal(q[row], np.percentile(model[int(s)], QS * 100))
