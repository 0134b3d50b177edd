"""pg_stat_activity: connections by state, headroom to max_connections, long transactions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from metricsd.postgres.base import (
    PRIVILEGE_HINT,
    FamilyBuilder,
    PgCollector,
    Snapshot,
    fetch_one,
    spec,
)
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

# application_name is whatever clients send (some put a PID or host in it): beyond this
# many distinct names per target, the rarest are folded into application="other".
MAX_APPLICATIONS = 50

BY_STATE_SQL = """
SELECT coalesce(datname, '') AS datname, coalesce(application_name, '') AS application,
       coalesce(state, 'unknown') AS state, count(*) AS n
FROM pg_stat_activity WHERE backend_type = 'client backend'
GROUP BY 1, 2, 3
"""
# reserved_connections exists from PostgreSQL 16; missing_ok makes it NULL before.
SUMMARY_SQL = """
SELECT current_setting('max_connections')::int
         - current_setting('superuser_reserved_connections')::int
         - coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0)
         AS max_connections,
       count(*) FILTER (WHERE backend_type = 'client backend') AS clients,
       count(*) FILTER (WHERE backend_type = 'client backend'
                        AND state LIKE 'idle in transaction%') AS idle_in_transaction,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting_lock,
       coalesce(extract(epoch FROM max(now() - xact_start)
                        FILTER (WHERE pid <> pg_backend_pid())), 0)::float8 AS oldest_xact,
       coalesce(extract(epoch FROM max(now() - query_start)
                        FILTER (WHERE state = 'active' AND pid <> pg_backend_pid()
                                AND backend_type = 'client backend')), 0)::float8
         AS oldest_query
FROM pg_stat_activity
"""


@dataclass(frozen=True)
class ActivityData:
    """Connections right now."""

    by_state: tuple[tuple[str, str, str, int], ...]  # (datname, application, state, count)
    max_connections: int
    clients: int
    idle_in_transaction: int
    waiting_lock: int
    oldest_transaction_s: float
    oldest_query_s: float

    @property
    def utilization(self) -> float:
        return self.clients / self.max_connections if self.max_connections > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections": self.clients, "max_connections": self.max_connections,
            "utilization": self.utilization, "idle_in_transaction": self.idle_in_transaction,
            "waiting_lock": self.waiting_lock,
            "oldest_transaction_seconds": self.oldest_transaction_s,
            "oldest_query_seconds": self.oldest_query_s,
            "by_state": [{"datname": d, "application": a, "state": s, "count": n}
                         for d, a, s, n in self.by_state],
        }


def fold_applications(
    rows: list[tuple[str, str, str, int]], limit: int = MAX_APPLICATIONS
) -> tuple[tuple[str, str, str, int], ...]:
    """Keep the `limit` busiest application names; sum the others into "other"."""
    per_app: dict[str, int] = {}
    for _, app, _, n in rows:
        per_app[app] = per_app.get(app, 0) + n
    keep = set(sorted(per_app, key=lambda a: (-per_app[a], a))[:limit])
    folded: dict[tuple[str, str, str], int] = {}
    for datname, app, state, n in rows:
        key = (datname, app if app in keep else "other", state)
        folded[key] = folded.get(key, 0) + n
    return tuple(sorted((*key, n) for key, n in folded.items()))


@register
class ActivityCollector(PgCollector):
    """Client connections and their age, from pg_stat_activity (the whole server)."""

    name = "activity"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_activity_connections", "gauge", "Client backends",
             "datname", "application", "state"),
        spec("metricsd_pg_activity_max_connections", "gauge",
             "max_connections minus reserved slots"),
        spec("metricsd_pg_activity_utilization_ratio", "gauge",
             "Client backends / usable max_connections"),
        spec("metricsd_pg_activity_idle_in_transaction", "gauge",
             "Client backends idle in a transaction"),
        spec("metricsd_pg_activity_waiting_lock", "gauge", "Backends waiting on a lock"),
        spec("metricsd_pg_activity_oldest_transaction_seconds", "gauge",
             "Age of the oldest open transaction"),
        spec("metricsd_pg_activity_oldest_query_seconds", "gauge",
             "Age of the oldest running query"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        rows = await conn.fetch(BY_STATE_SQL)
        s = await fetch_one(conn, SUMMARY_SQL)
        by_state = fold_applications(
            [(r["datname"], r["application"], r["state"], int(r["n"])) for r in rows])
        note = "" if info.reads_all_stats else (
            "other roles' sessions show no state, wait event or query (counted as state "
            f"'unknown'); {PRIVILEGE_HINT}")
        return self.snapshot(now, ActivityData(
            by_state=by_state, max_connections=int(s["max_connections"]),
            clients=int(s["clients"]), idle_in_transaction=int(s["idle_in_transaction"]),
            waiting_lock=int(s["waiting_lock"]), oldest_transaction_s=float(s["oldest_xact"]),
            oldest_query_s=float(s["oldest_query"]),
        ), note)

    def fill(self, out: FamilyBuilder, data: ActivityData) -> None:
        for datname, application, state, n in data.by_state:
            out.add("metricsd_pg_activity_connections", n, datname=datname,
                    application=application, state=state)
        out.add("metricsd_pg_activity_max_connections", data.max_connections)
        out.add("metricsd_pg_activity_utilization_ratio", data.utilization)
        out.add("metricsd_pg_activity_idle_in_transaction", data.idle_in_transaction)
        out.add("metricsd_pg_activity_waiting_lock", data.waiting_lock)
        out.add("metricsd_pg_activity_oldest_transaction_seconds", data.oldest_transaction_s)
        out.add("metricsd_pg_activity_oldest_query_seconds", data.oldest_query_s)
