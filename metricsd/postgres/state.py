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
from collections.abc import Callable
from typing import Any

import asyncpg

from metricsd.config import PostgresConfig, TargetConfig
from metricsd.labels import clean_row
from metricsd.postgres.activity import ActivityData
from metricsd.postgres.base import (
    PRIVILEGE_HINT,
    CollectorStatusError,
    PgCollector,
    Snapshot,
)
from metricsd.postgres.database import DatabaseData
from metricsd.postgres.databases import (
    DISCOVERY_SQL,
    DatabaseState,
    Selection,
    configured,
    select,
)
from metricsd.postgres.health import ViewSet, render
from metricsd.postgres.replication import ReplicationData
from metricsd.postgres.statements import StatementsData
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


class TargetState(ViewSet):
    """One target: its connection, one collector instance per enabled view, their state.

    With `databases:` the per-database views (tables, indexes) are not among `collectors`
    but run once per database in `databases`, each on a pool of its own.
    """

    def __init__(
        self, pg: PgTarget, collectors: dict[str, PgCollector],
        database_views: tuple[type[PgCollector], ...] = (),
    ) -> None:
        super().__init__(collectors)
        self.pg = pg
        self.name = pg.name
        self.config: TargetConfig = pg.target
        self.database_views = database_views
        self.databases: dict[str, DatabaseState] = {}
        self.over_limit = 0  # databases matched beyond max_databases, not read
        self.discovered_at: float | None = None
        self.discovery_lock = asyncio.Lock()
        self.discovery_logged: set[str] = set()

    @property
    def multi(self) -> bool:
        """Does this target read its per-database views from several databases?"""
        return self.config.databases is not None

    @property
    def auto(self) -> bool:
        return self.config.databases == "auto"

    def job_collectors(self) -> list[str]:
        """Collector names with a scrape job: the server-wide ones, then per-database ones."""
        return [*self.collectors, *(cls.name for cls in self.database_views)]

    def views(self, collector: str) -> list[tuple[str | None, Any]]:
        """(database or None, payload) of the collector's latest successful snapshots."""
        if collector in self.collectors:
            return [(None, self.data(collector))]
        return [(name, db.data(collector)) for name, db in self.databases.items()]

    def first_problem(self) -> str:
        """The first failing collector (or database's collector) and why."""
        problems = self.problems()
        for name, db in self.databases.items():
            problems += [f"{name}/{problem}" for problem in db.problems()]
        return problems[0] if problems else ""

    async def close(self) -> None:
        await asyncio.gather(self.pg.close(), *(db.pg.close() for db in self.databases.values()))


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
            multi = target.databases is not None
            collectors = {n: registry[n](target.name, config) for n in names
                          if not (multi and registry[n].per_database)}
            views = tuple(registry[n] for n in names if multi and registry[n].per_database)
            ts = TargetState(PgTarget(target, config), collectors, views)
            if isinstance(target.databases, list):  # opened with the target's own pool
                ts.databases, _ = self._select(ts, configured(target))
            self.targets[target.name] = ts

    # --- lifecycle and jobs ---

    async def open(self) -> None:
        """Create every pool (no connection yet); a bad DSN leaves that target down."""
        for ts in self.targets.values():
            for pg in (ts.pg, *(db.pg for db in ts.databases.values())):
                try:
                    await pg.open()
                except Exception as exc:
                    log.error("postgres target %s: cannot create a pool: %s", pg.where, exc)

    async def close(self) -> None:
        await asyncio.gather(*(ts.close() for ts in self.targets.values()))

    def jobs(self) -> list[tuple[str, str]]:
        """(target, collector) pairs, one scheduled job each."""
        return [(t, c) for t, ts in self.targets.items() for c in ts.job_collectors()]

    def discovery_jobs(self) -> list[str]:
        """Targets with `databases: auto`, one discovery job each."""
        return [t for t, ts in self.targets.items() if ts.auto]

    async def scrape(self, target: str, collector: str) -> str:
        """Run one collector on one target and store the outcome; returns the status.

        A per-database view of a multi-database target runs on each database in turn and
        returns the first status that is not ok (each database keeps its own).
        """
        ts = self.targets[target]
        if collector not in ts.collectors:
            return await self._scrape_databases(ts, collector)
        async with ts.locks[collector]:
            # metricsd_pg_up follows the target's own connection only (ts.up).
            status, _ = await self._run(ts, ts.pg, collector)
        return status

    async def scrape_all(self, target: str | None = None) -> dict[tuple[str, str], str]:
        """Every collector of one or all targets, one after the other (tests, benchmarks)."""
        out = {}
        for t, c in self.jobs():
            if target is None or t == target:
                out[(t, c)] = await self.scrape(t, c)
        return out

    async def _scrape_databases(self, ts: TargetState, name: str) -> str:
        if ts.auto and ts.discovered_at is None:
            await self.discover(ts.name)  # the first round must not wait for the job
        worst = "ok"
        for database, db in list(ts.databases.items()):
            if ts.databases.get(database) is not db:
                continue  # left while an earlier database was scraped
            async with db.locks[name]:
                status, _ = await self._run(db, db.pg, name)
            if status == "connection_error" and ts.auto and db.gone():
                # Dropped since the last discovery: leave now rather than fail until then.
                await self._drop(ts, database, "it no longer exists")
                continue
            if status != "ok" and worst == "ok":
                worst = status
        return worst

    async def discover(self, target: str) -> bool:
        """`databases: auto`: list pg_database again; databases come and go. Never raises."""
        ts = self.targets[target]
        if not ts.auto:
            return False
        async with ts.discovery_lock:
            now = self.clock()
            try:
                async with asyncio.timeout(self.config.scrape_timeout), \
                        ts.pg.connection() as conn:
                    rows = await conn.fetch(DISCOVERY_SQL)
            except Exception as exc:  # the previous set stays; the next run tries again
                status, message = classify(exc)
                if status == "connection_error":
                    self._answered(ts, ts.pg, False, now, message)
                if status not in ts.discovery_logged:
                    ts.discovery_logged.add(status)
                    log.warning("postgres target %s: database discovery failed: %s: %s"
                                " (the databases found before stay; logged once)",
                                ts.name, status, message)
                return False
            ts.discovery_logged.clear()
            current = next((r["datname"] for r in rows if r["current"]), None)
            ts.discovered_at = now
            self._answered(ts, ts.pg, True, now, "")  # on the target's own connection
            await self._apply(ts, select(ts.config, (r["datname"] for r in rows), current))
            return True

    def _select(self, ts: TargetState, selection: Selection
                ) -> tuple[dict[str, DatabaseState], list[DatabaseState]]:
        """The selected databases in order (kept ones reused) and the new ones among them."""
        added = []
        kept: dict[str, DatabaseState] = {}
        for name in selection.databases:
            db = ts.databases.get(name)
            if db is None:
                db = DatabaseState(ts.config, self.config, name, ts.database_views)
                added.append(db)
            kept[name] = db
        if selection.over_limit and not ts.over_limit:
            log.warning("postgres target %s: %d database(s) over max_databases (%d) are not"
                        " read (metricsd_pg_databases_over_limit)", ts.name,
                        selection.over_limit, ts.config.max_databases)
        ts.over_limit = selection.over_limit
        return kept, added

    async def _apply(self, ts: TargetState, selection: Selection) -> None:
        for name in [n for n in ts.databases if n not in selection.databases]:
            await self._drop(ts, name, "gone from pg_database, not accepting connections"
                             " or filtered out")
        kept, added = self._select(ts, selection)
        for db in added:  # opened before a scrape job can see them
            try:
                await db.pg.open()
            except Exception as exc:
                log.error("postgres target %s: cannot create a pool: %s", db.pg.where, exc)
            log.info("postgres target %s: reading database %s", ts.name, db.database)
        # A kept database dropped by a scrape meanwhile (it no longer exists) stays gone.
        ts.databases = {n: db for n, db in kept.items() if db in added or n in ts.databases}

    async def _drop(self, ts: TargetState, database: str, why: str) -> None:
        """A database leaves: its series go with it, its pool is closed; logged once."""
        db = ts.databases.pop(database, None)
        if db is None:
            return
        log.info("postgres target %s: database %s left (%s); its series are dropped",
                 ts.name, database, why)
        await db.pg.close()

    async def _run(self, views: ViewSet, pg: PgTarget, name: str
                   ) -> tuple[str, bool | None]:
        """One collector on one connection target: (status, did the server answer)."""
        collector = views.collectors[name]
        health = views.health[name]
        now = self.clock()
        started = time.perf_counter()
        rendered = None
        answered: bool | None
        try:
            async with asyncio.timeout(self.config.scrape_timeout), pg.connection() as conn:
                info = pg.info
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
                answered = await pg.answers()
                if not answered:
                    status, message = "connection_error", pg.last_error
            if status == "error":
                log.exception("postgres target %s collector %s failed", pg.where, name)
        health.duration_s = time.perf_counter() - started
        health.last_run = now
        health.status, health.message = status, message
        # A failed collector's series are dropped, never served stale.
        views.rendered[name] = rendered
        partial = rendered is not None and status == "insufficient_privilege"
        if status == "ok" or partial:
            health.last_success = now
        if partial:
            if status not in health.logged:
                health.logged.add(status)
                log.warning("postgres target %s collector %s: incomplete: %s (logged once)",
                            pg.where, name, message)
        elif status == "ok":
            if health.logged:
                log.info("postgres target %s collector %s recovered", pg.where, name)
                health.logged.clear()
        else:
            if status != "unsupported_version":
                health.errors[status] += 1
            if status == "connection_error":
                pass  # an outage is one event for the whole target (or database): below
            elif status not in health.logged:
                health.logged.add(status)
                level = logging.INFO if status == "unsupported_version" else logging.WARNING
                log.log(level, "postgres target %s collector %s: %s: %s (logged once until it"
                        " recovers)", pg.where, name, status, message)
        if answered is not None:
            self._answered(views, pg, answered, now, message)
        return status, answered

    @staticmethod
    def _answered(views: ViewSet, pg: PgTarget, answered: bool, now: float,
                  message: str) -> None:
        """Record whether the server answered a scrape that started at `now`.

        The latest-started scrape decides: one that began before a failure was seen (and
        answered just before the server went away) must not flip `up` back for a moment.
        An outage is logged once per target (or database), not once per collector.
        """
        if not answered and not views.down_logged and now >= views.up_since:
            views.down_logged = True
            log.warning("postgres target %s is down: %s (logged once until it answers"
                        " again)", pg.where, message)
        if now >= views.up_since:
            views.up_since = now
            if answered and views.down_logged:
                views.down_logged = False
                log.info("postgres target %s answers again", pg.where)
            views.up = answered
        if views.up and answered:
            views.last_up = now

    # --- read API (see docs/postgres.md) ---

    def target_names(self) -> list[str]:
        """Configured targets, in config order."""
        return list(self.targets)

    def up(self, target: str) -> bool:
        """What metricsd_pg_up says for the target."""
        return self.targets[target].up

    def latest(self, target: str, collector: str, database: str | None = None
               ) -> Snapshot | None:
        """The snapshot of the collector's latest scrape, None if it failed or never ran."""
        ts = self.targets[target]
        views: ViewSet | None = ts if database is None else ts.databases.get(database)
        rendered = views.rendered.get(collector) if views is not None else None
        return rendered.snapshot if rendered is not None else None

    def health(self, target: str) -> dict[str, dict[str, Any]]:
        """Per collector: status, message, duration and last success."""
        return {name: h.as_dict() for name, h in self.targets[target].health.items()}

    def database_health(self, target: str) -> dict[str, dict[str, dict[str, Any]]]:
        """Per database of a multi-database target, per collector: as `health`."""
        return {name: {c: h.as_dict() for c, h in db.health.items()}
                for name, db in self.targets[target].databases.items()}

    def databases(self, target: str) -> dict[str, Any] | None:
        """The databases a multi-database target reads, and how many it leaves out."""
        ts = self.targets[target]
        if not ts.multi:
            return None
        return {"mode": "auto" if ts.auto else "list", "databases": list(ts.databases),
                "over_limit": ts.over_limit, "max_databases": ts.config.max_databases,
                "discovered_at": ts.discovered_at}

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
            for database, data in ts.views("indexes"):
                if data is None:
                    continue
                where = _where(ts.name, database)
                for i in data.indexes:
                    if filtered and not ((unused and i.unused) or (invalid and not i.valid)
                                         or (bloated and i.bloated)):
                        continue
                    out.append(clean_row({**where, **i.as_dict(),
                                          "stats_age_seconds": data.stats_age_s}))
        return out

    def missing_indexes(self, target: str | None = None) -> list[dict[str, Any]]:
        """Large tables read mostly by sequential scans, most rows read first."""
        out = []
        for ts in self._selected(target):
            for database, data in ts.views("tables"):
                if data is not None:
                    where = _where(ts.name, database)
                    out += [clean_row({**where, **t.as_dict()}) for t in data.tables
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
        out: dict[str, Any] = {"ok": ts.up, "required": False,
                               "error": ts.first_problem() or None,
                               "collectors": {n: h.status for n, h in ts.health.items()}}
        if ts.multi:
            out["databases"] = {name: {n: h.status for n, h in db.health.items()}
                                for name, db in ts.databases.items()}
            out["databases_over_limit"] = ts.over_limit
        return out

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


def _where(target: str, database: str | None) -> dict[str, str]:
    """The target, and the database for a view of one database of a multi-database target."""
    return {"target": target} if database is None else {"target": target, "datname": database}
