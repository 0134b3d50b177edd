"""Preallocated numpy ring buffers, one row per series, with exact window quantiles.

All rings live in one 2-D block so a scrape can sort many series at once (np.sort on a
block beats np.percentile per series by about 10x). Rows are allocated with np.empty, so
the kernel only backs the pages a series has written: memory follows use, bounded by
slots x capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Rows sorted per chunk when computing quantiles: bounds the temporary copy to
# CHUNK x capacity x 8 bytes (8 MiB at the default capacity), and the time the event
# loop spends copying before it can serve a beacon again (a few ms).
CHUNK = 512
# Stats computed less than this long ago are reused even if the ring changed since:
# "at most once per tick per series" for scrapes, alert evaluation and the page together.
TICK_SECONDS = 1.0
# Per-sample tags a ring can carry (status classes, ratings): width of the tag-count cache.
MAX_TAGS = 8


class RingPool:
    """`slots` rings of `capacity` samples: value, timestamp and a small tag per sample."""

    def __init__(self, slots: int, capacity: int, quantiles: Sequence[float]) -> None:
        self.slots = slots
        self.qs = np.asarray(quantiles, dtype=np.float64)
        self.capacity = capacity
        self.values: FloatArray = np.empty((slots, capacity), dtype=np.float64)
        self.stamps: FloatArray = np.empty((slots, capacity), dtype=np.float64)
        self.tags = np.empty((slots, capacity), dtype=np.uint8)
        self.pos = np.zeros(slots, dtype=np.int64)  # next write index
        self.filled = np.zeros(slots, dtype=np.int64)  # samples held, <= capacity
        self.version = np.zeros(slots, dtype=np.int64)  # bumps on every change
        self.written = np.zeros(slots, dtype=np.int64)  # samples pushed since allocation
        self.generation = np.zeros(slots, dtype=np.int64)  # bumps when a slot changes hands
        self._free = list(range(slots - 1, -1, -1))
        # Cached window stats per slot, valid while version matches and no sample aged out.
        self._c_q = np.full((slots, len(self.qs)), np.nan)
        self._c_n = np.zeros(slots, dtype=np.int64)
        self._c_sum = np.zeros(slots)
        self._c_tags = np.zeros((slots, MAX_TAGS), dtype=np.int64)
        self._c_min = np.full(slots, np.inf)
        self._c_version = np.full(slots, -1, dtype=np.int64)
        self._c_time = np.full(slots, -np.inf)

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
        self.written[slot] = 0
        self.generation[slot] += 1
        self.version[slot] += 1
        self._c_time[slot] = -np.inf  # never serve the previous owner's cached stats
        return slot

    def release(self, slot: int) -> None:
        self.filled[slot] = 0
        self.generation[slot] += 1
        self.version[slot] += 1
        self._free.append(slot)

    def push(self, slot: int, value: float, stamp: float, tag: int = 0) -> int:
        """Write one sample in O(1); return its sequence number within this allocation."""
        col = int(self.pos[slot])
        self.values[slot, col] = value
        self.stamps[slot, col] = stamp
        self.tags[slot, col] = tag
        nxt = col + 1
        self.pos[slot] = 0 if nxt == self.capacity else nxt
        if self.filled[slot] < self.capacity:
            self.filled[slot] += 1
        seq = int(self.written[slot])
        self.written[slot] = seq + 1
        self.version[slot] += 1
        return seq

    def push_batch(
        self,
        slots: npt.NDArray[np.int64],
        values: FloatArray,
        stamps: FloatArray,
        tags: npt.NDArray[np.uint8],
    ) -> None:
        """Write samples of many series at once, each series' samples in batch order."""
        cap = self.capacity
        n = len(slots)
        order = np.argsort(slots, kind="stable")
        s = slots[order]
        # Group boundaries straight from the sorted slots (np.unique would sort again).
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        uniq = s[starts]
        counts = np.diff(np.append(starts, n))
        first = np.repeat(starts, counts)
        rank = np.arange(n) - first
        # Only the newest `cap` samples of a series survive; writing the older ones to the
        # same cells would leave the winner up to numpy's undefined order of duplicates.
        keep = rank >= np.repeat(counts - cap, counts)
        s, rank, order = s[keep], rank[keep], order[keep]
        cols = (self.pos[s] + rank) % cap
        self.values[s, cols] = values[order]
        self.stamps[s, cols] = stamps[order]
        self.tags[s, cols] = tags[order]
        self.pos[uniq] = (self.pos[uniq] + counts) % cap
        self.filled[uniq] = np.minimum(cap, self.filled[uniq] + counts)
        self.written[uniq] += counts
        self.version[uniq] += 1

    def replace(self, slot: int, generation: int, seq: int, value: float, tag: int) -> bool:
        """Overwrite sample `seq` in place, unless the ring was reused or has wrapped over it."""
        if self.generation[slot] != generation or self.written[slot] - seq > self.capacity:
            return False
        col = seq % self.capacity
        self.values[slot, col] = value
        self.tags[slot, col] = tag
        self.version[slot] += 1
        return True

    def stale(
        self, slots: npt.NDArray[np.int64], cutoff: float, fresh_after: float
    ) -> npt.NDArray[np.bool_]:
        """Rows whose cached window stats no longer hold: written since, or a sample aged out.

        Rows computed at or after `fresh_after` count as fresh whatever happened since, so
        a scrape, an alert tick and the page in the same tick sort each series once.
        """
        changed = (self._c_version[slots] != self.version[slots]) | (self._c_min[slots] < cutoff)
        stale: npt.NDArray[np.bool_] = changed & (self._c_time[slots] < fresh_after)
        return stale

    def copy_rows(self, slots: npt.NDArray[np.int64]) -> RowsCopy:
        """A private copy of some rings, so their stats can be computed off the event loop."""
        width = int(self.filled[slots].max(initial=0))
        return RowsCopy(
            slots=slots,
            values=self.values[slots, :width].copy(),
            stamps=self.stamps[slots, :width].copy(),
            tags=self.tags[slots, :width].copy(),
            filled=self.filled[slots].copy(),
            version=self.version[slots].copy(),
            generation=self.generation[slots].copy(),
        )

    def store_stats(self, rows: RowsCopy, stats: BlockStats, computed_at: float) -> None:
        """Cache stats computed from `rows` (on the loop; the copy carries its versions).

        A slot that changed hands while the copy was being sorted keeps no stats from it:
        they belong to the series that had the slot before.
        """
        same = self.generation[rows.slots] == rows.generation
        s = rows.slots[same]
        self._c_q[s] = stats.quantiles[same]
        self._c_n[s] = stats.counts[same]
        self._c_sum[s] = stats.sums[same]
        self._c_tags[s, : stats.tag_counts.shape[1]] = stats.tag_counts[same]
        self._c_min[s] = stats.min_stamps[same]
        self._c_version[s] = rows.version[same]
        self._c_time[s] = computed_at

    def cached(
        self, slots: npt.NDArray[np.int64], ntags: int
    ) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray, npt.NDArray[np.int64], FloatArray]:
        """Cached (quantiles, counts, sums, tag counts, oldest stamps) of these rows."""
        return (self._c_q[slots], self._c_n[slots], self._c_sum[slots],
                self._c_tags[slots, :ntags], self._c_min[slots])

    def change_marks(
        self, slots: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """(ring version, time its stats were computed): equal marks mean identical output."""
        return self.version[slots], self._c_time[slots]

    def refresh(
        self, slots: npt.NDArray[np.int64], cutoff: float, now: float, ntags: int
    ) -> None:
        """Recompute stale rows in place, on the calling thread (small stores, tests)."""
        stale = slots[self.stale(slots, cutoff, now - TICK_SECONDS)]
        for start in range(0, len(stale), CHUNK):
            rows = self.copy_rows(stale[start : start + CHUNK])
            self.store_stats(rows, block_stats(rows, cutoff, self.qs, ntags), now)


@dataclass
class RowsCopy:
    """Copied rings (rows aligned with `slots`), safe to read from another thread."""

    slots: npt.NDArray[np.int64]
    values: FloatArray
    stamps: FloatArray
    tags: npt.NDArray[np.uint8]
    filled: npt.NDArray[np.int64]
    version: npt.NDArray[np.int64]
    generation: npt.NDArray[np.int64]


@dataclass
class BlockStats:
    """Window statistics of a RowsCopy, row for row."""

    quantiles: FloatArray
    counts: npt.NDArray[np.int64]
    sums: FloatArray
    tag_counts: npt.NDArray[np.int64]
    min_stamps: FloatArray  # oldest sample counted; once older than the cutoff, recompute


def block_stats(rows: RowsCopy, cutoff: float, qs: FloatArray, ntags: int) -> BlockStats:
    """Exact quantiles, counts, sums and per-tag counts of each row's window.

    Pure (reads only the copy), so it may run in a worker thread: np.sort releases the GIL.
    Matches numpy.percentile(..., method="linear") (the default, Hyndman-Fan type 7)
    bit for bit, including its lerp that counts down from the upper neighbour when
    the fraction is >= 0.5. Empty windows give NaN.
    """
    k, width = rows.values.shape
    out = np.full((k, len(qs)), np.nan)
    tag_counts = np.zeros((k, ntags), dtype=np.int64)
    min_stamps = np.full(k, np.inf)
    if width == 0:
        return BlockStats(out, np.zeros(k, dtype=np.int64), np.zeros(k), tag_counts, min_stamps)
    valid = (np.arange(width)[None, :] < rows.filled[:, None]) & (rows.stamps >= cutoff)
    block = np.where(valid, rows.values, np.inf)  # invalid cells sort after every sample
    n = valid.sum(axis=1)
    # Only ranks from the lowest quantile's upward are read. Partitioning at that rank and
    # sorting the part above it leaves exactly the fully sorted values there, for about
    # half the cost of sorting whole rows when the lowest quantile is the median.
    low = int(np.floor(qs.min() * (max(int(n[n > 0].min(initial=1)), 1) - 1)))
    if low > 0:
        block.partition(low, axis=1)
        block[:, low:].sort(axis=1)
    else:
        block.sort(axis=1)
    sums = np.where(valid, rows.values, 0.0).sum(axis=1)
    min_stamps = np.where(valid, rows.stamps, np.inf).min(axis=1)
    for tag in range(ntags):
        tag_counts[:, tag] = ((rows.tags == tag) & valid).sum(axis=1)
    has = np.nonzero(n > 0)[0]
    if len(has):
        nn = n[has].astype(np.float64)
        virtual = qs[None, :] * (nn[:, None] - 1.0)
        lo = np.floor(virtual)
        frac = virtual - lo
        lo_i = lo.astype(np.int64)
        hi_i = np.minimum(lo_i + 1, (n[has] - 1)[:, None])
        a = np.take_along_axis(block[has], lo_i, axis=1)
        b = np.take_along_axis(block[has], hi_i, axis=1)
        diff = b - a
        lerp = np.where(frac >= 0.5, b - diff * (1.0 - frac), a + diff * frac)
        # numpy returns the lower neighbour itself when both are equal (also for inf).
        out[has] = np.where(a == b, a, lerp)
    return BlockStats(out, n.astype(np.int64), sums, tag_counts, min_stamps)
