"""Operation timings (`ws.delivery`, `ai.generate`, `export.csv`) with per-operation objectives.

An operation is whatever an app measures that is not an HTTP route: a WebSocket message's
delivery, an AI generation job, an export. Exported like API timings (exact window
quantiles, a cumulative histogram, counters by outcome) plus the configured objective of
each operation, so one alert rule covers them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metricsd.config import OPERATION_NAME, IngestConfig
from metricsd.errors import BeaconError
from metricsd.export.beacons import (
    View,
    histogram,
    tag_counter,
    window_help,
    window_summary,
    window_tag_gauge,
)
from metricsd.export.family import Family, Reader, RowList, Rows, Source
from metricsd.ingest import columnar
from metricsd.ingest.base import (
    BatchResult,
    BeaconType,
    Context,
    Sample,
    as_object,
    number,
    register,
    timestamp,
)
from metricsd.ingest.selfmetrics import SelfMetrics
from metricsd.store.series import FamilySpec, Store

OUTCOMES: tuple[str, ...] = ("ok", "error", "timeout", "cancelled")
_OUTCOME_INDEX = {name: i for i, name in enumerate(OUTCOMES)}
# Default bounds, seconds: 1 ms to 1 min, roughly x2 per step with the usual objective lines.
OPERATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0,
    10.0, 15.0, 30.0, 60.0,
)  # fmt: skip

OPERATION_HISTOGRAM = "metricsd_operation_duration_seconds"
OPERATION_SUMMARY = "metricsd_operation_window_seconds"
OPERATIONS_TOTAL = "metricsd_operations"  # counter; samples end in _total
OPERATION_WINDOW = "metricsd_operation_window_operations"
OPERATION_OBJECTIVE = "metricsd_operation_objective_seconds"


def operation_bounds(config: IngestConfig) -> tuple[float, ...]:
    """The defaults plus every configured operation's bounds and objective (seconds).

    One store family has one set of bounds, so per-operation bounds are added to the
    shared set: every operation gets an exact bucket at its own objective.
    """
    bounds = set(OPERATION_BUCKETS)
    for op in config.operations.values():
        bounds.update(ms / 1000.0 for ms in op.buckets_ms)
        if op.objective_ms is not None:
            bounds.add(op.objective_ms / 1000.0)
    return tuple(sorted(bounds))


class ObjectiveSource:
    """`metricsd_operation_objective_seconds{operation,quantile}` from config (static)."""

    def __init__(self, config: IngestConfig) -> None:
        self.family = Family(OPERATION_OBJECTIVE, "gauge",
                             "Configured objective of an operation's window quantile "
                             "(ingest.operations.<name>.objective_ms)", ("operation", "quantile"))
        self.rows = RowList()
        self.update(config)

    def update(self, config: IngestConfig) -> None:
        """The objectives of `config` (start-up and reload)."""
        self.rows = RowList()
        for name, op in sorted(config.operations.items()):
            if op.objective_ms is not None:
                self.rows.add({"operation": name, "quantile": repr(op.quantile)},
                              op.objective_ms / 1000.0)

    @property
    def families(self) -> Sequence[Family]:
        return [self.family]

    async def prepare(self, now: float) -> None:
        return None

    def read(self) -> Reader:
        rows: list[Rows] = [self.rows] if len(self.rows) else []
        return lambda family: rows


@register
class OperationsBeacon(BeaconType):
    """`{"service","operation","outcome","duration_ms","timestamp"?}` per item."""

    name = "operations"
    needs_token = True  # same tokens as timings: server-side code sends these
    cors = True  # and browsers (reportOperation) when ingest.tokens is empty
    series = (FamilySpec("operation", ("service", "operation"), OPERATION_BUCKETS, OUTCOMES,
                         budget="operations"),)

    @classmethod
    def store_families(cls, config: IngestConfig) -> tuple[FamilySpec, ...]:
        (spec,) = cls.series
        return (FamilySpec(spec.name, spec.labels, operation_bounds(config), spec.tags,
                           budget=spec.budget),)

    @classmethod
    def exports(cls, store: Store) -> list[View]:
        spec = store.families["operation"].spec
        return [
            histogram(OPERATION_HISTOGRAM, "Operation duration, cumulative", spec),
            window_summary(OPERATION_SUMMARY, f"Operation duration quantiles {window_help(store)}",
                           spec),
            tag_counter(OPERATIONS_TOTAL, "Operations by outcome, cumulative", spec, "outcome"),
            window_tag_gauge(OPERATION_WINDOW, "Operations in the current window by outcome",
                             spec, "outcome"),
        ]

    def __init__(self, config: IngestConfig, store: Store, counters: SelfMetrics) -> None:
        super().__init__(config, store, counters)
        self.objectives = ObjectiveSource(config)

    def sources(self) -> list[Source]:
        return [self.objectives]

    def reloaded(self, previous: BeaconType) -> None:
        """The registered source stays; it takes the new objectives."""
        if isinstance(previous, OperationsBeacon):
            self.objectives = previous.objectives
            self.objectives.update(self.config)

    def count(self, items: list[Any]) -> int:
        return columnar.sample_count(items)

    def ingest(self, items: list[Any], ctx: Context) -> BatchResult:
        """Rows, and series objects as timings have them (`outcome` one or one per element)."""
        if not any(columnar.is_columnar(item) for item in items):
            return super().ingest(items, ctx)
        return columnar.ingest_series(self, items, ctx, ("service", "operation"), "outcome")

    def parse(self, item: Any, ctx: Context) -> Sample:
        item = as_object(item)
        service = self.string(item, "service")
        operation = self.string(item, "operation")
        assert service is not None and operation is not None
        if not OPERATION_NAME.fullmatch(operation):
            raise BeaconError("operation must be a dotted name like ws.delivery "
                              "(letters, digits, _ and -, separated by dots)", "bad_string")
        outcome = item.get("outcome", "ok")
        tag = _OUTCOME_INDEX.get(outcome) if type(outcome) is str else None
        if tag is None:
            raise BeaconError(f"outcome must be one of {', '.join(OUTCOMES)}", "bad_value")
        seconds = number(item, "duration_ms", 0.0, self.config.max_duration_ms) / 1000.0
        stamp = timestamp(item, ctx.now)
        return ("operation", (service, operation), seconds, stamp, tag, 0, "")
