"""PgExporter: the custom prometheus_client collector of every metricsd_pg_* family.

It does no I/O and builds nothing per sample: each snapshot was rendered when it was
stored (PgState), so `write()` concatenates text and `collect()` concatenates samples.
Families are merged across targets, because a family may appear only once in a scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from metricsd.export.text import header, label_string, number
from metricsd.postgres.base import FamilySpec, spec
from metricsd.postgres.registry import load_all
from metricsd.postgres.state import ERROR_KINDS, PgState

HEALTH_SPECS: tuple[FamilySpec, ...] = (
    spec("metricsd_pg_up", "gauge",
         "1 when the server answered the latest scrape (0: cannot connect)"),
    spec("metricsd_pg_last_success_timestamp_seconds", "gauge",
         "Unix time metricsd_pg_up was last 1"),
    spec("metricsd_pg_connect_seconds", "gauge", "Time the latest new connection took"),
    spec("metricsd_pg_server_version", "gauge", "server_version_num"),
    spec("metricsd_pg_collector_success", "gauge",
         "1 when the collector's latest scrape succeeded", "collector"),
    spec("metricsd_pg_collector_duration_seconds", "gauge",
         "Wall time of the collector's latest scrape", "collector"),
    spec("metricsd_pg_collector_status", "gauge", "1 for the collector's current status",
         "collector", "status"),
    spec("metricsd_pg_collector_errors", "counter", "Failed scrapes by kind",
         "collector", "kind"),
)


class PgExporter:
    """Every metricsd_pg_* family, from PgState's rendered snapshots and health."""

    def __init__(self, state: PgState) -> None:
        self.state = state
        collectors = load_all()
        self.specs: list[tuple[str | None, FamilySpec]] = [(None, s) for s in HEALTH_SPECS]
        for name, cls in collectors.items():
            self.specs += [(name, s) for s in cls.specs]

    def describe(self) -> Iterable[Metric]:
        return [Metric(s.name, s.doc, s.kind) for _, s in self.specs]

    def _health(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        out: dict[str, list[tuple[dict[str, str], float]]] = {s.name: [] for s in HEALTH_SPECS}
        for name, ts in self.state.targets.items():
            target = {"target": name}
            out["metricsd_pg_up"].append((target, 1.0 if ts.up else 0.0))
            if ts.last_up is not None:
                out["metricsd_pg_last_success_timestamp_seconds"].append((target, ts.last_up))
            if ts.pg.connect_seconds is not None:
                out["metricsd_pg_connect_seconds"].append((target, ts.pg.connect_seconds))
            if ts.pg.info is not None:
                out["metricsd_pg_server_version"].append((target, float(ts.pg.info.version_num)))
            for collector, health in ts.health.items():
                labels = {"target": name, "collector": collector}
                out["metricsd_pg_collector_success"].append(
                    (labels, 1.0 if health.status == "ok" else 0.0))
                if health.duration_s is not None:
                    out["metricsd_pg_collector_duration_seconds"].append(
                        (labels, health.duration_s))
                if health.status != "pending":
                    out["metricsd_pg_collector_status"].append(
                        ({**labels, "status": health.status}, 1.0))
                for kind in ERROR_KINDS:  # every kind from the start, so increase() works
                    out["metricsd_pg_collector_errors"].append(
                        ({**labels, "kind": kind}, float(health.errors[kind])))
        return out

    def collect(self) -> Iterator[Metric]:
        return self.collect_only(None)

    def collect_only(self, wanted: set[str] | None) -> Iterator[Metric]:
        """Families with a sample name in `wanted` (all when None), for in-process readers."""
        health = self._health()
        for collector, s in self.specs:
            if wanted is not None and not wanted & {s.name, s.sample_name}:
                continue
            metric = Metric(s.name, s.doc, s.kind)
            if collector is None:
                metric.samples = [Sample(s.sample_name, labels, float(value))
                                  for labels, value in health[s.name]]
            else:
                for ts in self.state.targets.values():
                    rendered = ts.rendered.get(collector)
                    if rendered is not None and s.name in rendered.lines:
                        metric.samples.extend(rendered.samples(s.name))
            yield metric

    def write(self, out: list[str], openmetrics: bool) -> None:
        """Exposition text of every family with samples (the same samples as collect())."""
        health = self._health()
        targets = list(self.state.targets.values())
        for collector, s in self.specs:
            if collector is None:
                chunks = [f"{s.sample_name}{{{label_string(labels)}}} {number(float(value))}\n"
                          for labels, value in health[s.name]]
            else:
                chunks = []
                for ts in targets:
                    rendered = ts.rendered.get(collector)
                    if rendered is not None:
                        text = rendered.lines.get(s.name)
                        if text:
                            chunks.append(text)
            if chunks:
                header(out, s.name, s.kind, s.doc, openmetrics)
                out.extend(chunks)
