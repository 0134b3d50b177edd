"""Send an app's request timings to metricsd without ever making a request wait on it.

Pick the middleware of your framework; each records the route template, method, status
and duration into a bounded queue that a background sender posts in batches to
`POST /v1/beacons/timings`. Framework modules are imported lazily, so a Flask app never
imports aiohttp's web stack and an aiohttp app never needs starlette or flask.
"""

from __future__ import annotations

import importlib
from typing import Any

from metricsd.client.base import SenderStats, TimingSender

_LAZY = {
    "AsyncSender": "metricsd.client.async_sender",
    "ThreadSender": "metricsd.client.thread_sender",
    "aiohttp_middleware": "metricsd.client.aiohttp_middleware",
    "setup_aiohttp": "metricsd.client.aiohttp_middleware",
    "MetricsdASGIMiddleware": "metricsd.client.asgi",
    "MetricsdWSGIMiddleware": "metricsd.client.wsgi",
    "DjangoRouteMiddleware": "metricsd.client.wsgi",
    "SenderCollector": "metricsd.client.prometheus",
}

__all__ = ["SenderStats", "TimingSender", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import a framework module only when its name is first used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
