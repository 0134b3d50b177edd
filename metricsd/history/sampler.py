"""PostgreSQL and alert facts for the history, read from snapshots the scrape jobs stored.

A short job reads the latest statements snapshot of each target (each one once: the
interval deltas it holds are added to the hour it was taken in), the plan tracker's plan
hashes and changes, index scans, connections, cache hit ratio and replication lag, and
turns changes in alert state into fired / resolved / notified events. No query of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from metricsd.history.rollup import HOUR
from metricsd.history.writes import StatementFact, TargetFact


class PgReader(Protocol):
    """What the sampler reads of postgres.state.PgState."""

    def target_names(self) -> list[str]: ...
    def latest(self, target: str, collector: str) -> Any: ...
    def indexes(self, target: str | None = None) -> list[dict[str, Any]]: ...
    def connections(self, target: str) -> dict[str, Any] | None: ...
    def cache_hit_ratio(self, target: str) -> float | None: ...
    def replication(self, target: str) -> dict[str, Any] | None: ...


class AlertReader(Protocol):
    """What the sampler reads of alerting.service.AlertingService."""

    def alerts(self) -> list[dict[str, Any]]: ...


@dataclass
class Facts:
    """One sampling round's writes."""

    statements: list[StatementFact] = field(default_factory=list)
    plan_changes: list[tuple[str, str, float, str | None, str | None, bool]] = field(
        default_factory=list)
    indexes: list[tuple[str, str, str, int, bool, bool]] = field(default_factory=list)
    targets: list[TargetFact] = field(default_factory=list)
    alerts: list[tuple[float, str, str, str, Mapping[str, str]]] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)


def _hour(stamp: float) -> int:
    return int(stamp // HOUR) * HOUR


def _lag(replication: dict[str, Any] | None) -> float | None:
    """Worst replay lag in seconds: of the standbys on a primary, or this standby's delay."""
    if replication is None:
        return None
    if replication.get("is_standby"):
        value = replication.get("replay_delay_seconds")
        return float(value) if value is not None else None
    lags = [s.get("replay_lag_seconds") for s in replication.get("standbys", [])]
    known = [float(v) for v in lags if v is not None]
    return max(known) if known else None


class Sampler:
    """Remembers what it already recorded, so each snapshot and event counts once."""

    def __init__(self) -> None:
        self._seen_statements: dict[str, float] = {}
        self._plan_changes: set[tuple[str, str, float]] = set()
        self._alerts: dict[str, tuple[str, float | None, float | None]] = {}
        self._notified: dict[str, float] = {}  # dispatcher log key -> sent_at recorded

    def sample(self, now: float, pg: PgReader | None, plans: Any,
               alerts: AlertReader | None) -> Facts:
        facts = Facts()
        if pg is not None:
            for target in pg.target_names():
                self._target(facts, now, pg, plans, target)
        if alerts is not None:
            listed = alerts.alerts()
            self._alert_events(facts, listed)
            self._notifications(facts, alerts, {a["fingerprint"]: a for a in listed})
        return facts

    def _notifications(self, facts: Facts, alerts: Any, by_fp: dict[str, dict[str, Any]]
                       ) -> None:
        """One `notified` event per alert in each notification the dispatcher logged."""
        dispatcher = getattr(alerts, "dispatcher", None)
        log = getattr(dispatcher, "log", None) or {}
        for key, entry in list(log.items()):
            if self._notified.get(key) == entry.sent_at:
                continue
            self._notified[key] = entry.sent_at
            receiver = key.rpartition("|")[2]
            for fp in sorted(entry.firing | entry.resolved):
                alert = by_fp.get(fp, {})
                facts.alerts.append((float(entry.sent_at), fp, "notified",
                                     alert.get("name", ""), {"receiver": receiver}))

    def _target(self, facts: Facts, now: float, pg: PgReader, plans: Any, target: str) -> None:
        hour = _hour(now)
        tracked = self._tracked(plans, target)
        snap = pg.latest(target, "statements")
        if snap is not None and self._seen_statements.get(target) != snap.taken_at:
            self._seen_statements[target] = snap.taken_at
            data = snap.data
            if data.interval_s is not None:  # the first scrape is a baseline without deltas
                for s in data.statements:
                    if not s.calls:
                        continue
                    t = tracked.get(s.queryid)
                    plan = t.current.hash if t is not None and t.current else None
                    facts.statements.append(StatementFact(
                        _hour(snap.taken_at), target, s.queryid, s.query[:1000], s.calls,
                        s.time_s, s.rows, s.mean_s, plan, snap.taken_at))
                if data.dealloc_in_interval:
                    facts.quality["statements_evicted"] = (
                        facts.quality.get("statements_evicted", 0.0) + data.dealloc_in_interval)
        for qid, t in tracked.items():
            for change in t.changes:
                mark = (target, qid, change.at)
                if mark not in self._plan_changes:
                    self._plan_changes.add(mark)
                    facts.plan_changes.append((target, qid, change.at, change.old.hash,
                                               change.new.hash, change.regression))
        for i in pg.indexes(target):
            facts.indexes.append((target, f"{i['schema']}.{i['index']}",
                                  f"{i['schema']}.{i['table']}", int(i["scans"]),
                                  bool(i["unused"]), bool(i["valid"])))
        conn = pg.connections(target)
        facts.targets.append(TargetFact(
            hour, target,
            conn["connections"] if conn else None, conn["max_connections"] if conn else None,
            pg.cache_hit_ratio(target), _lag(pg.replication(target))))

    @staticmethod
    def _tracked(plans: Any, target: str) -> dict[str, Any]:
        if plans is None:
            return {}
        tracker = getattr(plans, "trackers", {}).get(target)
        if tracker is None:
            return {}
        return {t.key[2]: t for t in tracker.tracked.values()}

    def _alert_events(self, facts: Facts, alerts: list[dict[str, Any]]) -> None:
        for a in alerts:
            fp = a["fingerprint"]
            state, fired, resolved = a["state"], a.get("started_at"), a.get("resolved_at")
            before = self._alerts.get(fp)
            self._alerts[fp] = (state, fired, resolved)
            if before is not None and before[1:] == (fired, resolved):
                continue
            labels = a.get("labels", {})
            if fired is not None and (before is None or before[1] != fired):
                facts.alerts.append((float(fired), fp, "fired", a["name"], labels))
            if resolved is not None and state == "resolved" and (
                    before is None or before[2] != resolved):
                facts.alerts.append((float(resolved), fp, "resolved", a["name"], labels))
