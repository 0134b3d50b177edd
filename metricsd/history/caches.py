"""Cache hits, misses and evictions for the history: deltas of the cache state's counters.

The cache state (ingest/cache.py) keeps cumulative counts per (service, cache) in memory,
so they start from zero when metricsd starts and when an idle cache is forgotten and comes
back. Each flush records what was added since the previous one: a cache seen for the first
time (or a new series object for the same key) counts from zero, so a restart neither
loses nor double counts what the file already holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class CacheFact:
    """One cache's lookups and evictions since the previous flush."""

    service: str
    cache: str
    hits: int
    misses: int
    evictions: int


class CacheCounters(Protocol):
    """What the sampler reads of ingest.cache.CacheState: its series by (service, cache)."""

    series: dict[tuple[str, str], Any]


class CacheDeltas:
    """Remembers each cache's counters at the previous call (and which series object)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[Any, int, int, int]] = {}

    def take(self, state: CacheCounters | None) -> list[CacheFact]:
        """What every cache added since the previous call; only caches that changed."""
        if state is None:
            return []
        seen: dict[tuple[str, str], tuple[Any, int, int, int]] = {}
        out: list[CacheFact] = []
        for key, s in list(state.series.items()):
            hits, misses, evictions = int(s.hits), int(s.misses), int(s.evictions)
            prev = self._last.get(key)
            # The same object: counts only grow. Another object: it started again from zero.
            h0, m0, e0 = prev[1:] if prev is not None and prev[0] is s else (0, 0, 0)
            seen[key] = (s, hits, misses, evictions)
            delta = (hits - h0, misses - m0, evictions - e0)
            if any(delta):
                out.append(CacheFact(key[0], key[1], *delta))
        self._last = seen
        return out
