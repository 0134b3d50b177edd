"""Native histogram buckets: exact keys at every bound, spans/deltas, the bucket limit, and
the store's scalar and vectorised paths agreeing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricsd.ingest import store_families
from metricsd.store import exponential as ex
from metricsd.store.series import Store


def test_every_bound_belongs_to_its_own_bucket_and_the_next_float_to_the_next():
    for k in range(ex.MIN_KEY, ex.MAX_KEY):
        bound = 2.0 ** (k / 8)  # upper bound of bucket k at schema 3, computed independently
        assert ex.key(bound) == k
        assert ex.key(math.nextafter(bound, math.inf)) == k + 1
        assert ex.key(math.nextafter(bound, 0.0)) == k


def test_random_values_fall_between_their_bucket_bounds():
    values = np.random.default_rng(3).lognormal(0.0, 4.0, 20_000)
    values = values[(values > ex.ZERO_THRESHOLD) & (values <= 2.0**12)]
    keys = ex.keys(values)
    lower = 2.0 ** ((keys - 1) / 8)
    upper = 2.0 ** (keys / 8)
    assert np.all(lower < values) and np.all(values <= upper)
    assert keys.tolist() == [ex.key(float(v)) for v in values]


def test_out_of_range_values_are_clamped_not_lost():
    assert ex.key(1e9) == ex.MAX_KEY
    assert ex.key(ex.ZERO_THRESHOLD * 1.0000001) == ex.MIN_KEY


def _row(counts: dict[int, int]) -> np.ndarray:
    row = np.zeros(ex.WIDTH, dtype=np.int64)
    for k, n in counts.items():
        row[k - ex.MIN_KEY] = n
    return row


def test_spans_and_deltas_round_trip():
    counts = {-3: 2, -2: 5, 0: 1, 8: 4, 9: 4, 10: 1, 40: 7}
    native = ex.sparse(_row(counts), zero_count=3)
    assert native.schema == 3 and native.zero_count == 3
    assert native.zero_threshold == 2.0**-16
    # Spans: [-3, -2], gap of one, [0], gap of 7, [8..10], gap of 29, [40].
    assert native.spans == [(-3, 2), (1, 1), (7, 3), (29, 1)]
    assert native.deltas == [2, 3, -4, 3, 0, -3, 6]
    assert ex.expand(native) == counts


def test_empty_row_has_no_spans():
    native = ex.sparse(np.zeros(0, dtype=np.int64), zero_count=0)
    assert native.spans == [] and native.deltas == [] and native.schema == 3


@pytest.mark.parametrize("limit", [1, 2, 5, 20, 64])
def test_bucket_limit_lowers_the_schema_and_keeps_every_count(limit):
    rng = np.random.default_rng(limit)
    values = rng.lognormal(-2.0, 2.5, 5000)
    values = values[values > ex.ZERO_THRESHOLD]
    keys = ex.keys(values)
    row = np.bincount(keys - ex.MIN_KEY, minlength=ex.WIDTH).astype(np.int64)
    native = ex.sparse(row, zero_count=0, limit=limit)
    buckets = ex.expand(native)
    assert len(buckets) <= limit or native.schema == ex.MIN_SCHEMA
    assert native.schema < 3
    assert sum(buckets.values()) == len(values)
    # Each value's bucket at the lower schema is the one whose bounds hold it.
    factor = 2 ** (3 - native.schema)
    expected: dict[int, int] = {}
    for k in keys.tolist():
        merged = -((-k) // factor)  # ceil(k / factor)
        expected[merged] = expected.get(merged, 0) + 1
    assert buckets == expected


def test_store_scalar_and_batch_paths_agree_and_expiry_frees_rows():
    values = np.concatenate([[0.0, 1e-6], np.random.default_rng(5).lognormal(-3, 1, 300)])
    one = Store(max_series=4, window_samples=64, window_seconds=300, idle_timeout=60,
                families=store_families())
    many = Store(max_series=4, window_samples=64, window_seconds=300, idle_timeout=60,
                 families=store_families())
    key = ("s", "/r", "GET")
    for v in values:
        one.observe("api", key, float(v), 100.0, 1)
    many.observe_columns("api", [key] * len(values), values.tolist(), [100.0] * len(values),
                         [1] * len(values), [0] * len(values))
    a, b = one.families["api"], many.families["api"]
    slot_a, slot_b = a.slot_of[key], b.slot_of[key]
    assert np.array_equal(a.native[slot_a], b.native[slot_b])
    assert a.native_zero[slot_a] == b.native_zero[slot_b] == 2
    assert int(a.native[slot_a].sum()) == len(values) - 2
    assert one.expire(1000.0) == 1
    assert a.native == {}


def test_compiled_batch_counts_equal_keys_at_bounds_extremes_and_zero():
    """native_counts (the batch path) puts every value where key() does: each bound, the
    floats next to it, out-of-range values, the zero bucket; grouped by slot."""
    from metricsd.store.kernels import native_counts

    bounds = [2.0 ** (k / 8) for k in range(ex.MIN_KEY - 3, ex.MAX_KEY + 3)]
    values = np.array([*bounds, *(math.nextafter(b, math.inf) for b in bounds),
                       *(math.nextafter(b, 0.0) for b in bounds), 0.0, ex.ZERO_THRESHOLD,
                       math.nextafter(ex.ZERO_THRESHOLD, 1.0), 1e-300, 1e300, 5e-324])
    rng = np.random.default_rng(8)
    slots = rng.integers(0, 6, len(values)) * 3  # sparse, unordered slot numbers
    index = np.full(20, -1, dtype=np.int64)
    owners, zeros, counts = native_counts(slots, values, ex.ZERO_THRESHOLD, ex.BOUNDS,
                                          ex.SCHEMA, ex.MIN_KEY, ex.MAX_KEY, index)
    assert index.tolist() == [-1] * 20  # the scratch is left as found
    assert sorted(owners.tolist()) == sorted(set(slots.tolist()))
    for slot, zero, row in zip(owners.tolist(), zeros.tolist(), counts, strict=True):
        mine = values[slots == slot]
        expected = np.zeros(ex.WIDTH, dtype=np.int64)
        for v in mine[mine > ex.ZERO_THRESHOLD].tolist():
            expected[ex.key(v) - ex.MIN_KEY] += 1
        np.testing.assert_array_equal(row, expected)
        assert zero == int((mine <= ex.ZERO_THRESHOLD).sum())
