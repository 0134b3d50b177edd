"""Preallocated numpy ring buffers, one row per series, with exact window quantiles.

All rings live in one 2-D block so a scrape can sort many series at once (np.sort on a
block beats np.percentile per series by about 10x). Rows are allocated with np.empty, so
the kernel only backs the pages a series has written: memory follows use, bounded by
slots x capacity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Rows sorted per chunk when computing quantiles: bounds the temporary copy to
# CHUNK x capacity x 8 bytes (8 MiB at the default capacity).
_CHUNK = 512


class RingPool:
    """`slots` rings of `capacity` samples: value, timestamp and a small tag per sample."""

    def __init__(self, slots: int, capacity: int) -> None:
        self.slots = slots
        self.capacity = capacity
        self.values: FloatArray = np.empty((slots, capacity), dtype=np.float64)
        self.stamps: FloatArray = np.empty((slots, capacity), dtype=np.float64)
        self.tags = np.empty((slots, capacity), dtype=np.uint8)
        self.pos = np.zeros(slots, dtype=np.int64)  # next write index
        self.filled = np.zeros(slots, dtype=np.int64)  # samples held, <= capacity
        self.version = np.zeros(slots, dtype=np.int64)  # bumps on every write
        self._free = list(range(slots - 1, -1, -1))

    @property
    def free(self) -> int:
        return len(self._free)

    def allocate(self) -> int | None:
        """Take an empty ring, or None when all are in use."""
        if not self._free:
            return None
        slot = self._free.pop()
        self.pos[slot] = 0
        self.filled[slot] = 0
        self.version[slot] += 1
        return slot

    def release(self, slot: int) -> None:
        self.filled[slot] = 0
        self.version[slot] += 1
        self._free.append(slot)

    def push(self, slot: int, value: float, stamp: float, tag: int = 0) -> int:
        """Write one sample in O(1); return the column it went to."""
        col = int(self.pos[slot])
        self.values[slot, col] = value
        self.stamps[slot, col] = stamp
        self.tags[slot, col] = tag
        nxt = col + 1
        self.pos[slot] = 0 if nxt == self.capacity else nxt
        if self.filled[slot] < self.capacity:
            self.filled[slot] += 1
        self.version[slot] += 1
        return col

    def push_many(
        self, slot: int, values: FloatArray, stamps: FloatArray, tags: npt.NDArray[np.uint8]
    ) -> None:
        """Write a batch for one series with vectorised copies (at most two slices)."""
        n = len(values)
        cap = self.capacity
        if n > cap:  # only the newest `cap` samples can survive anyway
            values, stamps, tags = values[-cap:], stamps[-cap:], tags[-cap:]
            n = cap
        start = int(self.pos[slot])
        first = min(n, cap - start)
        self.values[slot, start : start + first] = values[:first]
        self.stamps[slot, start : start + first] = stamps[:first]
        self.tags[slot, start : start + first] = tags[:first]
        rest = n - first
        if rest:
            self.values[slot, :rest] = values[first:]
            self.stamps[slot, :rest] = stamps[first:]
            self.tags[slot, :rest] = tags[first:]
        self.pos[slot] = (start + n) % cap
        self.filled[slot] = min(cap, int(self.filled[slot]) + n)
        self.version[slot] += 1

    def replace(self, slot: int, col: int, value: float, version_at_write: int) -> bool:
        """Overwrite a sample in place if the ring has not wrapped over it since."""
        filled = int(self.filled[slot])
        if filled == 0:
            return False
        # Samples written after `col`: if the ring advanced a full lap, col is gone.
        written_since = (int(self.pos[slot]) - col - 1) % self.capacity
        if written_since >= filled or self.version[slot] - version_at_write >= self.capacity:
            return False
        self.values[slot, col] = value
        self.version[slot] += 1
        return True

    def window(self, slot: int, cutoff: float) -> FloatArray:
        """The samples of one ring no older than `cutoff` (unsorted copy)."""
        filled = int(self.filled[slot])
        vals = self.values[slot, :filled]
        stamps = self.stamps[slot, :filled]
        return vals[stamps >= cutoff].copy()

    def window_tags(self, slot: int, cutoff: float) -> npt.NDArray[np.uint8]:
        filled = int(self.filled[slot])
        return self.tags[slot, :filled][self.stamps[slot, :filled] >= cutoff].copy()

    def quantiles(
        self, slots: Sequence[int], cutoff: float, qs: Sequence[float]
    ) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
        """Exact quantiles of each ring's window: (k x len(qs) values, counts, sums).

        Matches numpy.percentile(..., method="linear") (the default, Hyndman-Fan type 7)
        bit for bit, including its lerp that counts down from the upper neighbour when
        the fraction is >= 0.5. Empty windows give NaN.
        """
        k = len(slots)
        out = np.full((k, len(qs)), np.nan)
        counts = np.zeros(k, dtype=np.int64)
        sums = np.zeros(k)
        qarr = np.asarray(qs, dtype=np.float64)
        idx_all = np.asarray(slots, dtype=np.int64)
        for start in range(0, k, _CHUNK):
            idx = idx_all[start : start + _CHUNK]
            width = int(self.filled[idx].max(initial=0))
            if width == 0:
                continue
            block = self.values[idx, :width].copy()
            cols = np.arange(width)
            valid = (cols[None, :] < self.filled[idx][:, None]) & (
                self.stamps[idx, :width] >= cutoff
            )
            block[~valid] = np.inf  # sorts after every real sample
            block.sort(axis=1)
            n = valid.sum(axis=1)
            counts[start : start + len(idx)] = n
            finite = np.where(np.isfinite(block), block, 0.0)
            sums[start : start + len(idx)] = finite.sum(axis=1)
            has = n > 0
            if not has.any():
                continue
            rows = np.nonzero(has)[0]
            nn = n[rows].astype(np.float64)
            virtual = qarr[None, :] * (nn[:, None] - 1.0)
            lo = np.floor(virtual)
            frac = virtual - lo
            lo_i = lo.astype(np.int64)
            hi_i = np.minimum(lo_i + 1, (n[rows] - 1)[:, None])
            a = np.take_along_axis(block[rows], lo_i, axis=1)
            b = np.take_along_axis(block[rows], hi_i, axis=1)
            diff = b - a
            lerp = np.where(frac >= 0.5, b - diff * (1.0 - frac), a + diff * frac)
            # numpy returns the lower neighbour itself when both are equal (also for inf).
            lerp = np.where(a == b, a, lerp)
            out[start + rows] = lerp
        return out, counts, sums

    def tag_counts(
        self, slots: Sequence[int], cutoff: float, ntags: int
    ) -> npt.NDArray[np.int64]:
        """How many window samples of each ring carry each tag: k x ntags."""
        k = len(slots)
        result = np.zeros((k, ntags), dtype=np.int64)
        idx_all = np.asarray(slots, dtype=np.int64)
        for start in range(0, k, _CHUNK):
            idx = idx_all[start : start + _CHUNK]
            width = int(self.filled[idx].max(initial=0))
            if width == 0:
                continue
            cols = np.arange(width)
            valid = (cols[None, :] < self.filled[idx][:, None]) & (
                self.stamps[idx, :width] >= cutoff
            )
            tags = self.tags[idx, :width]
            for tag in range(ntags):
                result[start : start + len(idx), tag] = ((tags == tag) & valid).sum(axis=1)
        return result
