"""Current samples by name, for readers inside the process (the alert engine, the page).

Reads the same registry /metrics renders, so an alert sees exactly what Prometheus would
scrape at that instant. Family sources are read only for the families a reader asks for;
plain collectors are collected whole (only when they described a wanted name, or nothing)
and filtered.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from metricsd.export.family import Labels, samples
from metricsd.export.registry import Registry, SourceCollector, describe_names

# Sample name -> [(labels, value)]: what PromQL selectors read.
Current = dict[str, list[tuple[Labels, float]]]
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}


def _any_sample_names(name: str) -> set[str]:
    """Every sample name a family of this name could produce, whatever its type."""
    return {name, *(name + suffix for suffixes in _SUFFIXES.values() for suffix in suffixes)}


class Samples:
    """The read interface: `current(names)` over every member of a registry.

    A plain CollectorRegistry (tests, embedding) is read through its public `collect()`.
    """

    def __init__(self, registry: Registry | CollectorRegistry) -> None:
        self.registry = registry
        self._described: dict[object, set[str]] = {}

    def _wanted_by(self, collector: object, wanted: set[str]) -> bool:
        """Whether a plain collector may hold a wanted sample (it described none: maybe)."""
        names = self._described.get(collector)
        if names is None:
            names = set()
            for family in describe_names(collector):
                names |= _any_sample_names(family)
            self._described[collector] = names
        return not names or not names.isdisjoint(wanted)

    async def prepare(self, now: float) -> None:
        """Bring the sources up to `now` (window quantiles) before `current`."""
        if isinstance(self.registry, Registry):
            await self.registry.prepare(now)

    def current(self, names: Iterable[str]) -> Current:
        """Sample name -> [(labels, value)] for every requested name that has samples now."""
        wanted = set(names)
        out: Current = {}
        registry = self.registry
        members: list[Collector] = (list(registry.members) if isinstance(registry, Registry)
                                    else [registry])
        for collector in members:
            if isinstance(collector, SourceCollector):
                source = collector.source
                families = [f for f in source.families if f.sample_names & wanted]
                if not families:
                    continue
                read = source.read()
                for family in families:
                    for rows in read(family):
                        for sample in samples(family, rows):
                            if sample.name in wanted:
                                out.setdefault(sample.name, []).append(
                                    (sample.labels, sample.value))
                continue
            if not self._wanted_by(collector, wanted):
                continue
            for metric in collector.collect():
                for s in metric.samples:
                    if s.name in wanted:
                        out.setdefault(s.name, []).append((dict(s.labels), s.value))
        return out
