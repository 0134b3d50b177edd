"""Cache hit/miss counting: for functools.lru_cache and for any object with get/set.

Counts are kept between two reports and sent as "since my last report" (the sender calls
`report()` every `cache_interval`). Top keys are a bounded Space-Saving summary per
report, so a cache with millions of keys costs at most `key_capacity` entries here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

KEY_CHARS = 200  # metricsd keeps at most this many characters of a key


class SpaceSaving:
    """Metwally et al.'s Space-Saving: the k most frequent keys with bounded memory.

    A key not tracked replaces the one with the smallest count and inherits that count
    plus one, so a count is never under the true one and over it by at most `error`.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.counts: dict[str, int] = {}

    def add(self, key: str, count: int = 1) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += count
        elif len(counts) < self.capacity:
            counts[key] = count
        else:
            smallest = min(counts, key=counts.__getitem__)
            floor = counts.pop(smallest)
            counts[key] = floor + count

    def top(self, n: int) -> list[tuple[str, int]]:
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


class CacheStats:
    """One cache's counts since the last report; `hit()`/`miss()` are safe from any thread."""

    def __init__(
        self,
        name: str,
        *,
        entries: Callable[[], int] | None = None,
        size_bytes: Callable[[], int] | None = None,
        top_keys: int = 10,
        key_capacity: int = 100,
    ) -> None:
        self.name = name
        self._entries = entries
        self._size_bytes = size_bytes
        self._top = top_keys
        self._key_capacity = key_capacity
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._keys = SpaceSaving(key_capacity)
        self.total_hits = 0  # since start, for the app's own checks
        self.total_misses = 0

    def hit(self, key: object = None) -> None:
        with self._lock:
            self._hits += 1
            if key is not None and self._top:
                self._keys.add(str(key)[:KEY_CHARS])

    def miss(self) -> None:
        with self._lock:
            self._misses += 1

    def evict(self, count: int = 1) -> None:
        with self._lock:
            self._evictions += count

    def take(self) -> tuple[int, int, int, list[tuple[str, int]]]:
        """Hits, misses, evictions and top keys since the last call; resets them."""
        with self._lock:
            hits, misses, evictions = self._hits, self._misses, self._evictions
            top = self._keys.top(self._top) if self._top else []
            self._hits = self._misses = self._evictions = 0
            self._keys = SpaceSaving(self._key_capacity)
        self.total_hits += hits
        self.total_misses += misses
        return hits, misses, evictions, top

    def report(self) -> dict[str, object] | None:
        """The `/v1/beacons/cache` item (without `service`, which the sender adds)."""
        hits, misses, evictions, top = self.take()
        item: dict[str, object] = {"cache": self.name, "hits": hits, "misses": misses,
                                   "evictions": evictions}
        if self._entries is not None:
            item["entries"] = int(self._entries())
        if self._size_bytes is not None:
            item["size_bytes"] = int(self._size_bytes())
        if top:
            item["top_keys"] = [{"key": key, "hits": count} for key, count in top]
        return item


class _CacheInfo(Protocol):
    hits: int
    misses: int
    maxsize: int | None
    currsize: int


class LruCached(Protocol):
    """What functools.lru_cache returns: the report reads its cache_info()."""

    def cache_info(self) -> _CacheInfo: ...


class LruStats(CacheStats):
    """Reads an lru_cache's own counters at report time: nothing is added to each call.

    Evictions: every miss inserts an entry, so with a bounded cache the misses that did
    not grow it evicted one. `cache_clear()` resets the counters; that is noticed.
    """

    def __init__(self, name: str, func: LruCached, **options: Any) -> None:
        super().__init__(name, top_keys=0, **options)
        self.func = func
        info = func.cache_info()
        self._seen = (info.hits, info.misses, info.currsize)

    def take(self) -> tuple[int, int, int, list[tuple[str, int]]]:
        info = self.func.cache_info()
        hits0, misses0, size0 = self._seen
        if info.hits < hits0 or info.misses < misses0:  # cache_clear() in between
            hits0 = misses0 = size0 = 0
        self._seen = (info.hits, info.misses, info.currsize)
        hits, misses = info.hits - hits0, info.misses - misses0
        evictions = max(0, misses - (info.currsize - size0)) if info.maxsize is not None else 0
        self.total_hits += hits
        self.total_misses += misses
        return hits, misses, evictions, []

    def report(self) -> dict[str, object] | None:
        item = super().report()
        if item is not None and "entries" not in item:
            item["entries"] = self.func.cache_info().currsize
        return item


C = TypeVar("C")


class TrackedCache(Generic[C]):
    """Wraps any cache with `get(key[, default])`: a hit is a value other than the default.

    Every other attribute (`set`, `delete`, ...) is the wrapped cache's own.
    """

    def __init__(self, cache: C, stats: CacheStats) -> None:
        self.cache = cache
        self.stats = stats

    def get(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        missing = args[0] if args else kwargs.get("default")
        value = self.cache.get(key, *args, **kwargs)  # type: ignore[attr-defined]
        if value is missing:
            self.stats.miss()
        else:
            self.stats.hit(key)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cache, name)

    def __len__(self) -> int:
        return len(self.cache)  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return key in self.cache  # type: ignore[operator]
