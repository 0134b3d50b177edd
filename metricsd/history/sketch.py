"""A mergeable latency sketch: log-spaced buckets with a guaranteed relative error.

DDSketch's idea (Masson et al., VLDB 2019): bucket i holds values in (g^(i-1), g^i] with
g = (1 + a) / (1 - a). Answering a rank with the bucket's midpoint 2 g^i / (g + 1) is off
by at most a relative `a` from the true sample at that rank. Hourly sketches merge by adding
counts, so a week's p95 comes from 168 hourly pieces exactly as if kept whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

RELATIVE_ERROR = 0.01  # documented bound on every quantile the history answers
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
LOG_GAMMA = math.log(GAMMA)
# Values at or below this (CLS of 0, a 0 ms timing) share the zero bucket and read back as 0.
MIN_VALUE = 1e-9
ZERO = -(2**15)  # the zero bucket's index; real indexes stay within int16 (1e-9 .. 1e12)


def indexes(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Bucket index of every value (vectorised)."""
    safe = np.maximum(values, MIN_VALUE)
    # Clipped to int16 (stored so): 1e-9 is index -1036, 1e12 is 1382, far inside.
    idx = np.clip(np.ceil(np.log(safe) / LOG_GAMMA), ZERO + 1, -ZERO - 1).astype(np.int64)
    return np.where(values <= MIN_VALUE, ZERO, idx)


def value_of(index: int) -> float:
    """The representative value of a bucket (its relative-error midpoint)."""
    if index == ZERO:
        return 0.0
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


class Sketch:
    """Sparse bucket counts; `add`, `merge`, `quantile`, and a compact byte form."""

    __slots__ = ("counts",)

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = counts if counts is not None else {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add_values(self, values: Iterable[float]) -> None:
        """Add raw samples (tests and benchmarks; ingestion adds bucket counts)."""
        arr = np.asarray(list(values), dtype=np.float64)
        idx, n = np.unique(indexes(arr), return_counts=True)
        self.add_counts(idx.tolist(), n.tolist())

    def add_counts(self, idx: Iterable[int], counts: Iterable[int]) -> None:
        get = self.counts.get
        for i, n in zip(idx, counts, strict=True):
            self.counts[i] = get(i, 0) + n

    def merge(self, other: Sketch) -> None:
        self.add_counts(other.counts.keys(), other.counts.values())

    def quantile(self, q: float) -> float | None:
        """The value at rank ceil(q * n) (the nearest-rank definition); None when empty."""
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return value_of(i)
        return value_of(max(self.counts))  # pragma: no cover - unreachable

    def fraction_above(self, threshold: float) -> float | None:
        """Share of samples above `threshold` (bucket-resolution)."""
        total = self.total
        if total == 0:
            return None
        above = sum(n for i, n in self.counts.items() if value_of(i) > threshold)
        return above / total

    def to_parts(self) -> tuple[bytes, bytes]:
        """int16 indexes and uint32 counts, little-endian (6 bytes per non-empty bucket)."""
        idx = np.fromiter(self.counts.keys(), dtype="<i2", count=len(self.counts))
        n = np.fromiter(self.counts.values(), dtype="<u4", count=len(self.counts))
        return idx.tobytes(), n.tobytes()

    @classmethod
    def from_parts(cls, idx: bytes, n: bytes) -> Sketch:
        return cls(dict(zip(np.frombuffer(idx, dtype="<i2").tolist(),
                            np.frombuffer(n, dtype="<u4").tolist(), strict=True)))
