"""A copy of what the exporter reads from the store, taken on the event loop in a few ms,
so that building big exposition bodies (protobuf with native histograms) can happen in a
worker thread while beacons keep writing into the live store.

Copied: every family's series map, classic buckets, sums, counters, native histogram rows
and its current window stats (computed by `Store.refresh`, which the caller awaits
first). Not copied: the rings themselves (hundreds of MB); the window stats already say
what the exporter needs from them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from metricsd.store.series import SeriesFamily, Store, WindowStats


@dataclass(frozen=True)
class PoolShape:
    """The two numbers of the ring pool the exporter's help texts and caches use."""

    capacity: int
    slots: int


class StoreSnapshot:
    """Read-only stand-in for a Store at one instant (families, window stats, shape)."""

    def __init__(self, store: Store, now: float) -> None:
        self.window_seconds = store.window_seconds
        self.pool = PoolShape(store.pool.capacity, store.pool.slots)
        self.families: dict[str, SeriesFamily] = {}
        self._stats: dict[str, WindowStats] = {}
        for name, family in store.families.items():
            self._stats[name] = store.window_stats(family, now)
            clone = copy.copy(family)
            clone.slot_of = dict(family.slot_of)
            clone.buckets = family.buckets.copy()
            clone.sums = family.sums.copy()
            clone.counters = family.counters.copy()
            clone.native = {slot: row.copy() for slot, row in family.native.items()}
            clone.native_zero = family.native_zero.copy()
            self.families[name] = clone

    def window_stats(self, family: SeriesFamily, now: float) -> WindowStats:
        """The stats taken with the snapshot (`now` is the snapshot's, not the caller's)."""
        return self._stats[family.spec.name]
