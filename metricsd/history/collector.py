"""The history's own metrics: file size, rows written, samples queued and dropped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from metricsd.history.service import HistoryService


class HistoryCollector:
    """A plain prometheus_client collector over the service's counters (cheap, no I/O)."""

    def __init__(self, service: HistoryService) -> None:
        self.service = service

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        s = self.service
        yield GaugeMetricFamily("metricsd_history_bytes",
                                "Size of the history file and its WAL",
                                value=float(s.db.size_bytes()))
        yield CounterMetricFamily("metricsd_history_rows_written",
                                  "Hourly beacon rows merged into the history file",
                                  value=float(s.rows_written))
        yield CounterMetricFamily("metricsd_history_rows_removed",
                                  "History rows removed by retention and the size bound",
                                  value=float(s.rows_removed))
        yield CounterMetricFamily("metricsd_history_samples_dropped",
                                  "Beacon samples not rolled up: the queue was full",
                                  value=float(s.tap.dropped))
        yield GaugeMetricFamily("metricsd_history_samples_pending",
                                "Beacon samples queued for the next rollup",
                                value=float(s.tap.pending))
        yield CounterMetricFamily("metricsd_history_write_seconds",
                                  "Time the writer thread spent in transactions",
                                  value=float(s.db.write_seconds))
        yield CounterMetricFamily("metricsd_history_write_failures",
                                  "History transactions that failed (rolled back)",
                                  value=float(s.db.errors))
        yield GaugeMetricFamily("metricsd_history_moved_aside",
                                "1 when an unusable history file was moved aside at start",
                                value=1.0 if s.db.moved_aside else 0.0)
