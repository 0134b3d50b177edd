"""Compiled window-stat kernels: each ring keeps its upper part in value order between reads.

A ring's "top" is the list of ring columns holding its largest in-window samples, sorted by
value. Every quantile we export (all >= p50) reads ranks inside it, so a read after a few
new samples only drops the columns that were overwritten or aged out, and merges the new
samples that belong above the top's smallest value: O(top + new log new) per series, with
no sort of the whole ring. Invariant: every top sample >= every in-window sample outside it.
When the top no longer covers the ranks the quantiles need (it lost too many samples, the
cutoff went backwards, a value was replaced in place), the row is rebuilt from scratch.

Kernels are numba-compiled with nogil, so the rebuilds can run in a worker thread while the
event loop keeps ingesting. Arithmetic matches numpy.percentile(method="linear") bit for bit.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

# Compiled code is cached on disk so only the first start after an install compiles
# (seconds); next to the package when writable, else here, so a read-only install works.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "metricsd-numba"))

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
Top = npt.NDArray[Any]  # uint16 or uint32 column numbers


@njit(cache=True, nogil=True)
def tag_at(tags: U8, col: int) -> int:
    """The 4-bit tag of ring column `col`: two per byte, saving 1 KB per series."""
    return int((np.int64(tags[col >> 1]) >> ((col & 1) << 2)) & 15)


@njit(cache=True, nogil=True)
def _set_tag(tags: U8, col: int, tag: int) -> None:
    shift = (col & 1) << 2
    byte = col >> 1
    tags[byte] = (np.int64(tags[byte]) & (0xF0 >> shift)) | (tag << shift)


@njit(cache=True, nogil=True)
def _scan(vals: F64, stamps: F64, tags: U8, filled: int, cutoff: float, ntags: int,
          tag_out: I64) -> tuple[int, float, float]:
    """(count, sum, oldest stamp) of the window, per-tag counts added into tag_out."""
    n = 0
    total = 0.0
    oldest = np.inf
    for j in range(filled):
        st = stamps[j]
        if st >= cutoff:
            n += 1
            total += vals[j]
            if st < oldest:
                oldest = st
            t = tag_at(tags, j)
            if t < ntags:
                tag_out[t] += 1
    return n, total, oldest


@njit(cache=True, nogil=True)
def _min_rank(qs: F64, n: int) -> int:
    """Lowest rank any quantile reads in a window of n samples."""
    nn = float(n)
    low = n
    for i in range(len(qs)):
        lo = int(np.floor(qs[i] * (nn - 1.0)))
        if lo < low:
            low = lo
    return low


@njit(cache=True, nogil=True)
def _quantiles(vals: F64, top: Top, tlen: int, n: int, qs: F64, out: F64) -> None:
    """numpy's linear interpolation, reading ranks from the sorted top (rank n - tlen first)."""
    base = n - tlen
    nn = float(n)
    for i in range(len(qs)):
        virtual = qs[i] * (nn - 1.0)
        lo = np.floor(virtual)
        frac = virtual - lo
        lo_i = int(lo)
        hi_i = min(lo_i + 1, n - 1)
        a = vals[np.int64(top[lo_i - base])]
        b = vals[np.int64(top[hi_i - base])]
        diff = b - a
        if a == b:  # numpy returns the lower neighbour itself (also for inf)
            out[i] = a
        elif frac >= 0.5:
            out[i] = b - diff * (1.0 - frac)
        else:
            out[i] = a + diff * frac


@njit(cache=True, nogil=True)
def sort_keys(src: I64, bits: U64, stamps: F64, filled: I64, cutoff: float, width: int,
              keys: U64) -> None:
    """Sortable keys of rows `src`: each in-window sample's value bits, with the column in
    the lowest `width` bits; cells outside the window get the largest key.

    `bits` is the float64 values viewed as uint64. Non-negative floats keep their order as
    unsigned integers once the sign bit is set, negative ones once all bits are flipped.
    Values that differ only in the replaced low bits may come out of order; `finish_rows`
    puts those right, so one numpy sort of plain integers orders every row.
    """
    mask = (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    sign = np.uint64(1) << np.uint64(63)
    last = ~np.uint64(0)
    for r in range(len(src)):
        s = src[r]
        f = filled[s]
        row = keys[r]
        for j in range(row.shape[0]):
            if j < f and stamps[s, j] >= cutoff:
                u = bits[s, j]
                u = ~u if u & sign else u | sign
                row[j] = (u & ~mask) | np.uint64(j)
            else:
                row[j] = last


@njit(cache=True, nogil=True)
def finish_rows(src: I64, dst: I64, keys: U64, width: int, values: F64, stamps: F64, tags: U8,
                filled: I64, cutoff: float, qs: F64, ntags: int, top: Top, top_len: I64,
                out_q: F64, out_n: I64, out_sum: F64, out_tags: I64, out_min: F64) -> None:
    """Window stats of rows `src` from their sorted keys, writing their tops to rows `dst`."""
    mask = (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    cap = top.shape[1]
    for r in range(len(src)):
        s = src[r]
        d = dst[r]
        vals = values[s]
        out_tags[r, :] = 0
        n, total, oldest = _scan(vals, stamps[s], tags[s], filled[s], cutoff, ntags, out_tags[r])
        out_n[r] = n
        out_sum[r] = total
        out_min[r] = oldest
        if n == 0:
            top_len[d] = 0
            out_q[r, :] = np.nan
            continue
        keep = min(n, cap)
        row = keys[r]
        start = n - keep
        shift = np.uint64(width)
        while start > 0 and (row[start - 1] >> shift) == (row[start] >> shift):
            start -= 1  # keys equal above the column bits may hide a larger value below
        m = n - start
        cols = np.empty(m, np.int64)
        for i in range(m):
            cols[i] = np.int64(row[start + i] & mask)
        for i in range(1, m):  # insertion sort by true value: nearly sorted already
            c = cols[i]
            v = vals[c]
            j = i - 1
            while j >= 0 and vals[cols[j]] > v:
                cols[j + 1] = cols[j]
                j -= 1
            cols[j + 1] = c
        out = top[d]
        for i in range(keep):
            out[i] = cols[m - keep + i]
        top_len[d] = keep
        _quantiles(vals, out, keep, n, qs, out_q[r])


@njit(cache=True, nogil=True)
def merge_rows(slots: I64, values: F64, stamps: F64, tags: U8, filled: I64, written: I64,
               top: Top, top_len: I64, top_written: I64, top_cutoff: F64, top_oldest: F64,
               cutoff: float,
               qs: F64, ntags: int, max_delta: int, out_q: F64, out_n: I64, out_sum: F64,
               out_tags: I64, out_min: F64, rebuild: npt.NDArray[np.bool_]) -> None:
    """Window stats of `slots` by updating their tops in place; rows it cannot update get
    rebuild[r] = True (their other outputs are left undefined)."""
    cap = values.shape[1]
    width = top.shape[1]
    buf = np.empty(width, top.dtype)
    cand = np.empty(max(max_delta, 1), np.int64)
    cvals = np.empty(max(max_delta, 1), np.float64)
    for r in range(len(slots)):
        s = slots[r]
        vals = values[s]
        sts = stamps[s]
        out_tags[r, :] = 0
        n, total, oldest = _scan(vals, sts, tags[s], filled[s], cutoff, ntags, out_tags[r])
        out_n[r] = n
        out_sum[r] = total
        out_min[r] = oldest
        w = written[s]
        if n == 0:
            top_len[s] = 0
            top_written[s] = w
            top_cutoff[s] = cutoff
            out_q[r, :] = np.nan
            continue
        tl = top_len[s]
        delta = w - top_written[s]
        if tl <= 0 or delta > max_delta or cutoff < top_cutoff[s]:
            rebuild[r] = True
            continue
        row = top[s]
        m0 = top_written[s] % cap
        # Every top sample is at least as new as the window's oldest at the last update:
        # when that is still inside the window, no stamp needs reading.
        aging = top_oldest[s] < cutoff
        k = 0
        for i in range(tl):  # drop overwritten and aged-out columns
            c = np.int64(row[i])
            back = c - m0  # columns written since: m0 .. m0 + delta - 1, wrapping
            if back < 0:
                back += cap
            if back < delta or (aging and sts[c] < cutoff):
                continue
            row[k] = row[i]
            k += 1
        tl = k
        if tl == 0:
            rebuild[r] = True
            top_len[s] = -1
            continue
        floor_value = vals[np.int64(row[0])]
        nc = 0
        col = int(m0) - 1
        for _ in range(delta):  # new samples that belong in the top
            col += 1
            if col == cap:
                col = 0
            if sts[col] >= cutoff and vals[col] >= floor_value:
                cand[nc] = col
                cvals[nc] = vals[col]
                nc += 1
        if nc:
            order = np.argsort(cvals[:nc])
            total_len = min(width, tl + nc)
            i = tl - 1
            j = nc - 1
            o = total_len - 1
            while o >= 0:  # merge from the largest down; the smallest drop out when full
                if j < 0 or (i >= 0 and vals[np.int64(row[i])] > cvals[order[j]]):
                    buf[o] = row[i]
                    i -= 1
                else:
                    buf[o] = cand[order[j]]
                    j -= 1
                o -= 1
            row[:total_len] = buf[:total_len]
            tl = total_len
        top_len[s] = tl
        top_written[s] = w
        top_cutoff[s] = cutoff
        top_oldest[s] = oldest
        if tl < n - _min_rank(qs, n):
            rebuild[r] = True
            top_len[s] = -1
            continue
        _quantiles(vals, row, tl, n, qs, out_q[r])


@njit(cache=True, nogil=True)
def record_batch(slots: I64, values: F64, stamps: F64, tags: npt.NDArray[Any], tag_div: int,
                 extras: I64, bounds: F64, buckets: I64, sums: F64,
                 counters: npt.NDArray[np.int64], last_seen: F64, ring_values: F64,
                 ring_stamps: F64, ring_tags: U8, pos: I64, filled: I64, written: I64,
                 version: I64) -> None:
    """Record samples in order, exactly as one scalar write per sample would: histogram
    bucket (bisect_left), sum, counter, last seen, ring slot; one compiled loop instead of
    a dozen numpy calls per batch. The tag of sample i is tags[i] // tag_div - (tag_div > 1),
    so HTTP statuses (tag_div 100) become status classes here, not in numpy."""
    off = 1 if tag_div > 1 else 0
    cap = ring_values.shape[1]
    nb = len(bounds)
    for i in range(len(slots)):
        s = slots[i]
        v = values[i]
        lo = 0
        hi = nb
        while lo < hi:  # first bound >= v, as bisect.bisect_left
            mid = (lo + hi) >> 1
            if bounds[mid] < v:
                lo = mid + 1
            else:
                hi = mid
        buckets[s, lo] += 1
        sums[s] += v
        tag = np.int64(tags[i]) // tag_div - off
        counters[s, tag, extras[i]] += 1
        if stamps[i] > last_seen[s]:
            last_seen[s] = stamps[i]
        col = pos[s]
        ring_values[s, col] = v
        ring_stamps[s, col] = stamps[i]
        _set_tag(ring_tags[s], col, int(tag))
        col += 1
        pos[s] = 0 if col == cap else col
        if filled[s] < cap:
            filled[s] += 1
        written[s] += 1
        version[s] += 1


@njit(cache=True, nogil=True)
def record_one(s: int, v: float, stamp: float, tag: int, extra: int, bounds: F64,
               buckets: I64, sums: F64, counters: npt.NDArray[np.int64], last_seen: F64,
               ring_values: F64, ring_stamps: F64, ring_tags: U8, pos: I64, filled: I64,
               written: I64, version: I64) -> int:
    """`record_batch` for one sample (a single beacon); returns its sequence number."""
    cap = ring_values.shape[1]
    lo = 0
    hi = len(bounds)
    while lo < hi:
        mid = (lo + hi) >> 1
        if bounds[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    buckets[s, lo] += 1
    sums[s] += v
    counters[s, tag, extra] += 1
    if stamp > last_seen[s]:
        last_seen[s] = stamp
    col = pos[s]
    ring_values[s, col] = v
    ring_stamps[s, col] = stamp
    _set_tag(ring_tags[s], col, tag)
    col += 1
    pos[s] = 0 if col == cap else col
    if filled[s] < cap:
        filled[s] += 1
    seq = written[s]
    written[s] = seq + 1
    version[s] += 1
    return int(seq)


@njit(cache=True, nogil=True)
def native_counts(slots: I64, values: F64, zero_threshold: float, bounds: F64, schema: int,
                  min_key: int, max_key: int, index: I64) -> tuple[I64, I64, I64]:
    """Native histogram counts of a batch, grouped by slot: (distinct slots in order of
    first appearance, their zero-bucket counts, their counts per key from min_key).

    The key is exponential.keys' (frexp's exponent, then the mantissa's place among the
    bounds), so grouping here gives what per-sample writes give. `index` is a slot-sized
    scratch array of -1, left as it was found.
    """
    n = len(slots)
    order = np.empty(n, dtype=np.int64)
    distinct = 0
    for i in range(n):
        s = slots[i]
        if index[s] < 0:
            index[s] = distinct
            order[distinct] = s
            distinct += 1
    width = max_key - min_key + 1
    zeros = np.zeros(distinct, dtype=np.int64)
    counts = np.zeros((distinct, width), dtype=np.int64)
    for i in range(n):
        row = index[slots[i]]
        v = values[i]
        if v > zero_threshold:
            mantissa, exponent = math.frexp(v)
            within = 0
            while within < len(bounds) and bounds[within] < mantissa:
                within += 1
            key = within + (exponent - 1) * (1 << schema)
            key = min(max(key, min_key), max_key)
            counts[row, key - min_key] += 1
        else:
            zeros[row] += 1
    for j in range(distinct):
        index[order[j]] = -1
    return order[:distinct].copy(), zeros, counts
