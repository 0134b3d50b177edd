"""Cache statistics: lru_cache deltas, get/set wrappers, the Space-Saving summary, encoding."""

from __future__ import annotations

import functools
import json
import random
import threading
from collections import Counter

import pytest
from metricsd_client.base import TimingSender
from metricsd_client.cache import CacheStats, LruStats, SpaceSaving


def sender() -> TimingSender:
    return TimingSender("http://127.0.0.1:9/", service="app", cache_interval=3600)


def drain_reports(s: TimingSender) -> list[dict[str, object]]:
    s.collect_caches(force=True)
    kind, batch = s._take()
    assert kind == "cache"
    return json.loads(s.encode_kind(kind, batch))


@pytest.mark.parametrize("maxsize", [None, 1, 4, 16])
def test_lru_reports_are_deltas_that_sum_to_cache_info(maxsize: int | None) -> None:
    @functools.lru_cache(maxsize=maxsize)
    def square(x: int) -> int:
        return x * x

    s = sender()
    s.track_lru(square, "squares")
    rng = random.Random(maxsize or 0)
    reports = []
    for _ in range(5):
        for _ in range(rng.randrange(0, 60)):
            square(rng.randrange(12))
        reports.extend(drain_reports(s))
    info = square.cache_info()
    assert sum(r["hits"] for r in reports) == info.hits
    assert sum(r["misses"] for r in reports) == info.misses
    assert all(r["service"] == "app" and r["cache"] == "squares" for r in reports)
    assert reports[-1]["entries"] == info.currsize
    # every miss inserted an entry; the ones that did not grow the cache evicted one
    assert sum(r["evictions"] for r in reports) == info.misses - info.currsize


def test_lru_cache_clear_is_not_a_negative_delta() -> None:
    @functools.lru_cache(maxsize=8)
    def f(x: int) -> int:
        return x

    stats = LruStats("f", f)
    for x in (1, 1, 2):
        f(x)
    assert stats.take()[:2] == (1, 2)
    f.cache_clear()
    for x in (3, 3, 3):
        f(x)
    hits, misses, evictions, _ = stats.take()
    assert (hits, misses, evictions) == (2, 1, 0)


def test_wrapped_get_set_cache_counts_hits_misses_and_top_keys() -> None:
    s = sender()
    store: dict[str, str] = {}
    cache = s.track_cache(store, "templates", size_bytes=lambda: 1234)
    expected = Counter[str]()
    for key in ["a", "b", "a", "c", "a", "b"]:
        if cache.get(key) is None:
            cache.setdefault(key, key.upper())  # any other method is the cache's own
        else:
            expected[key] += 1
    assert cache.get("zz", "fallback") == "fallback"  # a given default is a miss too
    (report,) = drain_reports(s)
    assert (report["hits"], report["misses"]) == (3, 4)
    assert report["entries"] == len(store) == 3 and report["size_bytes"] == 1234
    assert {k["key"]: k["hits"] for k in report["top_keys"]} == expected
    # the next report holds only what happened since
    cache.get("a")
    (report,) = drain_reports(s)
    assert (report["hits"], report["misses"], report["top_keys"]) == (1, 0, [{"key": "a",
                                                                               "hits": 1}])


def test_stats_are_exact_under_threads() -> None:
    stats = CacheStats("c")

    def work() -> None:
        for i in range(5000):
            stats.hit(i % 7) if i % 3 else stats.miss()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hits, misses, _, _ = stats.take()
    assert (hits, misses) == (4 * 3333, 4 * 1667)


@pytest.mark.parametrize("seed", range(5))
def test_space_saving_keeps_every_heavy_hitter_with_bounded_error(seed: int) -> None:
    rng = random.Random(seed)
    capacity = 20
    stream = [f"k{int(rng.paretovariate(1.2))}" for _ in range(5000)]
    summary = SpaceSaving(capacity)
    for key in stream:
        summary.add(key)
    true = Counter(stream)
    assert len(summary.counts) <= capacity
    bound = len(stream) / capacity
    for key, count in true.items():
        if count > bound:  # a key above n/k is always kept
            assert key in summary.counts
    for key, estimate in summary.counts.items():
        assert true[key] <= estimate <= true[key] + bound


def test_a_cache_whose_size_fails_does_not_stop_the_others() -> None:
    s = sender()
    s.add_cache(CacheStats("broken", size_bytes=lambda: 1 // 0))
    good = s.add_cache(CacheStats("good"))
    good.hit("x")
    reports = drain_reports(s)
    assert [r["cache"] for r in reports] == ["good"]
