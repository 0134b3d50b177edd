"""Hourly rollups of beacon samples, kept in memory until the writer thread stores them.

Each (hour, store family, series key) holds a sample count, a sum, counts per ring tag
(status class for API timings, rating for Web Vitals) and a latency Sketch. What `flush`
hands over is a delta: the writer adds it to what the file already holds for that hour, so
a restart in the middle of an hour keeps the part already written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from metricsd.history import sketch

HOUR = 3600
Key = tuple[str, ...]
_IDX_SPAN = 1 << 16
_TAGS = 16  # ring tags are small enums (5 status classes, 3 ratings)


@dataclass
class Acc:
    """One hour of one series."""

    count: int = 0
    total: float = 0.0
    tags: list[int] = field(default_factory=lambda: [0] * _TAGS)
    buckets: dict[int, int] = field(default_factory=dict)


class BeaconRollups:
    """Deltas not yet written, per (hour start, family, key)."""

    def __init__(self) -> None:
        self.pending: dict[tuple[int, str, Key], Acc] = {}
        self.samples = 0

    def add(self, family: str, slots: npt.NDArray[np.int64], keys: Mapping[int, Key],
            values: npt.NDArray[np.float64], stamps: npt.NDArray[np.float64],
            tags: npt.NDArray[np.int64]) -> None:
        """Group a family's samples by series (slot), hour, bucket and tag with numpy."""
        if len(slots) == 0:
            return
        hours = (np.floor(stamps / HOUR)).astype(np.int64)
        h0 = int(hours.min())
        hoff = hours - h0
        span = int(hoff.max()) + 1
        idx = np.clip(sketch.indexes(values) + (1 << 15), 0, _IDX_SPAN - 1)
        tag = np.clip(tags, 0, _TAGS - 1)
        series = slots * span + hoff
        composite = (series * _IDX_SPAN + idx) * _TAGS + tag
        uniq, counts = np.unique(composite, return_counts=True)
        groups, inverse = np.unique(series, return_inverse=True)
        sums = np.bincount(inverse, weights=values)
        accs: dict[int, Acc] = {}
        for g, s in zip(groups.tolist(), sums.tolist(), strict=True):
            k, off = divmod(g, span)
            slot = ((h0 + off) * HOUR, family, keys[k])
            acc = self.pending.get(slot)
            if acc is None:
                acc = self.pending[slot] = Acc()
            acc.total += s
            accs[g] = acc
        for c, n in zip(uniq.tolist(), counts.tolist(), strict=True):
            rest, t = divmod(c, _TAGS)
            g, i = divmod(rest, _IDX_SPAN)
            acc = accs[g]
            acc.count += n
            acc.tags[t] += n
            b = i - (1 << 15)
            acc.buckets[b] = acc.buckets.get(b, 0) + n
        self.samples += len(slots)

    def flush(self) -> dict[tuple[int, str, Key], Acc]:
        """Hand over the deltas and start again."""
        out, self.pending = self.pending, {}
        return out
