"""Expose a sender's counts in the app's own Prometheus registry (drops must be visible)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from metricsd_client.base import TimingSender


class SenderCollector:
    """`registry.register(SenderCollector(sender))`: metricsd_client_* families."""

    def __init__(self, sender: TimingSender) -> None:
        self.sender = sender

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        stats = self.sender.stats()
        service = self.sender.service
        timings = CounterMetricFamily(
            "metricsd_client_timings", "Beacon items (timings, operations, cache reports) by fate",
            labels=["service", "outcome"],
        )
        for outcome, value in (("sent", stats.sent), ("dropped", stats.dropped),
                               ("failed", stats.failed), ("rejected", stats.rejected)):
            timings.add_metric([service, outcome], value)
        yield timings
        retries = CounterMetricFamily("metricsd_client_retries", "Batch attempts that failed",
                                      labels=["service"])
        retries.add_metric([service], stats.retries)
        yield retries
        queued = GaugeMetricFamily("metricsd_client_queued_timings",
                                   "Beacon items waiting to be sent",
                                   labels=["service"])
        queued.add_metric([service], stats.queued)
        yield queued
