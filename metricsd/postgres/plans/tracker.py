"""Plans of slow statements over time: fetched within a budget, hashed, compared.

A statement is tracked from the first interval it is slow. Its generic plan is fetched
then and again every `refresh_interval` (never more than `per_round` plans per round and
`round_budget` seconds of work), and a change of shape is recorded with the per-call mean
before and after it. A change followed by a slowdown is a regression. A statement whose
plan cannot be built is remembered by SQLSTATE class and not tried again until its text
changes, so an `EXTRACT($1 FROM ..)` costs one failed EXPLAIN, not one per scrape.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from metricsd.config import PlansConfig
from metricsd.postgres.plans import advice as advice_mod
from metricsd.postgres.plans import shape
from metricsd.postgres.plans.explain import ExplainError, generic_plan, has_helper
from metricsd.postgres.plans.indexing import advise
from metricsd.postgres.statements import Statement, StatementsData
from metricsd.postgres.targets import ServerInfo

log = logging.getLogger(__name__)

StatementKey = tuple[str, str, str, str]  # datname, user, queryid, toplevel
# Interval facts kept per tracked statement, for the means around a plan change.
MAX_INTERVALS = 240
OUTCOMES = ("ok", "failed", "skipped_utility", "skipped_other_database")


def query_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


@dataclass
class PlanRecord:
    """One fetched generic plan."""

    hash: str
    plan: Any
    fetched_at: float
    cost: float | None
    confirmed_at: float = 0.0  # the latest fetch that found the same shape

    def as_dict(self, with_plan: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"hash": self.hash, "fetched_at": self.fetched_at,
                               "confirmed_at": self.confirmed_at, "total_cost": self.cost}
        if with_plan:
            out["plan"] = self.plan
            out["nodes"] = [row.as_dict() for row in shape.rows(self.plan)]
        return out


@dataclass
class PlanChange:
    """A change of plan shape and what it did to the per-call mean."""

    at: float
    old: PlanRecord
    new: PlanRecord
    mean_before_s: float | None
    mean_after_s: float | None = None
    calls_after: int = 0
    regression: bool = False

    def as_dict(self, with_plans: bool = True) -> dict[str, Any]:
        return {"at": self.at, "old": self.old.as_dict(with_plans),
                "new": self.new.as_dict(with_plans), "mean_before_seconds": self.mean_before_s,
                "mean_after_seconds": self.mean_after_s, "calls_after": self.calls_after,
                "regression": self.regression}


@dataclass
class Tracked:
    """Everything metricsd knows about the plans of one statement."""

    key: StatementKey
    query: str
    qhash: str
    first_slow: float
    last_slow: float
    current: PlanRecord | None = None
    changes: deque[PlanChange] = field(default_factory=lambda: deque(maxlen=10))
    next_fetch: float = 0.0
    failure: dict[str, Any] | None = None  # {"sqlstate_class", "message", "qhash", "at"}
    intervals: deque[tuple[float, int, float]] = field(
        default_factory=lambda: deque(maxlen=MAX_INTERVALS))  # (time, calls, total seconds)
    advice: list[dict[str, Any]] | None = None
    analyzed: dict[str, Any] | None = None  # the latest EXPLAIN ANALYZE from the runner

    def mean_since(self, start: float, end: float = float("inf")) -> tuple[float | None, int]:
        calls = sum(c for t, c, _ in self.intervals if start <= t < end)
        total = sum(s for t, _, s in self.intervals if start <= t < end)
        return (total / calls if calls else None), calls

    def as_dict(self, detail: bool = False) -> dict[str, Any]:
        datname, user, queryid, toplevel = self.key
        out: dict[str, Any] = {
            "datname": datname, "user": user, "queryid": queryid,
            "toplevel": toplevel == "true", "query": self.query,
            "first_slow": self.first_slow, "last_slow": self.last_slow,
            "plan_hash": self.current.hash if self.current else None,
            "plan_changes": len(self.changes),
            "regression": any(c.regression for c in self.changes),
            "failure": self.failure,
        }
        if detail:
            out["plan"] = self.current.as_dict() if self.current else None
            out["history"] = [c.as_dict() for c in self.changes]
            out["advice"] = self.advice
            out["analyzed"] = self.analyzed
        return out


class PlanTracker:
    """One target's tracked statements, their plans, changes and counters."""

    def __init__(
        self, target: str, config: PlansConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.target = target
        self.config = config
        self.clock = clock
        self.tracked: OrderedDict[StatementKey, Tracked] = OrderedDict()
        self.outcomes: Counter[str] = Counter({o: 0 for o in OUTCOMES})
        self.changes_total = 0
        self.regressions_total = 0
        self.plan_seconds_total = 0.0
        self.database: str | None = None
        self.hypopg: bool | None = None
        self.helper: bool | None = None  # the SECURITY DEFINER metricsd_generic_plan(text)
        self._seen_snapshot: float | None = None
        # A target with `databases:`: the other databases it reads, whose statements are
        # explained on that database's own connection; (helper, hypopg) per database.
        self.other_databases: frozenset[str] = frozenset()
        self._extras: dict[str, tuple[bool, bool]] = {}

    def reachable(self, database: str) -> bool:
        """Can a statement of `database` be explained (the DSN's or another read database)?"""
        return database == self.database or database in self.other_databases

    # ---- fed by each statements snapshot ----------------------------------------------

    def observe(self, data: StatementsData, taken_at: float) -> None:
        """Record the interval's facts; start tracking statements that turned slow."""
        if self._seen_snapshot == taken_at or data.interval_s is None:
            return
        self._seen_snapshot = taken_at
        for s in data.statements:
            if s.queryid == "other" or not s.query:
                continue
            key = (s.datname, s.user, s.queryid, s.toplevel)
            tracked = self.tracked.get(key)
            if tracked is None and s.slow:
                tracked = self._track(key, s, taken_at)
            if tracked is None:
                continue
            if s.slow:
                tracked.last_slow = taken_at
                self.tracked.move_to_end(key)
            if s.calls > 0:
                tracked.intervals.append((taken_at, s.calls, s.time_s))
            if s.query and query_hash(s.query) != tracked.qhash:  # text changed: retry
                tracked.query, tracked.qhash, tracked.failure = s.query, query_hash(s.query), None
            self._judge(tracked)

    def _track(self, key: StatementKey, s: Statement, now: float) -> Tracked:
        while len(self.tracked) >= self.config.max_statements:
            self.tracked.popitem(last=False)  # the one slow longest ago
        tracked = Tracked(key, s.query, query_hash(s.query), now, now)
        self.tracked[key] = tracked
        # Decided once, so such statements never take a plan slot of a round.
        if self.database is not None and not self.reachable(key[0]):
            self._skip_other_database(tracked, now)
        elif not advice_mod.is_plannable(s.query):
            self.outcomes["skipped_utility"] += 1
            tracked.failure = {"sqlstate_class": "", "qhash": tracked.qhash, "at": now,
                               "message": "not a SELECT/INSERT/UPDATE/DELETE: never explained"}
        return tracked

    def _skip_other_database(self, tracked: Tracked, now: float) -> None:
        self.outcomes["skipped_other_database"] += 1
        tracked.failure = {"sqlstate_class": "", "qhash": tracked.qhash, "at": now,
                           "message": f"statement runs in database {tracked.key[0]}; "
                                      f"this target connects to {self.database}"}

    def _judge(self, tracked: Tracked) -> None:
        """Update the after-change mean of the latest change and decide on a regression."""
        if not tracked.changes:
            return
        change = tracked.changes[-1]
        change.mean_after_s, change.calls_after = tracked.mean_since(change.at)
        if (not change.regression and change.mean_before_s is not None
                and change.mean_after_s is not None
                and change.calls_after >= self.config.regression_min_calls
                and change.mean_after_s > change.mean_before_s * self.config.regression_factor
                and change.mean_after_s * 1000.0 >= self.config.regression_min_ms):
            change.regression = True
            self.regressions_total += 1
            log.warning("postgres target %s: plan regression of statement %s (%s): "
                        "mean %.1f ms -> %.1f ms after its plan changed", self.target,
                        tracked.key[2], tracked.query[:120], change.mean_before_s * 1000,
                        change.mean_after_s * 1000)

    # ---- the plans job -----------------------------------------------------------------

    def due(self, now: float, database: str | None = None,
            limit: int | None = None) -> list[Tracked]:
        """Statements whose plan should be fetched now: longest overdue first, then the
        most recently slow, so every tracked statement gets its turn.

        With `database`, only those a connection to it can explain (on the DSN's database,
        also the unreachable ones, so that they are marked skipped once).
        """
        due = [t for t in self.tracked.values()
               if t.next_fetch <= now
               and (t.failure is None or t.failure.get("qhash") != t.qhash)
               and (database is None or t.key[0] == database
                    or (database == self.database and not self.reachable(t.key[0])))]
        due.sort(key=lambda t: (t.next_fetch, -t.last_slow))
        return due[: self.config.per_round if limit is None else limit]

    async def run_round(self, conn: asyncpg.Connection, info: ServerInfo,
                        database: str | None = None, limit: int | None = None,
                        budget_s: float | None = None) -> int:
        """Fetch the plans that are due within the round's budget; return how many.

        `database`: the connection is to that other database of a multi-database target
        (None: the DSN's own connection); `limit` and `budget_s` are what the round has left.
        """
        if database is None:
            if self.database is None:
                self.database = await conn.fetchval("SELECT current_database()")
            if self.helper is None:
                self.helper = await has_helper(conn)
            if self.hypopg is None:
                self.hypopg = bool(await conn.fetchval(
                    "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'"))
            flags = (bool(self.helper), bool(self.hypopg))
        else:
            # The helper function and hypopg are per database: looked up once in each.
            known = self._extras.get(database)
            if known is None:
                known = self._extras[database] = (await has_helper(conn), bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'")))
            flags = known
        budget = self.config.round_budget if budget_s is None else budget_s
        started = time.perf_counter()
        fetched = 0
        for tracked in self.due(self.clock(), database or self.database, limit):
            if time.perf_counter() - started > budget:
                break
            await self._fetch(conn, info, tracked, database or self.database, flags)
            fetched += 1
        self.plan_seconds_total += time.perf_counter() - started
        return fetched

    async def _fetch(self, conn: asyncpg.Connection, info: ServerInfo, tracked: Tracked,
                     database: str | None = None, flags: tuple[bool, bool] | None = None
                     ) -> None:
        now = self.clock()
        tracked.next_fetch = now + self.config.refresh_interval
        helper, hypopg = flags if flags is not None else (bool(self.helper), bool(self.hypopg))
        if tracked.key[0] != (database or self.database):
            self._skip_other_database(tracked, now)
            return
        if not advice_mod.is_plannable(tracked.query):
            self.outcomes["skipped_utility"] += 1
            tracked.failure = {"sqlstate_class": "", "qhash": tracked.qhash, "at": now,
                               "message": "not a SELECT/INSERT/UPDATE/DELETE: never explained"}
            return
        try:
            plan = await generic_plan(conn, tracked.query, info.version_num,
                                      self.config.timeout, helper=helper)
        except ExplainError as exc:
            self.outcomes["failed"] += 1
            tracked.failure = {"sqlstate_class": exc.sqlstate[:2], "sqlstate": exc.sqlstate,
                               "message": str(exc)[:500], "qhash": tracked.qhash, "at": now}
            log.info("postgres target %s: no generic plan for statement %s (SQLSTATE %s); "
                     "not retried until its text changes", self.target, tracked.key[2],
                     exc.sqlstate or "none")
            return
        self.outcomes["ok"] += 1
        tracked.failure = None
        record = PlanRecord(shape.shape_hash(plan), plan, now, shape.total_cost(plan), now)
        previous = tracked.current
        if previous is not None and previous.hash == record.hash:
            previous.confirmed_at = now
            return
        tracked.current = record
        if previous is not None:
            # Intervals between the last fetch of the old shape and this one could have
            # run either plan: before = up to that fetch, after = from now on.
            mean_before, _ = tracked.mean_since(0.0, previous.confirmed_at + 1e-6)
            tracked.changes.append(PlanChange(now, previous, record, mean_before))
            self.changes_total += 1
            log.info("postgres target %s: plan of statement %s changed (%s -> %s)",
                     self.target, tracked.key[2], previous.hash, record.hash)
        tracked.advice = await advise(conn, tracked.query, plan, info,
                                          self.config.timeout, hypopg)

    # ---- read API ----------------------------------------------------------------------

    def find(self, queryid: str) -> list[Tracked]:
        return [t for t in self.tracked.values() if t.key[2] == queryid]

    def regressions(self) -> list[tuple[Tracked, PlanChange]]:
        """Statements whose latest plan change is a regression."""
        return [(t, t.changes[-1]) for t in self.tracked.values()
                if t.changes and t.changes[-1].regression]
