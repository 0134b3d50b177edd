"""Series families: label keys mapped to rings, cumulative histograms and counters.

A family is one distribution (API latency, or one Web Vital). Every series of every family
takes one ring from a shared RingPool, so `max_series` bounds memory for all of them at
once. Writes are O(1) and lock-free: everything runs on the one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from metricsd.labels import require_clean
from metricsd.store import exponential
from metricsd.store.kernels import record_batch, record_one
from metricsd.store.ring import (
    CHUNK,
    MERGE_CHUNK,
    TICK_SECONDS,
    FloatArray,
    RingPool,
    block_stats,
)

QUANTILES: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95, 0.99)
# Batches at least this long go to the compiled batch write (building its arrays costs
# about as much as a few scalar writes).
VECTOR_BATCH = 4
# Worker threads rebuilding sorted tops at once during a refresh (the machine's cores).
REBUILD_THREADS = 2

# Latency buckets, seconds: 5 ms to 30 s, roughly x2 per step with the usual SLO lines.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0,
)  # fmt: skip

STATUS_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx")
# One observation: (family, key, value, stamp, tag, extra, ...). A plain tuple, because
# building a NamedTuple per beacon item costs more than validating it.
Observation = tuple[Any, ...]


class SampleTap(Protocol):
    """Told of every stored sample (the history's rollups) by slot; each call must be O(1).

    A slot names its series until expiry releases it, and expiry only takes series idle
    for `idle_timeout`, so a reader that maps slots to keys soon after (seconds) is safe.
    """

    def one(self, family: str, slot: int, value: float, stamp: float, tag: int) -> None: ...

    def many(self, family: str, slots: Any, values: Any, stamps: Any, tags: Any) -> None: ...


@dataclass(frozen=True)
class FamilySpec:
    """Shape of a family: label names, histogram bounds and the two counter dimensions."""

    name: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]
    tags: tuple[str, ...]  # per-sample tag kept in the ring (status class, rating)
    extras: tuple[str, ...] = ("",)  # second counter dimension (navigation type)
    budget: str = ""  # the series budget it draws from (ingest.budgets); "" = the pool's


@dataclass
class WindowStats:
    """One family's window view at one instant, rows aligned with `keys`."""

    keys: list[tuple[str, ...]]
    slots: npt.NDArray[np.int64]
    quantiles: FloatArray  # len(keys) x len(QUANTILES), NaN for an empty window
    counts: npt.NDArray[np.int64]  # samples in the window
    sums: FloatArray  # sum of window samples
    tag_counts: npt.NDArray[np.int64]  # len(keys) x len(tags), window samples per tag
    oldest: FloatArray  # stamp of the oldest sample in the window (inf when empty)


    def rates(
        self, now: float, window_seconds: float, capacity: int, started_at: float
    ) -> FloatArray:
        """Samples per second over the window, as Prometheus's rate() would see them.

        A ring that is not full holds every sample of the last `window_seconds`, or of
        metricsd's whole life when that is shorter (one minute after a start, 600
        requests are 10/s, not 600 / window); a full ring holds only its newest
        `capacity`, so its span starts at its oldest sample. A series born inside the
        window is divided by the whole window, like rate() over a range.
        """
        full = self.counts >= capacity
        span = np.where(full, now - self.oldest, min(window_seconds, now - started_at))
        return np.where(self.counts > 0, self.counts / np.maximum(span, 1.0), 0.0)


@dataclass
class SeriesFamily:
    """Series of one family; per-slot arrays are indexed by the pool's slot number."""

    spec: FamilySpec
    pool: RingPool
    slot_of: dict[tuple[str, ...], int] = field(default_factory=dict)
    buckets: npt.NDArray[np.int64] = field(init=False)
    sums: FloatArray = field(init=False)
    counters: npt.NDArray[np.int64] = field(init=False)
    last_seen: FloatArray = field(init=False)
    # Native histogram counts (store/exponential.py): per slot of this family only (a
    # pool-sized block would cost every family 1.8 KB per slot), the zero bucket and one
    # column per exponential bucket key from exponential.MIN_KEY.
    native: dict[int, npt.NDArray[np.int64]] = field(default_factory=dict)
    native_zero: npt.NDArray[np.int64] = field(init=False)
    # Told of every sample recorded here (the history); every write path ends in `record`
    # or `record_many`, so none can bypass it.
    tap: SampleTap | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        slots = self.pool.slots
        # Non-cumulative per-bucket counts; the last column is +Inf. Cumulated at export.
        self.buckets = np.zeros((slots, len(self.spec.buckets) + 1), dtype=np.int64)
        self.sums = np.zeros(slots)
        self.counters = np.zeros((slots, len(self.spec.tags), len(self.spec.extras)), np.int64)
        self.last_seen = np.zeros(slots)
        self.native_zero = np.zeros(slots, dtype=np.int64)
        self._bounds_array = np.asarray(self.spec.buckets, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.slot_of)

    def record(self, slot: int, value: float, stamp: float, tag: int, extra: int) -> int:
        """Add one sample to ring, histogram and counters; return its ring sequence number."""
        pool = self.pool
        if self.tap is not None:
            self.tap.one(self.spec.name, slot, value, stamp, tag)
        seq: int = record_one(slot, value, stamp, tag, extra, self._bounds_array, self.buckets,
                              self.sums, self.counters, self.last_seen, pool.values,
                              pool.stamps, pool.tags, pool.pos, pool.filled, pool.written,
                              pool.version)
        if value > exponential.ZERO_THRESHOLD:  # native histogram buckets (export/native.py)
            self.native_row(slot)[exponential.key(value) - exponential.MIN_KEY] += 1
        else:
            self.native_zero[slot] += 1
        return seq

    def record_many(
        self,
        slots: npt.NDArray[np.int64],
        values: FloatArray,
        stamps: FloatArray,
        tags: npt.NDArray[Any],
        extras: npt.NDArray[np.int64],
        tag_div: int = 1,
    ) -> None:
        """Add a batch (any mix of series) in one compiled loop: what `record` would do
        sample by sample, without numpy's per-call cost. With tag_div 100, `tags` are HTTP
        statuses and the tag is their class (status // 100 - 1)."""
        pool = self.pool
        if self.tap is not None:  # the columns as given, queued by reference
            self.tap.many(self.spec.name, slots, values, stamps,
                          tags if tag_div == 1 else tags // tag_div - 1)
        record_batch(slots, values, stamps, tags, tag_div, extras, self._bounds_array,
                     self.buckets,
                     self.sums, self.counters, self.last_seen, pool.values, pool.stamps,
                     pool.tags, pool.pos, pool.filled, pool.written, pool.version)
        positive = values > exponential.ZERO_THRESHOLD  # native histogram buckets
        np.add.at(self.native_zero, slots[~positive], 1)
        columns = exponential.keys(values[positive]) - exponential.MIN_KEY
        owners = slots[positive]
        for slot in np.unique(owners).tolist():
            np.add.at(self.native_row(slot), columns[owners == slot], 1)

    def native_row(self, slot: int) -> npt.NDArray[np.int64]:
        """The exponential bucket counts of a slot, created at its first positive sample."""
        row = self.native.get(slot)
        if row is None:
            row = self.native[slot] = np.zeros(exponential.WIDTH, dtype=np.int64)
        return row

    def slots_array(self) -> tuple[list[tuple[str, ...]], npt.NDArray[np.int64]]:
        keys = list(self.slot_of)
        return keys, np.fromiter(self.slot_of.values(), dtype=np.int64, count=len(keys))


_warm = False


def warm_up(window_samples: int) -> None:
    """Load (or compile) every kernel once per process with the dtypes used in production,
    at startup rather than inside the first beacon or scrape."""
    global _warm
    if _warm:
        return
    _warm = True
    # A family shaped like the API timings one (the store itself knows no beacon kind).
    spec = FamilySpec("warm_up", ("service", "route", "method"), LATENCY_BUCKETS,
                      STATUS_CLASSES)
    store = Store(max_series=2, window_samples=max(16, window_samples), window_seconds=300,
                  idle_timeout=60, families=[spec])
    family = store.families[spec.name]
    store.observe(spec.name, ("w", "/", "GET"), 0.1, 1.0, 1)
    store.observe_columns(spec.name, [("w", "/", "GET")] * 8, [0.1] * 8, [1.0] * 8, [1] * 8,
                          [0] * 8)
    store.observe_series(spec.name, [("w", "/", "GET")], [2], np.ones(2), np.ones(2),
                         np.full(2, 200))
    store.window_stats(family, 2.0)  # first read: rebuild
    store.observe(spec.name, ("w", "/", "GET"), 0.2, 1.0, 1)
    store.window_stats(family, 4.0)  # then a merge
    _, slots = family.slots_array()
    block_stats(store.pool.copy_rows(slots), 0.0, store.pool.qs, len(family.spec.tags))


class Store:
    """Every family, the shared ring pool and the series budget (`max_series`)."""

    def __init__(
        self,
        *,
        max_series: int,
        window_samples: int,
        window_seconds: float,
        idle_timeout: float,
        families: Iterable[FamilySpec] = (),
        started_at: float = 0.0,
        budgets: dict[str, int] | None = None,
    ) -> None:
        self.window_seconds = window_seconds
        self.started_at = started_at  # when metricsd started: bounds young windows' rates
        self.idle_timeout = idle_timeout
        self.pool = RingPool(max_series, window_samples, QUANTILES)
        self._refreshing = asyncio.Lock()
        # Held by readers that yield while walking the series (the /metrics writer);
        # expiry waits for it, so no slot changes hands under a reader.
        self.reading = asyncio.Lock()
        self._tap: SampleTap | None = None  # the history, when configured
        self.families: dict[str, SeriesFamily] = {}
        self.layout = 0  # bumps whenever a slot is released
        self.dropped: dict[str, int] = {}  # family -> samples refused for want of a slot
        self.expired: dict[str, int] = {}  # family -> series removed for idleness
        # Series per budget (beacon kind), so one kind cannot take another's slots.
        self.budgets: dict[str, int] = dict(budgets or {})
        self.in_budget: dict[str, int] = dict.fromkeys(self.budgets, 0)
        for spec in families:
            self.add_family(spec)

    @property
    def tap(self) -> SampleTap | None:
        return self._tap

    @tap.setter
    def tap(self, tap: SampleTap | None) -> None:
        """Attach (or detach) the history's tap to every family."""
        self._tap = tap
        for family in self.families.values():
            family.tap = tap

    def add_family(self, spec: FamilySpec) -> None:
        """A family the beacon kinds write (ingest declares them; the store knows none)."""
        if spec.name in self.families:
            raise ValueError(f"store family {spec.name!r} added twice")
        self.families[spec.name] = SeriesFamily(spec, self.pool, tap=self._tap)
        self.dropped[spec.name] = 0
        self.expired[spec.name] = 0

    @property
    def series_count(self) -> int:
        return self.pool.slots - self.pool.free

    def slot(self, family: SeriesFamily, key: tuple[str, ...]) -> int | None:
        """The slot of `key`, allocating one; None (and counted) when the budget is spent."""
        slot = family.slot_of.get(key)
        if slot is None:
            # Every new series passes here, so no path can forget metricsd.labels: a key
            # that skipped it raises LabelError instead of poisoning every later scrape.
            require_clean(key)
            budget = family.spec.budget
            limit = self.budgets.get(budget)
            if limit is not None and self.in_budget[budget] >= limit:
                self.dropped[family.spec.name] += 1
                return None
            slot = self.pool.allocate()
            if slot is None:
                self.dropped[family.spec.name] += 1
                return None
            if limit is not None:
                self.in_budget[budget] += 1
            family.slot_of[key] = slot
            family.buckets[slot] = 0
            family.native.pop(slot, None)
            family.native_zero[slot] = 0
            family.sums[slot] = 0.0
            family.counters[slot] = 0
            family.last_seen[slot] = 0.0
        return slot

    def observe(
        self,
        family_name: str,
        key: tuple[str, ...],
        value: float,
        stamp: float,
        tag: int = 0,
        extra: int = 0,
    ) -> tuple[int, int] | None:
        """Record one sample; return (slot, column) or None if the series was refused."""
        family = self.families[family_name]
        slot = self.slot(family, key)
        if slot is None:
            return None
        return slot, family.record(slot, value, stamp, tag, extra)

    def observe_many(self, samples: Sequence[Observation]) -> list[bool]:
        """Record a batch of one family; True per sample stored, False where refused.

        Small batches take the scalar path (numpy's per-call overhead would dominate);
        large ones cost a fixed number of numpy operations per family.
        """
        if len(samples) < VECTOR_BATCH:
            return [self.observe(*s[:6]) is not None for s in samples]
        names, keys, values, stamps, tags, extras = list(zip(*samples, strict=True))[:6]
        if len(set(names)) != 1:  # a beacon kind feeds one family per batch
            raise ValueError("observe_many takes samples of one family")
        return self.observe_columns(names[0], keys, values, stamps, tags, extras)

    def observe_columns(
        self,
        name: str,
        keys: Sequence[tuple[str, ...]],
        values: Sequence[float],
        stamps: Sequence[float],
        tags: Sequence[int],
        extras: Sequence[int],
    ) -> list[bool]:
        """Record a batch of one family given column by column (vectorised when large)."""
        if len(keys) < VECTOR_BATCH:
            return [self.observe(name, key, v, s, t, e) is not None
                    for key, v, s, t, e in zip(keys, values, stamps, tags, extras, strict=True)]
        family = self.families[name]
        get = family.slot_of.get
        slots = [get(key) for key in keys]
        stored = [True] * len(keys)
        if None in slots:
            for i, slot in enumerate(slots):
                if slot is None:
                    slots[i] = self.slot(family, keys[i])
            if None in slots:  # the series budget is spent: drop those samples, counted
                stored = [slot is not None for slot in slots]
                keep = [i for i, ok in enumerate(stored) if ok]
                slots = [slots[i] for i in keep]
                values = [values[i] for i in keep]
                stamps = [stamps[i] for i in keep]
                tags = [tags[i] for i in keep]
                extras = [extras[i] for i in keep]
                if not slots:
                    return stored
        slot_array = np.array(slots, dtype=np.int64)
        value_array = np.asarray(values, dtype=np.float64)
        stamp_array = np.asarray(stamps, dtype=np.float64)
        tag_array = np.asarray(tags, dtype=np.uint8)
        family.record_many(slot_array, value_array, stamp_array, tag_array,
                           np.asarray(extras, dtype=np.int64))
        return stored

    def observe_series(
        self,
        name: str,
        keys: Sequence[tuple[str, ...]],
        counts: Sequence[int],
        values: FloatArray,
        stamps: FloatArray,
        statuses: npt.NDArray[np.int64],
    ) -> list[bool]:
        """Record columnar series (`counts[i]` samples of keys[i], contiguous, tagged with
        their HTTP status class) with one compiled write; True per series stored, False
        where `max_series` refused it."""
        family = self.families[name]
        slots = [self.slot(family, key) for key in keys]
        stored = [slot is not None for slot in slots]
        if len(slots) == 1:
            per_sample = np.full(counts[0], -1 if slots[0] is None else slots[0], np.int64)
        else:
            per_sample = np.repeat(np.array([-1 if s is None else s for s in slots],
                                            dtype=np.int64), counts)
        if False in stored:
            keep = per_sample >= 0
            per_sample, values, stamps, statuses = (
                per_sample[keep], values[keep], stamps[keep], statuses[keep])
        if len(per_sample):
            family.record_many(per_sample, values, stamps, statuses,
                               np.zeros(len(per_sample), dtype=np.int64), tag_div=100)
        return stored

    def window_stats(self, family: SeriesFamily, now: float) -> WindowStats:
        """Exact window stats of every series of `family`; stale rows are recomputed here."""
        keys, slots = family.slots_array()
        ntags = len(family.spec.tags)
        self.pool.refresh(slots, now - self.window_seconds, now, ntags)
        return WindowStats(keys, slots, *self.pool.cached(slots, ntags))

    async def refresh(self, now: float) -> None:
        """Recompute stale window stats of every family without stalling ingestion.

        Rows with a few new samples are merged on the loop, MERGE_CHUNK at a time with a
        yield in between; rows that need their sorted top rebuilt (most of the ring turned
        over) are copied on the loop and rebuilt in two worker threads (the kernels release
        the GIL), so a scrape of thousands of changed rings does not stall beacons.
        """
        # Two scrapers at once (an HA Prometheus pair) would compute the same rows twice;
        # the second waits and then finds them fresh.
        async with self._refreshing:
            await self._refresh_stale(now)

    async def _refresh_stale(self, now: float) -> None:
        cutoff = now - self.window_seconds
        fresh_after = now - TICK_SECONDS
        pool = self.pool
        for family in self.families.values():
            _, slots = family.slots_array()
            ntags = len(family.spec.tags)
            stale = slots[pool.stale(slots, cutoff, fresh_after)]
            rebuild: list[npt.NDArray[np.int64]] = []
            for start in range(0, len(stale), MERGE_CHUNK):
                rebuild.append(pool.merge(stale[start : start + MERGE_CHUNK], cutoff, now, ntags))
                await asyncio.sleep(0)
            todo = np.concatenate(rebuild) if rebuild else stale[:0]
            chunks = [todo[i : i + CHUNK] for i in range(0, len(todo), CHUNK)]
            for pair in range(0, len(chunks), REBUILD_THREADS):
                copies = [pool.copy_rows(c) for c in chunks[pair : pair + REBUILD_THREADS]]
                results = await asyncio.gather(*(
                    asyncio.to_thread(block_stats, rows, cutoff, pool.qs, ntags)
                    for rows in copies))
                for rows, stats in zip(copies, results, strict=True):
                    pool.store_stats(rows, stats, now, cutoff)

    async def expire_idle(self, now: float) -> int:
        """`expire`, once no reader is walking the series."""
        async with self.reading:
            return self.expire(now)

    def expire(self, now: float) -> int:
        """Drop series with no sample for `idle_timeout`; their counters go with them."""
        cutoff = now - self.idle_timeout
        removed = 0
        for name, family in self.families.items():
            stale = [k for k, s in family.slot_of.items() if family.last_seen[s] < cutoff]
            for key in stale:
                slot = family.slot_of.pop(key)
                family.native.pop(slot, None)  # memory back now, not at the slot's reuse
                self.pool.release(slot)
            if stale:
                self.layout += 1  # slots changed hands: caches of key -> slot are void
            if family.spec.budget in self.in_budget:
                self.in_budget[family.spec.budget] -= len(stale)
            self.expired[name] += len(stale)
            removed += len(stale)
        return removed
