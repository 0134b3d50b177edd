"""PgBouncerState: one console connection per target, the latest snapshot, health, export.

Each target's job runs SHOW POOLS, STATS, DATABASES and CONFIG on one kept connection
(reopened after a failure) under `pgbouncer.scrape_timeout`, and stores the snapshot
rendered once; `collect()` only concatenates. A failure drops the target's series, sets
`metricsd_pgbouncer_up` to 0, counts the kind and logs it once until it recovers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from metricsd.config import PgBouncerConfig, PgBouncerTargetConfig
from metricsd.export.family import Family, Reader, RowList, Rows
from metricsd.pgbouncer import console
from metricsd.pgbouncer.pools import SPECS, PgBouncerData, fill, parse
from metricsd.postgres.base import FamilyBuilder, spec

log = logging.getLogger(__name__)

HEALTH_SPECS: tuple[Family, ...] = (
    spec("metricsd_pgbouncer_up", "gauge", "1 when the latest scrape of the console succeeded"),
    spec("metricsd_pgbouncer_scrape_duration_seconds", "gauge",
         "Wall time of the latest scrape"),
    spec("metricsd_pgbouncer_scrape_errors", "counter", "Failed scrapes by kind", "kind"),
)
KINDS = ("connection_error", "timeout", "query_error")
HEALTH_NAMES = frozenset(s.name for s in HEALTH_SPECS)
FAMILIES: tuple[Family, ...] = (*HEALTH_SPECS, *SPECS)


@dataclass
class TargetState:
    """One console: its connection, latest snapshot and health."""

    config: PgBouncerTargetConfig
    conn: psycopg.AsyncConnection[Any] | None = None
    data: PgBouncerData | None = None
    builder: FamilyBuilder | None = None
    status: str = "pending"
    message: str = ""
    duration_s: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    logged: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def classify(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, psycopg.OperationalError | OSError):
        return "connection_error"
    return "query_error"


class PgBouncerState:
    """Every configured console; the read API (`pools`) and a family source for /metrics."""

    def __init__(self, config: PgBouncerConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.targets = {t.name: TargetState(t) for t in config.targets}

    async def close(self) -> None:
        for ts in self.targets.values():
            if ts.conn is not None:
                await ts.conn.close()
                ts.conn = None

    async def scrape(self, target: str) -> str:
        """One round on one console; never raises (except cancellation). Returns the status."""
        ts = self.targets[target]
        async with ts.lock:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.config.scrape_timeout):
                    if ts.conn is None or ts.conn.closed:
                        ts.conn = await console.connect(ts.config.dsn,
                                                        self.config.connect_timeout)
                    pools, stats, databases, settings = [
                        await console.show(ts.conn, what) for what in console.SHOW_COMMANDS]
                ts.data = parse(pools, stats, databases, settings, self.config.max_pools)
                ts.builder = FamilyBuilder(SPECS, target)
                fill(ts.builder, ts.data)
                ts.status, ts.message = "ok", ""
            except Exception as exc:
                ts.status, ts.message = classify(exc), f"{type(exc).__name__}: {exc}"
                ts.data = ts.builder = None  # dropped, never served stale
                if ts.conn is not None:
                    await ts.conn.close()
                    ts.conn = None
            ts.duration_s = time.perf_counter() - started
            if ts.status == "ok":
                if ts.logged:
                    log.info("pgbouncer target %s recovered", target)
                    ts.logged.clear()
            else:
                ts.errors[ts.status] += 1
                if ts.status not in ts.logged:
                    ts.logged.add(ts.status)
                    log.warning("pgbouncer target %s: %s: %s (logged once until it recovers)",
                                target, ts.status, ts.message)
            return ts.status

    # --- read API ---

    def pools(self, target: str) -> list[dict[str, Any]] | None:
        """The latest pools of a target, None when its latest scrape failed."""
        data = self.targets[target].data
        return None if data is None else [p.as_dict() for p in data.pools]

    def readiness(self, target: str) -> dict[str, Any]:
        ts = self.targets[target]
        return {"ok": ts.status == "ok", "required": False,
                "error": ts.message or None, "status": ts.status}

    # --- family source ---

    @property
    def families(self) -> Sequence[Family]:
        return FAMILIES

    async def prepare(self, now: float) -> None:
        """Consoles are read by the scrape jobs, never at read time."""

    def _health(self, name: str) -> RowList:
        out = RowList()
        for target, ts in self.targets.items():
            labels = {"target": target}
            if name == "metricsd_pgbouncer_up" and ts.status != "pending":
                out.add(labels, 1 if ts.status == "ok" else 0)
            elif name == "metricsd_pgbouncer_scrape_duration_seconds" \
                    and ts.duration_s is not None:
                out.add(labels, ts.duration_s)
            elif name == "metricsd_pgbouncer_scrape_errors":
                # Every kind from the start, so increase() sees the first failure.
                for kind in KINDS:
                    out.add({**labels, "kind": kind}, ts.errors[kind])
        return out

    def read(self) -> Reader:
        """Health as it is now; pools as each console's latest successful scrape left them."""
        targets = list(self.targets.values())

        def rows(family: Family) -> list[Rows]:
            if family.name in HEALTH_NAMES:
                block = self._health(family.name)
                return [block] if len(block) else []
            return [ts.builder.blocks[family.name] for ts in targets
                    if ts.builder is not None and len(ts.builder.blocks[family.name])]

        return rows
