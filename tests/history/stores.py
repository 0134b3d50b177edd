"""A beacon store with the api and LCP families, for history tests."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from metricsd.store.series import LATENCY_BUCKETS, STATUS_CLASSES, FamilySpec, Store

RATINGS = ("good", "needs-improvement", "poor")


def make_store(max_series: int = 1000) -> Store:
    specs = [FamilySpec("api", ("service", "route", "method"), LATENCY_BUCKETS, STATUS_CLASSES),
             FamilySpec("LCP", ("page",), (1.0, 2.5, 4.0), RATINGS)]
    if "families" in inspect.signature(Store).parameters:  # the store learns its families
        return Store(max_series=max_series, window_samples=64, window_seconds=300,
                     idle_timeout=1e12, families=specs)  # type: ignore[call-arg]
    return Store(max_series=max_series, window_samples=64,  # pragma: no cover
                 window_seconds=300, idle_timeout=1e12)


def observe(store: Store, family: str, keys: Sequence[tuple[str, ...]], values: Sequence[float],
            stamps: Sequence[float], tags: Sequence[int]) -> None:
    """Through the store's batch path (vectorised from 32 samples), tap included."""
    store.observe_columns(family, list(keys), [float(v) for v in values],
                          [float(s) for s in stamps], [int(t) for t in tags], [0] * len(keys))
