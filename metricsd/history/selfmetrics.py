"""The history's own metrics: file size, rows written, samples queued and dropped."""

from __future__ import annotations

from collections.abc import Sequence

from metricsd.export.family import Family, Reader, RowList, Rows
from metricsd.history.service import HistoryService

FAMILIES: tuple[Family, ...] = (
    Family("metricsd_history_bytes", "gauge", "Size of the history file and its WAL"),
    Family("metricsd_history_rows_written", "counter",
           "Hourly beacon rows merged into the history file"),
    Family("metricsd_history_rows_removed", "counter",
           "History rows removed by retention and the size bound"),
    Family("metricsd_history_samples_dropped", "counter",
           "Beacon samples not rolled up: the queue was full"),
    Family("metricsd_history_samples_pending", "gauge",
           "Beacon samples queued for the next rollup"),
    Family("metricsd_history_write_seconds", "counter",
           "Time the writer thread spent in transactions"),
    Family("metricsd_history_write_failures", "counter",
           "History transactions that failed (rolled back)"),
    Family("metricsd_history_moved_aside", "gauge",
           "1 when an unusable history file was moved aside at start"),
)


class HistorySource:
    """The service's counters as families (cheap: a file stat, no query)."""

    def __init__(self, service: HistoryService) -> None:
        self.service = service

    @property
    def families(self) -> Sequence[Family]:
        return FAMILIES

    async def prepare(self, now: float) -> None:
        """Counters need no preparation."""

    def read(self) -> Reader:
        s = self.service
        values: dict[str, float] = {
            "metricsd_history_bytes": float(s.db.size_bytes()),
            "metricsd_history_rows_written": float(s.rows_written),
            "metricsd_history_rows_removed": float(s.rows_removed),
            "metricsd_history_samples_dropped": float(s.tap.dropped),
            "metricsd_history_samples_pending": float(s.tap.pending),
            "metricsd_history_write_seconds": float(s.db.write_seconds),
            "metricsd_history_write_failures": float(s.db.errors),
            "metricsd_history_moved_aside": 1.0 if s.db.moved_aside else 0.0,
        }

        def rows(family: Family) -> list[Rows]:
            block = RowList()
            block.add({}, values[family.name])
            return [block]

        return rows
