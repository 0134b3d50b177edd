"""PgState: the latest snapshot of every collector on every target, their health, a read API.

`scrape()` is the body of each APScheduler job and never raises (except cancellation):
failures become a status, a counter and one log line per kind. Each stored snapshot is
turned into rows once, here, and formatted once by the writer, so `/metrics` concatenates.
Names and query text leave through metricsd.labels (escaped, never dropped).
Everything runs on the event loop thread, so nothing here needs a lock except the
per-collector one that keeps a direct call (tests) from overlapping a scheduled run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from metricsd.config import PostgresConfig
from metricsd.labels import clean_row
from metricsd.postgres.activity import ActivityData
from metricsd.postgres.base import (
    PRIVILEGE_HINT,
    CollectorStatusError,
    FamilyBuilder,
    PgCollector,
    Snapshot,
)
from metricsd.postgres.database import DatabaseData
from metricsd.postgres.indexes import IndexesData
from metricsd.postgres.replication import ReplicationData
from metricsd.postgres.statements import StatementsData
from metricsd.postgres.tables import TablesData
from metricsd.postgres.targets import PgTarget, TargetDown
from metricsd.postgres.transactions import oldest
from metricsd.postgres.views import load_all

log = logging.getLogger(__name__)

# metricsd_pg_up is "the server answered this round": only a failure to connect (or a lost
# connection) turns it to 0. A collector that times out, waits too long on a lock or gets
# an SQL error has its own status and leaves `up` and the other collectors alone.
STATUSES = ("ok", "connection_error", "timeout", "lock_timeout", "missing_extension",
            "insufficient_privilege", "query_error", "unsupported_version", "error")
# Kinds counted in metricsd_pg_collector_errors_total (exported from the start, at 0).
ERROR_KINDS = tuple(s for s in STATUSES if s not in ("ok", "unsupported_version"))
STATEMENT_SORTS: dict[str, Callable[[Any], float]] = {
    "total": lambda s: s.time_s,
    "mean": lambda s: s.mean_s or 0.0,
    "calls": lambda s: s.calls,
    "rows": lambda s: s.rows,
    "max": lambda s: s.max_s or 0.0,
}


@dataclass
class CollectorHealth:
    """How the latest scrape of one collector on one target went."""

    status: str = "pending"
    message: str = ""
    duration_s: float | None = None
    last_run: float | None = None
    last_success: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    logged: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message,
                "duration_seconds": self.duration_s, "last_success": self.last_success}


@dataclass(frozen=True)
class Rendered:
    """A stored snapshot with its rows per family, built once when it is stored."""

    snapshot: Snapshot
    builder: FamilyBuilder


def render(collector: PgCollector, snapshot: Snapshot) -> Rendered:
    """Build a snapshot's rows once; the writer formats each block once, on first scrape."""
    return Rendered(snapshot, collector.build(snapshot))


def classify(exc: BaseException) -> tuple[str, str]:
    """(status, message) of a failed scrape."""
    if isinstance(exc, CollectorStatusError):
        return exc.status, str(exc)
    if isinstance(exc, TargetDown):
        return "connection_error", str(exc)
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return "lock_timeout", f"waited longer than lock_timeout on a lock: {exc}"
    if isinstance(exc, TimeoutError | asyncpg.QueryCanceledError):
        return "timeout", f"timed out: {exc}" if str(exc) else "timed out"
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return "insufficient_privilege", f"{exc}; {PRIVILEGE_HINT}"
    if isinstance(exc, OSError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError
                  | asyncpg.ConnectionDoesNotExistError | asyncpg.AdminShutdownError
                  | asyncpg.CannotConnectNowError | asyncpg.InternalClientError):
        return "connection_error", f"{type(exc).__name__}: {exc}"
    if isinstance(exc, asyncpg.PostgresError):
        return "query_error", f"{type(exc).__name__}: {exc}"
    return "error", f"{type(exc).__name__}: {exc}"


def answered_by_server(exc: BaseException, status: str) -> bool | None:
    """Did the server answer? False: no connection; None: cannot tell (no answer in time)."""
    if status == "connection_error":
        return False
    if isinstance(exc, CollectorStatusError | asyncpg.PostgresError):
        return True  # an error response (statement_timeout and lock_timeout included)
    return None


class TargetState:
    """One target: its connection, one collector instance per enabled view, their state."""

    def __init__(
        self, pg: PgTarget, collectors: dict[str, PgCollector]
    ) -> None:
        self.pg = pg
        self.name = pg.name
        self.collectors = collectors
        self.health = {name: CollectorHealth() for name in collectors}
        self.rendered: dict[str, Rendered | None] = dict.fromkeys(collectors)
        self.locks = {name: asyncio.Lock() for name in collectors}
        self.up = False
        self.last_up: float | None = None
        self.down_logged = False  # the outage was logged; cleared when the server answers
        self.up_since = -float("inf")  # start time of the scrape that last set `up`

    def data(self, collector: str) -> Any:
        """The payload of the collector's latest successful snapshot, or None."""
        rendered = self.rendered.get(collector)
        return rendered.snapshot.data if rendered is not None else None

    def first_problem(self) -> str:
        """The first failing collector and why, for /readyz and the page."""
        for name, health in self.health.items():
            # A view the server lacks is a skip, not a problem to show.
            if health.status not in ("ok", "pending", "unsupported_version"):
                return f"{name}: {health.message or health.status}"
        return ""


class PgState:
    """Latest PostgreSQL snapshots per target and collector, and the read API over them.

    Readers (the page, the JSON API, alerts) get plain dicts and lists, JSON-ready, built
    from the snapshots of the latest successful scrapes; nothing here does I/O.
    """

    def __init__(self, config: PostgresConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        registry = load_all()
        self.targets: dict[str, TargetState] = {}
        for target in config.targets:
            names = [n for n in registry if n in config.enabled_collectors(target)]
            collectors = {n: registry[n](target.name, config) for n in names}
            self.targets[target.name] = TargetState(PgTarget(target, config), collectors)

    # --- lifecycle and jobs ---

    async def open(self) -> None:
        """Create every pool (no connection yet); a bad DSN leaves that target down."""
        for ts in self.targets.values():
            try:
                await ts.pg.open()
            except Exception as exc:
                log.error("postgres target %s: cannot create a pool: %s", ts.name, exc)

    async def close(self) -> None:
        await asyncio.gather(*(ts.pg.close() for ts in self.targets.values()))

    def jobs(self) -> list[tuple[str, str]]:
        """(target, collector) pairs, one scheduled job each."""
        return [(t, c) for t, ts in self.targets.items() for c in ts.collectors]

    async def scrape(self, target: str, collector: str) -> str:
        """Run one collector on one target and store the outcome; returns the status."""
        ts = self.targets[target]
        async with ts.locks[collector]:
            return await self._scrape(ts, collector)

    async def scrape_all(self, target: str | None = None) -> dict[tuple[str, str], str]:
        """Every collector of one or all targets, one after the other (tests, benchmarks)."""
        out = {}
        for t, c in self.jobs():
            if target is None or t == target:
                out[(t, c)] = await self.scrape(t, c)
        return out

    async def _scrape(self, ts: TargetState, name: str) -> str:
        collector = ts.collectors[name]
        health = ts.health[name]
        now = self.clock()
        started = time.perf_counter()
        rendered: Rendered | None = None
        answered: bool | None
        try:
            async with asyncio.timeout(self.config.scrape_timeout), ts.pg.connection() as conn:
                info = ts.pg.info
                assert info is not None
                if info.version_num < collector.min_server_version:
                    raise CollectorStatusError(
                        "unsupported_version",
                        f"needs PostgreSQL {collector.min_server_version // 10000}+, "
                        f"server is {info.version_num}",
                    )
                snapshot = await collector.scrape(conn, info, now)
            rendered = render(collector, snapshot)
            status, message = "ok", ""
            if snapshot.missing_privilege:  # partial data: served, but said
                status, message = "insufficient_privilege", snapshot.missing_privilege
            answered = True
        except Exception as exc:  # never raise into the scheduler; cancellation still does
            status, message = classify(exc)
            answered = answered_by_server(exc, status)
            if answered is None:  # no answer in time: busy, or gone? Ask on a new connection.
                answered = await ts.pg.answers()
                if not answered:
                    status, message = "connection_error", ts.pg.last_error
            if status == "error":
                log.exception("postgres target %s collector %s failed", ts.name, name)
        health.duration_s = time.perf_counter() - started
        health.last_run = now
        health.status, health.message = status, message
        # A failed collector's series are dropped, never served stale.
        ts.rendered[name] = rendered
        partial = rendered is not None and status == "insufficient_privilege"
        if status == "ok" or partial:
            health.last_success = now
        if partial:
            if status not in health.logged:
                health.logged.add(status)
                log.warning("postgres target %s collector %s: incomplete: %s (logged once)",
                            ts.name, name, message)
        elif status == "ok":
            if health.logged:
                log.info("postgres target %s collector %s recovered", ts.name, name)
                health.logged.clear()
        else:
            if status != "unsupported_version":
                health.errors[status] += 1
            if status == "connection_error":
                # An outage is one event for the whole target, not one per collector.
                if not ts.down_logged and now >= ts.up_since:
                    ts.down_logged = True
                    log.warning("postgres target %s is down: %s (logged once until it answers"
                                " again)", ts.name, message)
            elif status not in health.logged:
                health.logged.add(status)
                level = logging.INFO if status == "unsupported_version" else logging.WARNING
                log.log(level, "postgres target %s collector %s: %s: %s (logged once until it"
                        " recovers)", ts.name, name, status, message)
        # The latest-started scrape decides: one that began before a failure was seen (and
        # answered just before the server went away) must not flip `up` back for a moment.
        if answered is not None and now >= ts.up_since:
            ts.up_since = now
            if answered and ts.down_logged:
                ts.down_logged = False
                log.info("postgres target %s answers again", ts.name)
            ts.up = answered
        if ts.up and answered:
            ts.last_up = now
        return status

    # --- read API (see docs/postgres.md) ---

    def target_names(self) -> list[str]:
        """Configured targets, in config order."""
        return list(self.targets)

    def up(self, target: str) -> bool:
        """What metricsd_pg_up says for the target."""
        return self.targets[target].up

    def latest(self, target: str, collector: str) -> Snapshot | None:
        """The snapshot of the collector's latest scrape, None if it failed or never ran."""
        rendered = self.targets[target].rendered.get(collector)
        return rendered.snapshot if rendered is not None else None

    def health(self, target: str) -> dict[str, dict[str, Any]]:
        """Per collector: status, message, duration and last success."""
        return {name: h.as_dict() for name, h in self.targets[target].health.items()}

    def _selected(self, target: str | None) -> list[TargetState]:
        if target is None:
            return list(self.targets.values())
        return [self.targets[target]] if target in self.targets else []

    def statements(
        self,
        target: str | None = None,
        sort: str = "total",
        limit: int = 50,
        slow_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Statements active in the latest interval, with query text and the slow flag."""
        key = STATEMENT_SORTS[sort]
        rows = []
        for ts in self._selected(target):
            data: StatementsData | None = ts.data("statements")
            if data is None:
                continue
            for s in data.statements:
                if s.calls and (s.slow or not slow_only):
                    rows.append((key(s), ts.name, s))
        rows.sort(key=lambda r: (-r[0], r[1], r[2].queryid))
        return [clean_row({"target": t, **s.as_dict()}) for _, t, s in rows[:limit]]

    def statements_meta(self, target: str) -> dict[str, Any] | None:
        """Interval length, tracked entries, evictions and resets of the latest scrape."""
        data: StatementsData | None = self.targets[target].data("statements")
        if data is None:
            return None
        return {
            "interval_seconds": data.interval_s, "tracked": data.tracked,
            "max_entries": data.max_entries, "dealloc_total": data.dealloc_total,
            "dealloc_in_interval": data.dealloc_in_interval,
            "resets_total": data.resets_total, "reset_in_interval": data.reset_in_interval,
            "hidden": data.hidden, "extension_version": data.extension_version,
            "evicted_in_interval": data.evicted_in_interval,
            "evicted_total": data.evicted_total, "own": data.own,
            "track_io_timing": data.track_io_timing,
            "other": data.other.as_dict() if data.other else None,
        }

    def indexes(
        self,
        target: str | None = None,
        unused: bool = False,
        invalid: bool = False,
        bloated: bool = False,
    ) -> list[dict[str, Any]]:
        """Indexes; with filters, those matching any of them (unused, invalid, bloated)."""
        out = []
        filtered = unused or invalid or bloated
        for ts in self._selected(target):
            data: IndexesData | None = ts.data("indexes")
            if data is None:
                continue
            for i in data.indexes:
                if filtered and not ((unused and i.unused) or (invalid and not i.valid)
                                     or (bloated and i.bloated)):
                    continue
                out.append(clean_row({"target": ts.name, **i.as_dict(),
                                      "stats_age_seconds": data.stats_age_s}))
        return out

    def missing_indexes(self, target: str | None = None) -> list[dict[str, Any]]:
        """Large tables read mostly by sequential scans, most rows read first."""
        out = []
        for ts in self._selected(target):
            data: TablesData | None = ts.data("tables")
            if data is not None:
                out += [clean_row({"target": ts.name, **t.as_dict()}) for t in data.tables
                        if t.missing_index]
        out.sort(key=lambda t: -t["seq_tuples_read"])
        return out

    def connections(self, target: str) -> dict[str, Any] | None:
        """Client connections vs usable max_connections, idle in transaction, lock waits."""
        data: ActivityData | None = self.targets[target].data("activity")
        return data.as_dict() if data is not None else None

    def cache_hit_ratio(self, target: str) -> float | None:
        """Buffer cache hit ratio over the latest interval, all databases together."""
        data: DatabaseData | None = self.targets[target].data("database")
        return data.cache_hit_ratio() if data is not None else None

    def replication(self, target: str) -> dict[str, Any] | None:
        """Standbys and their lag on a primary; replay delay and lag on a standby."""
        data: ReplicationData | None = self.targets[target].data("replication")
        if data is None:
            return None
        return {"is_standby": data.is_standby,
                "standbys": [s.as_dict() for s in data.standbys],
                "replay_delay_seconds": data.replay_delay_s,
                "replay_lag_bytes": data.replay_lag_bytes,
                "last_replay_age_seconds": data.last_replay_age_s,
                "wal_receiver_status": data.receiver_status,
                "wal_receiver_last_message_age_seconds": data.receiver_message_age_s,
                "slots": [s.as_dict() for s in data.slots],
                "missing_standbys": list(data.missing)}

    def readiness(self, target: str) -> dict[str, Any]:
        """The /readyz component of one target; never required (a DB outage only degrades)."""
        ts = self.targets[target]
        return {"ok": ts.up, "required": False, "error": ts.first_problem() or None,
                "collectors": {n: h.status for n, h in ts.health.items()}}

    def overview(self, statements: int = 10, indexes: int = 20) -> dict[str, Any] | None:
        """What the overview page shows; None when no target is configured."""
        if not self.targets:
            return None
        targets = [{"name": ts.name, "up": ts.up, "error": ts.first_problem() or None}
                   for ts in self.targets.values()]
        slowest = self.statements(sort="mean", limit=statements)
        total_calls = total_time = 0.0
        connections = max_connections = 0
        have_conn = False
        ratios = []
        for ts in self.targets.values():
            data: StatementsData | None = ts.data("statements")
            if data is not None:
                for s in (*data.statements, *((data.other,) if data.other else ())):
                    if s.exported or s.queryid == "other":
                        total_calls += s.calls
                        total_time += s.time_s
            conn = self.connections(ts.name)
            if conn is not None:
                have_conn = True
                connections += conn["connections"]
                max_connections += conn["max_connections"]
            ratio = self.cache_hit_ratio(ts.name)
            if ratio is not None:
                ratios.append(ratio)
        every = self.indexes(unused=True, invalid=True)
        return {
            "targets": targets,
            "slow_query_ms": self.config.slow_query_ms,
            "statements": slowest,
            "unused_indexes": [i for i in every if i["unused"]][:indexes],
            "invalid_indexes": [i for i in every if not i["valid"]][:indexes],
            "missing_indexes": self.missing_indexes()[:indexes],
            "mean_statement_seconds": total_time / total_calls if total_calls else None,
            "cache_hit_ratio": min(ratios) if ratios else None,
            "connections": connections if have_conn else None,
            "max_connections": max_connections if have_conn else None,
            # "Long" on the page: older than a slow statement; the JSON API lists all.
            "long_transactions": oldest(self.targets.values(), self.config.long_transactions,
                                        self.config.slow_query_ms / 1000.0),
        }
