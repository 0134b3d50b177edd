"""Preallocated numpy ring buffers, one row per series, with exact window quantiles.

All rings live in one 2-D block. Rows are allocated with np.empty, so the kernel only backs
the pages a series has written: memory follows use, bounded by slots x capacity. Each ring
also keeps its upper part in value order between reads (`top`, see store/kernels.py), so a
read after a few new samples costs microseconds, not a sort of the ring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from metricsd.store.kernels import finish_rows, merge_rows, sort_keys

FloatArray = npt.NDArray[np.float64]

# Rows whose tops are merged per call on the event loop (a few us each: ~1 ms a chunk).
MERGE_CHUNK = 256
# Rows rebuilt per worker-thread call: bounds the temporary copy to CHUNK x capacity x 17
# bytes (8.5 MiB at the default capacity) and the loop's copying time to a few ms.
CHUNK = 256
# Stats computed less than this long ago are reused even if the ring changed since:
# "at most once per tick per series" for scrapes, alert evaluation and the page together.
TICK_SECONDS = 1.0
# Per-sample tags a ring can carry (status classes, ratings): width of the tag-count cache.
# Tags are stored 4 bits each, so at most 16.
MAX_TAGS = 8


class RingPool:
    """`slots` rings of `capacity` samples: value, timestamp and a small tag per sample."""

    def __init__(self, slots: int, capacity: int, quantiles: Sequence[float]) -> None:
        self.slots = slots
        self.qs = np.asarray(quantiles, dtype=np.float64)
        self.capacity = capacity
        self.values: FloatArray = np.empty((slots, capacity), dtype=np.float64)
        self.stamps: FloatArray = np.empty((slots, capacity), dtype=np.float64)
        self.tags = np.empty((slots, (capacity + 1) // 2), dtype=np.uint8)  # 4 bits each
        self.pos = np.zeros(slots, dtype=np.int64)  # next write index
        self.filled = np.zeros(slots, dtype=np.int64)  # samples held, <= capacity
        self.version = np.zeros(slots, dtype=np.int64)  # bumps on every change
        self.written = np.zeros(slots, dtype=np.int64)  # samples pushed since allocation
        self.generation = np.zeros(slots, dtype=np.int64)  # bumps when a slot changes hands
        self._free = list(range(slots - 1, -1, -1))
        # Sorted upper part of each window (ring columns) and what it reflects: rows written
        # up to top_written, samples older than top_cutoff dropped; top_len -1 = rebuild.
        # `epoch` bumps whenever a top can no longer be trusted (slot reuse, in-place edit).
        width = top_width(capacity, self.qs)
        self.top = np.empty((slots, width), dtype=top_dtype(capacity))
        self.top_len = np.full(slots, -1, dtype=np.int64)
        self.top_written = np.zeros(slots, dtype=np.int64)
        self.top_cutoff = np.full(slots, -np.inf)
        self.top_oldest = np.full(slots, -np.inf)  # window's oldest stamp at that update
        self.epoch = np.zeros(slots, dtype=np.int64)
        # More new samples than this since the last read: rebuilding beats merging.
        self.max_delta = max(1, capacity // 4)
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
        self._forget_top(slot)
        return slot

    def _forget_top(self, slot: int) -> None:
        self.top_len[slot] = -1
        self.epoch[slot] += 1

    def release(self, slot: int) -> None:
        self.filled[slot] = 0
        self.generation[slot] += 1
        self.version[slot] += 1
        self._forget_top(slot)
        self._free.append(slot)

    def push(self, slot: int, value: float, stamp: float, tag: int = 0) -> int:
        """Write one sample; return its sequence number within this allocation. Plain Python:
        the reference the compiled writes (kernels.record_one/record_batch) are tested on."""
        col = int(self.pos[slot])
        self.values[slot, col] = value
        self.stamps[slot, col] = stamp
        self._set_tag(slot, col, tag)
        nxt = col + 1
        self.pos[slot] = 0 if nxt == self.capacity else nxt
        if self.filled[slot] < self.capacity:
            self.filled[slot] += 1
        seq = int(self.written[slot])
        self.written[slot] = seq + 1
        self.version[slot] += 1
        return seq

    def _set_tag(self, slot: int, col: int, tag: int) -> None:
        shift = (col & 1) * 4
        byte = int(self.tags[slot, col >> 1])
        self.tags[slot, col >> 1] = (byte & (0xF0 >> shift)) | (tag << shift)

    def tags_of(self, slot: int) -> npt.NDArray[np.uint8]:
        """Every column's tag of one ring, unpacked (tests, inspection)."""
        packed = self.tags[slot]
        both = np.stack([packed & 15, packed >> 4], axis=1).reshape(-1)
        tags: npt.NDArray[np.uint8] = both[: self.capacity]
        return tags

    def replace(self, slot: int, generation: int, seq: int, value: float, tag: int) -> bool:
        """Overwrite sample `seq` in place, unless the ring was reused or has wrapped over it."""
        if self.generation[slot] != generation or self.written[slot] - seq > self.capacity:
            return False
        col = seq % self.capacity
        self.values[slot, col] = value
        self._set_tag(slot, col, tag)
        self.version[slot] += 1
        self._forget_top(slot)  # its place in value order changed: rebuilt on the next read
        return True

    def stale(
        self, slots: npt.NDArray[np.int64], cutoff: float, fresh_after: float
    ) -> npt.NDArray[np.bool_]:
        """Rows whose cached window stats no longer hold: written since, or a sample aged out.

        Rows computed at or after `fresh_after` count as fresh whatever happened since, so
        a scrape, an alert tick and the page in the same tick compute each series once.
        """
        changed = (self._c_version[slots] != self.version[slots]) | (self._c_min[slots] < cutoff)
        fresh: npt.NDArray[np.bool_] = changed & (self._c_time[slots] < fresh_after)
        return fresh

    def merge(
        self, slots: npt.NDArray[np.int64], cutoff: float, now: float, ntags: int
    ) -> npt.NDArray[np.int64]:
        """Update stats of `slots` whose tops can be merged (fast, on the loop); return the
        slots whose tops must be rebuilt."""
        hopeless = (self.top_len[slots] < 0) | (
            self.written[slots] - self.top_written[slots] > self.max_delta)
        if hopeless.any():  # known without reading the rows: straight to the rebuild
            rest = slots[~hopeless]
            later = self.merge(rest, cutoff, now, ntags) if len(rest) else rest
            return np.concatenate([slots[hopeless], later])
        k = len(slots)
        stats = BlockStats.empty(k, len(self.qs), ntags)
        rebuild = np.zeros(k, dtype=np.bool_)
        merge_rows(slots, self.values, self.stamps, self.tags, self.filled, self.written,
                   self.top, self.top_len, self.top_written, self.top_cutoff, self.top_oldest,
                   cutoff, self.qs,
                   ntags, self.max_delta, stats.quantiles, stats.counts, stats.sums,
                   stats.tag_counts, stats.min_stamps, rebuild)
        done = ~rebuild
        self._keep(slots[done], stats.select(done), self.version[slots[done]], now)
        return slots[rebuild]

    def rebuild(
        self, slots: npt.NDArray[np.int64], cutoff: float, now: float, ntags: int
    ) -> None:
        """Rebuild the tops of `slots` in place, on the calling thread (small stores, tests)."""
        stats = BlockStats.empty(len(slots), len(self.qs), ntags)
        for start in range(0, len(slots), CHUNK):  # bounds the keys block to 4 MiB
            part = slots[start : start + CHUNK]
            rebuild_block(part, part, self.values, self.stamps, self.tags, self.filled,
                          self.capacity, cutoff, self.qs, ntags, self.top, self.top_len,
                          stats.slice(start, start + len(part)))
        self.top_written[slots] = self.written[slots]
        self.top_cutoff[slots] = cutoff
        self.top_oldest[slots] = stats.min_stamps
        self._keep(slots, stats, self.version[slots], now)

    def copy_rows(self, slots: npt.NDArray[np.int64]) -> RowsCopy:
        """A private copy of some rings, so their tops can be rebuilt off the event loop."""
        width = int(self.filled[slots].max(initial=0))
        return RowsCopy(
            slots=slots,
            values=self.values[slots, :width].copy(),
            stamps=self.stamps[slots, :width].copy(),
            tags=self.tags[slots, : (width + 1) // 2].copy(),
            filled=self.filled[slots].copy(),
            version=self.version[slots].copy(),
            generation=self.generation[slots].copy(),
            written=self.written[slots].copy(),
            epoch=self.epoch[slots].copy(),
            top_width=self.top.shape[1],
            capacity=self.capacity,
        )

    def store_stats(
        self, rows: RowsCopy, stats: BlockStats, computed_at: float, cutoff: float | None = None
    ) -> None:
        """Cache stats (and the tops) computed from `rows` (on the loop; the copy carries its
        versions).

        A slot that changed hands while the copy was being sorted keeps no stats from it:
        they belong to the series that had the slot before. A top is installed only if no
        sample was replaced in place since the copy: samples written since are merged by
        the next read, because the top records how far the ring had been written.
        """
        same = self.generation[rows.slots] == rows.generation
        self._keep(rows.slots[same], stats.select(same), rows.version[same], computed_at)
        if stats.top is None or stats.top_len is None or cutoff is None:
            return
        intact = self.epoch[rows.slots] == rows.epoch
        s = rows.slots[intact]
        self.top[s] = stats.top[intact]
        self.top_len[s] = stats.top_len[intact]
        self.top_written[s] = rows.written[intact]
        self.top_cutoff[s] = cutoff
        self.top_oldest[s] = stats.min_stamps[intact]

    def _keep(
        self, s: npt.NDArray[np.int64], stats: BlockStats, version: npt.NDArray[np.int64],
        computed_at: float,
    ) -> None:
        self._c_q[s] = stats.quantiles
        self._c_n[s] = stats.counts
        self._c_sum[s] = stats.sums
        self._c_tags[s, : stats.tag_counts.shape[1]] = stats.tag_counts
        self._c_min[s] = stats.min_stamps
        self._c_version[s] = version
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
        if len(stale):
            self.rebuild(self.merge(stale, cutoff, now, ntags), cutoff, now, ntags)


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
    written: npt.NDArray[np.int64]
    epoch: npt.NDArray[np.int64]
    top_width: int
    capacity: int


@dataclass
class BlockStats:
    """Window statistics of some rows, row for row (and their rebuilt tops, if any)."""

    quantiles: FloatArray
    counts: npt.NDArray[np.int64]
    sums: FloatArray
    tag_counts: npt.NDArray[np.int64]
    min_stamps: FloatArray  # oldest sample counted; once older than the cutoff, recompute
    top: npt.NDArray[np.unsignedinteger[Any]] | None = None
    top_len: npt.NDArray[np.int64] | None = None

    @classmethod
    def empty(cls, k: int, nq: int, ntags: int) -> BlockStats:
        return cls(np.full((k, nq), np.nan), np.zeros(k, dtype=np.int64), np.zeros(k),
                   np.zeros((k, ntags), dtype=np.int64), np.full(k, np.inf))

    def slice(self, start: int, stop: int) -> BlockStats:
        """Rows start..stop as views: kernels write through them."""
        return BlockStats(self.quantiles[start:stop], self.counts[start:stop],
                          self.sums[start:stop], self.tag_counts[start:stop],
                          self.min_stamps[start:stop])

    def select(self, rows: npt.NDArray[np.bool_]) -> BlockStats:
        return BlockStats(self.quantiles[rows], self.counts[rows], self.sums[rows],
                          self.tag_counts[rows], self.min_stamps[rows])


def block_stats(rows: RowsCopy, cutoff: float, qs: FloatArray, ntags: int) -> BlockStats:
    """Exact quantiles, counts, sums and per-tag counts of each row's window, with new tops.

    Pure (reads only the copy) and compiled without the GIL, so it runs in a worker thread.
    Matches numpy.percentile(..., method="linear") (the default, Hyndman-Fan type 7)
    bit for bit, including its lerp that counts down from the upper neighbour when
    the fraction is >= 0.5. Empty windows give NaN.
    """
    k = len(rows.slots)
    stats = BlockStats.empty(k, len(qs), ntags)
    stats.top = np.empty((k, rows.top_width), dtype=top_dtype(rows.capacity))
    stats.top_len = np.zeros(k, dtype=np.int64)
    idx = np.arange(k, dtype=np.int64)
    rebuild_block(idx, idx, rows.values, rows.stamps, rows.tags, rows.filled, rows.capacity,
                  cutoff, qs, ntags, stats.top, stats.top_len, stats)
    return stats


def rebuild_block(
    src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64], values: FloatArray,
    stamps: FloatArray, tags: npt.NDArray[np.uint8], filled: npt.NDArray[np.int64],
    capacity: int, cutoff: float, qs: FloatArray, ntags: int,
    top: npt.NDArray[np.unsignedinteger[Any]], top_len: npt.NDArray[np.int64], out: BlockStats,
) -> None:
    """Stats and new tops of rows `src`: one numpy sort of integer keys (value bits, column
    in the low bits), then a compiled pass that fixes the rare near-ties and reads ranks."""
    width = max(1, (capacity - 1).bit_length())
    keys = np.empty((len(src), values.shape[1]), dtype=np.uint64)
    sort_keys(src, values.view(np.uint64), stamps, filled, cutoff, width, keys)
    keys.sort(axis=1)
    finish_rows(src, dst, keys, width, values, stamps, tags, filled, cutoff, qs, ntags, top,
                top_len, out.quantiles, out.counts, out.sums, out.tag_counts, out.min_stamps)


def top_dtype(capacity: int) -> type[np.unsignedinteger[Any]]:
    """Column numbers fit 16 bits at the default window: 2 bytes per kept sample."""
    return np.uint16 if capacity <= 1 << 16 else np.uint32


def top_width(capacity: int, qs: FloatArray) -> int:
    """Samples a top keeps: the ranks the lowest quantile reads, plus 1/32 of slack.

    The slack is what a top may lose to evictions before it must be rebuilt (a random walk
    of +-a few samples per read takes hundreds of reads to use 64); it is kept small
    because every entry costs 2 bytes per series: 2.1 KB at the default window.
    """
    need = capacity - int(np.floor(float(qs.min()) * (capacity - 1)))
    return min(capacity, need + capacity // 32 + 1)
