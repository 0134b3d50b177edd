"""The store's tap: every stored beacon sample, queued for the hourly rollups.

The store calls `one` or `many` after a sample is stored; each is one list append (a batch
is queued whole, as the columns the store already built), so the beacon hot path pays
nothing measurable. A short job (`drain`) groups the queue into per-hour rollups with a
fixed number of numpy operations per family.
"""

from __future__ import annotations

from collections.abc import Sequence
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
        self._singles: list[tuple[str, Key, float, float, int]] = []
        self._batches: list[tuple[str, Sequence[Key], Any, Any, Any]] = []

    def one(self, family: str, key: Key, value: float, stamp: float, tag: int) -> None:
        """One stored sample (the store's scalar path)."""
        if self.pending >= self.max_pending:
            self.dropped += 1
            return
        self.pending += 1
        self._singles.append((family, key, value, stamp, tag))

    def many(self, family: str, keys: Sequence[Key], values: Any, stamps: Any,
             tags: Any) -> None:
        """A stored batch of one family, as columns (kept by reference, not copied)."""
        if self.pending >= self.max_pending:
            self.dropped += len(keys)
            return
        self.pending += len(keys)
        self._batches.append((family, keys, values, stamps, tags))

    def drain(self, into: BeaconRollups) -> int:
        """Move everything queued into `into`; return the number of samples moved."""
        singles, self._singles = self._singles, []
        batches, self._batches = self._batches, []
        self.pending = 0
        by_family: dict[str, list[tuple[Sequence[Key], Any, Any, Any]]] = {}
        if singles:
            names, keys1, values1, stamps1, tags1 = zip(*singles, strict=True)
            families = set(names)
            if len(families) == 1:  # the usual case: one beacon kind's singles
                by_family[names[0]] = [(keys1, values1, stamps1, tags1)]
            else:
                for family in families:
                    pick = [i for i, n in enumerate(names) if n == family]
                    by_family[family] = [([keys1[i] for i in pick], [values1[i] for i in pick],
                                          [stamps1[i] for i in pick], [tags1[i] for i in pick])]
        for family, batch_keys, values, stamps, tags in batches:
            by_family.setdefault(family, []).append((batch_keys, values, stamps, tags))
        moved = 0
        for family, parts in by_family.items():
            keys: list[Key] = []
            for part in parts:
                keys.extend(part[0])
            into.add(family, keys,
                     np.concatenate([np.asarray(p[1], dtype=np.float64) for p in parts]),
                     np.concatenate([np.asarray(p[2], dtype=np.float64) for p in parts]),
                     np.concatenate([np.asarray(p[3], dtype=np.int64) for p in parts]))
            moved += len(keys)
        return moved
