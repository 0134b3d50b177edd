"""Per-minute history of a few headline numbers, for the overview page's sparklines.

Each tracked series is a fixed-size numpy ring of `minutes` cells indexed by
`minute % minutes`, next to the minute number that last wrote the cell, so a cell left
over from an earlier lap reads as a gap (NaN) rather than as a stale value. Memory is
bounded by `max_series x minutes x 16` bytes; series beyond `max_series` are refused
and counted, never silently grown.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

STEP_SECONDS = 60.0
DEFAULT_MAX_SERIES = 256


class History:
    """Rings of per-minute values keyed by series name; a later write in a minute wins."""

    def __init__(
        self,
        minutes: int,
        max_series: int = DEFAULT_MAX_SERIES,
        step: float = STEP_SECONDS,
        started_at: float = 0.0,
    ) -> None:
        if minutes < 1 or max_series < 1 or step <= 0:
            raise ValueError("minutes, max_series and step must be positive")
        # When recording began (the process start): nothing before it was ever observed,
        # which readers need to tell "quiet" from "not running yet".
        self.started_at = started_at
        self.minutes = minutes
        self.max_series = max_series
        self.step = step
        self._values: dict[str, FloatArray] = {}
        self._minute: dict[str, npt.NDArray[np.int64]] = {}
        self.refused = 0  # writes to new series refused because max_series was reached

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    @property
    def nbytes(self) -> int:
        """Bytes held by the rings: what max_series x minutes bounds."""
        return sum(v.nbytes + self._minute[k].nbytes for k, v in self._values.items())

    def _minute_of(self, now: float) -> int:
        return math.floor(now / self.step)

    def record(self, name: str, value: float, now: float) -> bool:
        """Store `value` for the minute holding `now`; False when the series was refused."""
        ring = self._values.get(name)
        if ring is None:
            if len(self._values) >= self.max_series:
                self.refused += 1
                return False
            ring = self._values[name] = np.full(self.minutes, np.nan)
            self._minute[name] = np.full(self.minutes, -1, dtype=np.int64)
        minute = self._minute_of(now)
        cell = minute % self.minutes
        ring[cell] = value
        self._minute[name][cell] = minute
        return True

    def values(self, name: str, now: float) -> FloatArray:
        """The last `minutes` minutes up to `now`, oldest first; NaN for minutes with no value."""
        end = self._minute_of(now)
        wanted = np.arange(end - self.minutes + 1, end + 1, dtype=np.int64)
        ring = self._values.get(name)
        if ring is None:
            return np.full(self.minutes, np.nan)
        cells = wanted % self.minutes
        return np.where(self._minute[name][cells] == wanted, ring[cells], np.nan)

    def downsample(self, name: str, now: float, points: int) -> FloatArray:
        """`values()` averaged into at most `points` buckets (NaN-aware); all-gap buckets are NaN.

        The newest bucket always ends at the current minute; when `minutes` does not divide
        evenly, the oldest bucket is the short one, so recent detail is never blurred.
        """
        raw = self.values(name, now)
        if points >= len(raw):
            return raw
        size = math.ceil(len(raw) / points)
        buckets = math.ceil(len(raw) / size)
        pad = size * buckets - len(raw)
        padded = np.concatenate([np.full(pad, np.nan), raw]).reshape(buckets, size)
        present = ~np.isnan(padded)
        counts = present.sum(axis=1)
        sums = np.where(present, padded, 0.0).sum(axis=1)
        out = np.full(buckets, np.nan)
        np.divide(sums, counts, out=out, where=counts > 0)
        return out

    def forget(self, keep: set[str]) -> int:
        """Drop series not in `keep` (routes that expired); return how many went."""
        gone = [name for name in self._values if name not in keep]
        for name in gone:
            del self._values[name]
            del self._minute[name]
        return len(gone)

    def names(self) -> list[str]:
        return list(self._values)
