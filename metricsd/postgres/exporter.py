"""PgExporter: the family source of every metricsd_pg_* family.

It does no I/O: each snapshot's rows were built when it was stored (PgState) and the
writer formats each block once, so a scrape mostly concatenates. Families are merged
across targets (one block per target), because a family may appear only once.
"""

from __future__ import annotations

from collections.abc import Sequence

from metricsd.export.family import Family, Reader, RowList, Rows
from metricsd.postgres.base import spec
from metricsd.postgres.health import ViewSet
from metricsd.postgres.state import ERROR_KINDS, PgState
from metricsd.postgres.views import load_all

HEALTH_SPECS: tuple[Family, ...] = (
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
    # Only for targets with `databases:` (the per-database views' series carry `datname`).
    spec("metricsd_pg_databases_monitored", "gauge",
         "Databases whose tables and indexes a multi-database target reads"),
    spec("metricsd_pg_databases_over_limit", "gauge",
         "Databases matched by `databases:` but not read: beyond max_databases"),
)


class PgExporter:
    """Every metricsd_pg_* family as a source: health rows, and each view's stored rows."""

    def __init__(self, state: PgState) -> None:
        self.state = state
        # family name -> the view (collector) that exports it; None for the health families
        self.owner: dict[str, str | None] = {s.name: None for s in HEALTH_SPECS}
        families = list(HEALTH_SPECS)
        for name, cls in load_all().items():
            families += cls.specs
            self.owner.update({s.name: name for s in cls.specs})
        self._families = families

    @property
    def families(self) -> Sequence[Family]:
        return self._families

    def _health(self) -> dict[str, RowList]:
        out = {s.name: RowList() for s in HEALTH_SPECS}
        for name, ts in self.state.targets.items():
            target = {"target": name}
            out["metricsd_pg_up"].add(target, 1 if ts.up else 0)
            if ts.last_up is not None:
                out["metricsd_pg_last_success_timestamp_seconds"].add(target, ts.last_up)
            if ts.pg.connect_seconds is not None:
                out["metricsd_pg_connect_seconds"].add(target, ts.pg.connect_seconds)
            if ts.pg.info is not None:
                out["metricsd_pg_server_version"].add(target, ts.pg.info.version_num)
            _collector_health(out, {"target": name}, ts)
            if ts.multi:
                out["metricsd_pg_databases_monitored"].add(target, len(ts.databases))
                out["metricsd_pg_databases_over_limit"].add(target, ts.over_limit)
                for database, db in ts.databases.items():
                    _collector_health(out, {"target": name, "datname": database}, db)
        return out

    async def prepare(self, now: float) -> None:
        """Snapshots are taken by the scrape jobs, never at read time."""

    def read(self) -> Reader:
        """Health as it is now; views as their latest successful snapshots left them."""
        health: dict[str, RowList] = {}
        targets = list(self.state.targets.values())

        def rows(family: Family) -> list[Rows]:
            owner = self.owner[family.name]
            if owner is None:
                if not health:
                    health.update(self._health())
                block = health[family.name]
                return [block] if len(block) else []
            out: list[Rows] = []
            for ts in targets:
                views: list[ViewSet] = [ts, *ts.databases.values()]
                for view in views:
                    rendered = view.rendered.get(owner)
                    if rendered is not None:
                        block = rendered.builder.blocks[family.name]
                        if len(block):
                            out.append(block)
            return out

        return rows


def _collector_health(out: dict[str, RowList], where: dict[str, str], views: ViewSet) -> None:
    """Success, duration, status and error counts of each collector of a target or database."""
    for collector, health in views.health.items():
        labels = {**where, "collector": collector}
        out["metricsd_pg_collector_success"].add(labels, 1 if health.status == "ok" else 0)
        if health.duration_s is not None:
            out["metricsd_pg_collector_duration_seconds"].add(labels, health.duration_s)
        if health.status != "pending":
            out["metricsd_pg_collector_status"].add({**labels, "status": health.status}, 1)
        for kind in ERROR_KINDS:  # every kind from the start, so increase() works
            out["metricsd_pg_collector_errors"].add({**labels, "kind": kind},
                                                   health.errors[kind])
