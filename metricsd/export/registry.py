"""The registry /metrics renders: family sources through the fast writer, plain collectors too.

`Registry` is a prometheus_client CollectorRegistry (so `get_sample_value`, and
`generate_latest` for comparison, keep working) that also remembers its collectors in
registration order, which the library keeps only in private fields. A `Source` joins it
through `SourceCollector`, the one adapter to prometheus_client's `collect()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from metricsd.export.family import Source, samples
from metricsd.export.text import Writer, write_metric


class SourceCollector(Collector):
    """A family source as a prometheus_client collector; /metrics writes it with `writer`."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.writer = Writer(source)

    def describe(self) -> Iterable[Metric]:
        return [Metric(f.name, f.help, f.type) for f in self.source.families]

    def collect(self) -> Iterator[Metric]:
        read = self.source.read()
        for family in self.source.families:
            metric = Metric(family.name, family.help, family.type)
            for rows in read(family):
                for sample in samples(family, rows):
                    metric.add_sample(*sample)
            yield metric


class Registry(CollectorRegistry):
    """A CollectorRegistry whose members are listed in order, and which takes sources."""

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self.members: list[Collector] = []

    def register(self, collector: Collector) -> None:
        super().register(collector)
        self.members.append(collector)

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        self.members.remove(collector)

    def add_source(self, source: Source) -> SourceCollector:
        """Register a family source; duplicate family names fail here, at start-up."""
        collector = SourceCollector(source)
        self.register(collector)
        return collector

    def sources(self) -> Sequence[Source]:
        return [c.source for c in self.members if isinstance(c, SourceCollector)]

    async def prepare(self, now: float) -> None:
        """Let every source do its slow work (off the loop where it can) before a read."""
        for source in self.sources():
            await source.prepare(now)


async def render(registry: Registry, openmetrics: bool) -> list[bytes]:
    """Every member as exposition text pieces (UTF-8), in registration order."""
    out: list[bytes] = []
    for collector in list(registry.members):
        if isinstance(collector, SourceCollector):
            await collector.writer.write(out, openmetrics)
            continue
        for metric in collector.collect():
            write_metric(out, metric, openmetrics)
    if openmetrics:
        out.append(b"# EOF\n")
    return out


def describe_names(collector: Any) -> frozenset[str]:
    """The family names a plain collector describes (empty: it may produce anything)."""
    describe = getattr(collector, "describe", None)
    if describe is None:
        return frozenset()
    return frozenset(m.name for m in describe())
