"""Current sample values by name, for consumers inside the process (alert evaluation, page).

Reads the same registry `/metrics` renders, so an alert sees exactly what Prometheus would
scrape at that instant. Collectors that can build only some of their families (the store's)
offer `collect_only(names)`; the others are collected whole and filtered.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

Labels = dict[str, str]


def collect_families(registry: CollectorRegistry, names: Iterable[str]) -> list[Metric]:
    """The families holding samples named in `names` (sample names, as PromQL selects)."""
    wanted = set(names)
    out: list[Metric] = []
    # The registry maps every sample name a collector described to that collector.
    collectors = {
        collector
        for name, collector in registry._names_to_collectors.items()
        if name in wanted
    }
    # Collectors that described nothing are asked every time (they may have anything).
    collectors.update(c for c, described in registry._collector_to_names.items() if not described)
    for collector in collectors:
        collect_only = getattr(collector, "collect_only", None)
        families = collect_only(wanted) if collect_only else collector.collect()
        for family in families:
            if any(sample.name in wanted for sample in family.samples):
                out.append(family)
    return out


def current_samples(
    registry: CollectorRegistry, names: Iterable[str]
) -> dict[str, list[tuple[Labels, float]]]:
    """Sample name -> [(labels, value)] for every requested name that has samples now."""
    wanted = set(names)
    out: dict[str, list[tuple[Labels, float]]] = {}
    for family in collect_families(registry, wanted):
        for sample in family.samples:
            if sample.name in wanted:
                out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out
