"""Native (sparse exponential) histogram buckets: where a value goes, and how a row is sent.

Prometheus's native histograms split (0, ∞) into buckets whose bounds grow by a factor
2^(2^-schema). At schema 3 (the default here) that is 2^(1/8) ≈ 1.09: any quantile
interpolated inside a bucket is within about 4.4% of the truth in the worst case and far
closer in practice, whatever the range of the values, where fixed buckets are as good as
where someone put their bounds. Bucket `k` holds (2^((k-1)/8), 2^(k/8)], upper bound
inclusive as in Prometheus.

The store keeps one fixed row of counts per series over keys MIN_KEY..MAX_KEY (about 15 µs
to 68 min, or the same range of a unitless value); values at or below ZERO_THRESHOLD
(2^-16) go to the zero bucket (CLS is often exactly 0), values above the top bucket are
counted in it. At export a row becomes Prometheus's spans and deltas; when more than
BUCKET_LIMIT buckets are populated, neighbours are merged by lowering the schema (as
client_golang does), so a scrape never carries more than that many buckets per series.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SCHEMA = 3
ZERO_THRESHOLD = 2.0**-16  # values in [0, this] are counted in the zero bucket
MIN_KEY: int = -16 * 2**SCHEMA + 1  # the first bucket above the zero bucket: (2^-16, 2^(-127/8)]
MAX_KEY: int = 12 * 2**SCHEMA  # (2^(95/8), 2^12 = 4096]; anything larger is counted here
WIDTH = MAX_KEY - MIN_KEY + 1  # columns per series in the store
BUCKET_LIMIT = 160  # populated buckets per exported series before the schema is lowered
MIN_SCHEMA = -4  # Prometheus's lowest schema (bounds growing 65536x)

# frexp mantissas in [0.5, 1) that end each of the 2^SCHEMA buckets of one power of two.
_BOUNDS = np.array([0.5 * 2.0 ** (i / 2**SCHEMA) for i in range(2**SCHEMA)])
BOUNDS = _BOUNDS  # for the compiled batch path (store/kernels.py native_counts)


def keys(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Bucket key of each value (> ZERO_THRESHOLD), clamped to MIN_KEY..MAX_KEY.

    Exact at the bounds: the key comes from the binary exponent and a search of the
    mantissa among the bucket bounds, not from a rounded logarithm.
    """
    mantissa, exponent = np.frexp(values)
    within = np.searchsorted(_BOUNDS, mantissa, side="left")
    key: npt.NDArray[np.int64] = within + (exponent.astype(np.int64) - 1) * 2**SCHEMA
    return np.clip(key, MIN_KEY, MAX_KEY)


_BOUND_LIST: list[float] = _BOUNDS.tolist()


def key(value: float) -> int:
    """keys() for one value (the scalar ingest path: bisect, no numpy call per sample)."""
    mantissa, exponent = math.frexp(value)
    found: int = bisect_left(_BOUND_LIST, mantissa) + (exponent - 1) * 2**SCHEMA
    return MIN_KEY if found < MIN_KEY else MAX_KEY if found > MAX_KEY else found


def upper_bound(bucket: int, schema: int = SCHEMA) -> float:
    """The inclusive upper bound of a bucket at a schema."""
    return float(2.0 ** (bucket * 2.0**-schema))


@dataclass(frozen=True)
class Sparse:
    """One series' buckets as Prometheus's protobuf carries them."""

    schema: int
    zero_threshold: float
    zero_count: int
    spans: list[tuple[int, int]]  # (offset from the previous span's end, length)
    deltas: list[int]  # each bucket's count minus the previous bucket's


def sparse(row: npt.NDArray[np.int64], zero_count: int,
           limit: int = BUCKET_LIMIT) -> Sparse:
    """A store row (WIDTH counts from MIN_KEY) as spans and deltas, at most `limit` buckets."""
    populated = np.flatnonzero(row)
    counts = row[populated]
    schema = SCHEMA
    if len(populated) > limit:
        bucket_keys = populated.astype(np.int64) + MIN_KEY
        while len(bucket_keys) > limit and schema > MIN_SCHEMA:
            # One schema lower, bucket k holds the old buckets 2k-1 and 2k.
            merged = (bucket_keys + 1) >> 1
            bucket_keys, first = np.unique(merged, return_index=True)
            counts = np.add.reduceat(counts, first)
            schema -= 1
        key_list = bucket_keys.tolist()
    else:
        key_list = [int(i) + MIN_KEY for i in populated.tolist()]
    spans: list[tuple[int, int]] = []
    deltas: list[int] = []
    previous_key = previous_count = 0
    for bucket, count in zip(key_list, counts.tolist(), strict=True):
        if spans and bucket == previous_key + 1:
            spans[-1] = (spans[-1][0], spans[-1][1] + 1)
        else:  # a new span: its offset counts from the end of the previous one
            spans.append((bucket if not spans else bucket - previous_key - 1, 1))
        deltas.append(count - previous_count)
        previous_key, previous_count = bucket, count
    return Sparse(schema, ZERO_THRESHOLD, int(zero_count), spans, deltas)


def expand(native: Sparse) -> dict[int, int]:
    """Bucket key -> count: the inverse of the span/delta encoding (for tests and checks)."""
    out: dict[int, int] = {}
    position, count, index = 0, 0, 0
    for offset, length in native.spans:
        position += offset
        for _ in range(length):
            count += native.deltas[index]
            out[position] = count
            position += 1
            index += 1
    return out
