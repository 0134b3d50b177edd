"""Send an app's request timings, operations and cache statistics to metricsd.

Nothing here makes a request wait: each middleware records the route template, method,
status and duration into a bounded queue that a background sender posts in batches to
`POST /v1/beacons/timings`; `timer()` and `record_operation()` feed
`/v1/beacons/operations`; `track_lru()` and `track_cache()` report hits and misses to
`/v1/beacons/cache` every `cache_interval`. The thread sender needs only the standard
library; framework modules (and aiohttp, the `aiohttp` extra) are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

from metricsd_client.base import SenderStats, TimingSender
from metricsd_client.cache import CacheStats, LruStats, SpaceSaving, TrackedCache
from metricsd_client.default import (
    configure,
    default_sender,
    record_operation,
    set_default_sender,
    timer,
    track_cache,
    track_lru,
)
from metricsd_client.timer import OUTCOMES, Timer

_LAZY = {
    "AsyncSender": "metricsd_client.async_sender",
    "ThreadSender": "metricsd_client.thread_sender",
    "aiohttp_middleware": "metricsd_client.aiohttp_middleware",
    "setup_aiohttp": "metricsd_client.aiohttp_middleware",
    "MetricsdASGIMiddleware": "metricsd_client.asgi",
    "MetricsdWSGIMiddleware": "metricsd_client.wsgi",
    "DjangoRouteMiddleware": "metricsd_client.wsgi",
    "SenderCollector": "metricsd_client.prometheus",
}

__all__ = [
    "OUTCOMES", "CacheStats", "LruStats", "SenderStats", "SpaceSaving", "Timer",
    "TimingSender", "TrackedCache", "configure", "default_sender", "record_operation",
    "set_default_sender", "timer", "track_cache", "track_lru", *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import a framework module only when its name is first used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
