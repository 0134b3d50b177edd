"""The store's tap: every stored beacon sample, queued for the hourly rollups.

The store calls `one` or `many` after a sample is stored, with the series' slot number; each
is one list append (a batch is queued whole, as the numpy columns the store already built),
so the beacon hot path pays almost nothing. A short job (`drain`) maps slots to series keys
once per family and groups the queue into per-hour rollups with a fixed number of numpy
operations per family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from metricsd.history.rollup import BeaconRollups

Key = tuple[str, ...]


class Tap:
    """A bounded queue of stored samples; what does not fit is counted, never kept."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self.pending = 0
        self.dropped = 0
        self.unmapped = 0  # samples whose slot had no series any more (expired meanwhile)
        self._singles: list[tuple[str, int, float, float, int]] = []
        self._batches: list[tuple[str, Any, Any, Any, Any]] = []

    def one(self, family: str, slot: int, value: float, stamp: float, tag: int) -> None:
        """One stored sample (the store's scalar path)."""
        if self.pending >= self.max_pending:
            self.dropped += 1
            return
        self.pending += 1
        self._singles.append((family, slot, value, stamp, tag))

    def many(self, family: str, slots: Any, values: Any, stamps: Any, tags: Any) -> None:
        """A stored batch of one family, as columns (kept by reference, not copied)."""
        if self.pending >= self.max_pending:
            self.dropped += len(slots)
            return
        self.pending += len(slots)
        self._batches.append((family, slots, values, stamps, tags))

    def drain(self, into: BeaconRollups,
              keys_of: Callable[[str], Mapping[int, Key]]) -> int:
        """Move everything queued into `into`; `keys_of(family)` maps slots to keys now."""
        singles, self._singles = self._singles, []
        batches, self._batches = self._batches, []
        self.pending = 0
        by_family: dict[str, list[tuple[Any, Any, Any, Any]]] = {}
        if singles:
            names, slots1, values1, stamps1, tags1 = zip(*singles, strict=True)
            families = set(names)
            if len(families) == 1:  # the usual case: one beacon kind's singles
                by_family[names[0]] = [(slots1, values1, stamps1, tags1)]
            else:
                for family in families:
                    pick = [i for i, n in enumerate(names) if n == family]
                    by_family[family] = [([slots1[i] for i in pick], [values1[i] for i in pick],
                                          [stamps1[i] for i in pick], [tags1[i] for i in pick])]
        for family, slots, values, stamps, tags in batches:
            by_family.setdefault(family, []).append((slots, values, stamps, tags))
        moved = 0
        for family, parts in by_family.items():
            slot_arr = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
            keys = keys_of(family)
            known = np.fromiter((s in keys for s in np.unique(slot_arr).tolist()), dtype=bool)
            values = np.concatenate([np.asarray(p[1], dtype=np.float64) for p in parts])
            stamps = np.concatenate([np.asarray(p[2], dtype=np.float64) for p in parts])
            tags = np.concatenate([np.asarray(p[3], dtype=np.int64) for p in parts])
            if not known.all():
                keep = np.isin(slot_arr, np.unique(slot_arr)[known])
                self.unmapped += int((~keep).sum())
                slot_arr, values, stamps, tags = (slot_arr[keep], values[keep], stamps[keep],
                                                  tags[keep])
            into.add(family, slot_arr, keys, values, stamps, tags)
            moved += len(slot_arr)
        return moved
