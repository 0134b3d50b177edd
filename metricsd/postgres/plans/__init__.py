"""Slow statement analysis: generic plans, plan changes, index advice, EXPLAIN ANALYZE.

`PlansService` runs one `plans:<target>` job per target after the statements
collector: it reads the latest statements snapshot (no extra query for that), and fetches
the plans that are due within the round's budget on the target's own pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from metricsd.config import PostgresConfig
from metricsd.postgres.plans.tracker import OUTCOMES, PlanTracker, Tracked
from metricsd.postgres.state import PgState
from metricsd.postgres.targets import TargetDown

log = logging.getLogger(__name__)

# Query text in the regression gauge's label: cut, because Prometheus indexes every label.
QUERY_LABEL_LENGTH = 120
REGRESSION_LABELS = ("target", "datname", "user", "queryid", "query")


def _label_text(text: str) -> str:
    """Whitespace collapsed, printable only, bounded."""
    flat = " ".join(text.split())
    flat = "".join(ch if ch.isprintable() else "\ufffd" for ch in flat)
    return flat[:QUERY_LABEL_LENGTH]


class PlansService:
    """A PlanTracker per target, the job body, a read API and the plans' metric families."""

    def __init__(
        self, state: PgState, config: PostgresConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.state = state
        self.config = config.plans
        self.trackers = {name: PlanTracker(name, config.plans, clock) for name in state.targets}
        self._warned: set[str] = set()

    def jobs(self) -> list[str]:
        if not self.config.enabled:
            return []
        return [t for t, ts in self.state.targets.items() if "statements" in ts.collectors]

    async def run(self, target: str) -> int:
        """The job: observe the latest statements snapshot, fetch the plans that are due."""
        tracker = self.trackers[target]
        snapshot = self.state.latest(target, "statements")
        if snapshot is None:
            return 0
        tracker.observe(snapshot.data, snapshot.taken_at)
        if not tracker.due(tracker.clock()):
            return 0
        ts = self.state.targets[target]
        tracker.other_databases = frozenset(ts.databases) - {tracker.database or ""}
        try:
            async with ts.pg.connection() as conn:
                assert ts.pg.info is not None
                fetched = await tracker.run_round(conn, ts.pg.info)
        except TargetDown:
            return 0
        except Exception as exc:  # never raise into the scheduler
            if target not in self._warned:
                self._warned.add(target)
                log.warning("postgres target %s: plans round failed: %s: %s (logged once)",
                            target, type(exc).__name__, exc)
            return 0
        self._warned.discard(target)
        return fetched + await self._other_databases(target, fetched, time.perf_counter())

    async def _other_databases(self, target: str, fetched: int, started: float) -> int:
        """`databases:`: statements of the other databases, each on its own connection,
        within what the round has left of `per_round` and `round_budget`."""
        tracker = self.trackers[target]
        ts = self.state.targets[target]
        # The DSN's database is known once a round ran on it: never explained twice.
        tracker.other_databases = frozenset(ts.databases) - {tracker.database or ""}
        more = 0
        for name in sorted(tracker.other_databases):
            left = self.config.per_round - fetched - more
            budget = self.config.round_budget - (time.perf_counter() - started)
            db = ts.databases.get(name)
            if left <= 0 or budget <= 0:
                break
            if db is None or not tracker.due(tracker.clock(), name, left):
                continue
            where = f"{target}/{name}"
            try:
                async with db.pg.connection() as conn:
                    assert db.pg.info is not None
                    more += await tracker.run_round(conn, db.pg.info, name, left, budget)
            except TargetDown:
                continue  # that database's own collectors report it
            except Exception as exc:  # never raise into the scheduler
                if where not in self._warned:
                    self._warned.add(where)
                    log.warning("postgres target %s: plans round failed: %s: %s (logged"
                                " once)", where, type(exc).__name__, exc)
                continue
            self._warned.discard(where)
        return more

    # ---- read API --------------------------------------------------------------------

    def statements(self, target: str | None = None) -> list[dict[str, Any]]:
        out = []
        for name, tracker in self.trackers.items():
            if target is None or target == name:
                out += [{"target": name, **t.as_dict()} for t in tracker.tracked.values()]
        return out

    def find(self, target: str, queryid: str) -> list[Tracked]:
        tracker = self.trackers.get(target)
        return tracker.find(queryid) if tracker is not None else []

    # ---- metrics ---------------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        fetches = CounterMetricFamily(
            "metricsd_pg_plans_fetches", "Generic plan fetches by outcome",
            labels=["target", "outcome"])
        changes = CounterMetricFamily(
            "metricsd_pg_plans_changes", "Plan shape changes of tracked statements",
            labels=["target"])
        regressions = CounterMetricFamily(
            "metricsd_pg_plans_regressions",
            "Plan changes followed by a slowdown of the per-call mean", labels=["target"])
        seconds = CounterMetricFamily(
            "metricsd_pg_plans_seconds", "Time spent fetching plans and advice",
            labels=["target"])
        tracked = GaugeMetricFamily(
            "metricsd_pg_plans_tracked", "Statements whose plans are tracked",
            labels=["target"])
        regression = GaugeMetricFamily(
            "metricsd_pg_statements_plan_regression",
            "Mean seconds per call after a plan change that made the statement slower "
            "(present while the latest change of a tracked statement is a regression)",
            labels=list(REGRESSION_LABELS))
        for name, tracker in self.trackers.items():
            for outcome in OUTCOMES:
                fetches.add_metric([name, outcome], float(tracker.outcomes[outcome]))
            changes.add_metric([name], float(tracker.changes_total))
            regressions.add_metric([name], float(tracker.regressions_total))
            seconds.add_metric([name], tracker.plan_seconds_total)
            tracked.add_metric([name], float(len(tracker.tracked)))
            for t, change in tracker.regressions():
                datname, user, queryid, _ = t.key
                regression.add_metric([name, datname, user, queryid, _label_text(t.query)],
                                      change.mean_after_s or 0.0)
        return [fetches, changes, regressions, seconds, tracked, regression]

    def describe(self) -> Iterable[Metric]:
        return self.collect()
