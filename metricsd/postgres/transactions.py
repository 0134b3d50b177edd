"""Long-running transactions: the N oldest open transactions with who, where and what.

An old transaction holds back VACUUM (its xmin), keeps locks and bloats everything it
touches. Series stay bounded: one per rank (1..postgres.long_transactions), whichever
backend holds that rank now; the pid, state and wait event go to an info series of the
same rank, and the query text only to the JSON API and the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, epoch, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import APPLICATION_NAME, ServerInfo

LABEL_MAX = 100
# xact_start is set for every backend inside a transaction; metricsd's own sessions are
# left out (they are short, and would take ranks on a quiet server).
TRANSACTIONS_SQL = """
SELECT pid, coalesce(datname, '') AS datname, coalesce(usename, '') AS usename,
       coalesce(application_name, '') AS application, coalesce(state, '') AS state,
       coalesce(wait_event_type, '') AS wait_event_type,
       coalesce(wait_event, '') AS wait_event,
       extract(epoch FROM now() - xact_start)::float8 AS age_seconds,
       extract(epoch FROM now() - state_change)::float8 AS state_seconds,
       xact_start, age(backend_xmin)::int8 AS xmin_age,
       left(query, $2) AS query,
       count(*) OVER () AS open_transactions
FROM pg_stat_activity
WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
  AND coalesce(application_name, '') <> $3
ORDER BY xact_start, pid
LIMIT $1
"""


@dataclass(frozen=True, slots=True)
class Transaction:
    """One open transaction: its backend, age, state and (truncated) current query."""

    rank: int
    pid: int
    datname: str
    user: str
    application: str
    state: str
    wait_event_type: str
    wait_event: str
    age_s: float
    state_s: float | None
    started_at: float | None
    xmin_age: int | None
    query: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank, "pid": self.pid, "datname": self.datname, "user": self.user,
            "application": self.application, "state": self.state,
            "wait_event_type": self.wait_event_type or None,
            "wait_event": self.wait_event or None, "age_seconds": self.age_s,
            "state_seconds": self.state_s, "started_at": self.started_at,
            "xmin_age": self.xmin_age, "query": self.query,
        }


@dataclass(frozen=True)
class TransactionsData:
    transactions: tuple[Transaction, ...]
    open: int  # every open transaction (not only the top N), metricsd's own excluded


class HasData(Protocol):
    """What the readers below need of a target's state (metricsd.postgres.state)."""

    name: str

    def data(self, collector: str) -> Any: ...


def oldest(targets: Iterable[HasData], limit: int, min_age_s: float = 0.0
           ) -> list[dict[str, Any]]:
    """The oldest open transactions (at least `min_age_s` old) over the targets, oldest first."""
    rows = []
    for ts in targets:
        data: TransactionsData | None = ts.data("transactions")
        if data is not None:
            rows += [{"target": ts.name, **t.as_dict()} for t in data.transactions
                     if t.age_s >= min_age_s]
    rows.sort(key=lambda r: (-r["age_seconds"], r["target"], r["pid"]))
    return rows[:limit]


@register
class TransactionsCollector(PgCollector):
    """The postgres.long_transactions oldest transactions in pg_stat_activity."""

    name = "transactions"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_transactions_open", "gauge",
             "Backends inside a transaction (metricsd's own sessions excluded)"),
        spec("metricsd_pg_transactions_age_seconds", "gauge",
             "Age of the rank-th oldest open transaction", "rank"),
        spec("metricsd_pg_transactions_info", "gauge",
             "Who holds the rank-th oldest transaction; always 1",
             "rank", "pid", "datname", "user", "application", "state", "wait_event_type",
             "wait_event"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        rows = await conn.fetch(TRANSACTIONS_SQL, self.config.long_transactions,
                                self.config.query_text_length, APPLICATION_NAME)
        out = tuple(
            Transaction(
                rank=i, pid=int(r["pid"]), datname=r["datname"], user=r["usename"],
                application=r["application"], state=r["state"],
                wait_event_type=r["wait_event_type"], wait_event=r["wait_event"],
                age_s=max(0.0, float(r["age_seconds"])),
                state_s=None if r["state_seconds"] is None else float(r["state_seconds"]),
                started_at=epoch(r["xact_start"]),
                xmin_age=None if r["xmin_age"] is None else int(r["xmin_age"]),
                query=r["query"] or "",
            )
            for i, r in enumerate(rows, start=1)
        )
        open_count = int(rows[0]["open_transactions"]) if rows else 0
        return self.snapshot(now, TransactionsData(out, open_count))

    def fill(self, out: FamilyBuilder, data: TransactionsData) -> None:
        out.add("metricsd_pg_transactions_open", data.open)
        for t in data.transactions:
            rank = str(t.rank)
            out.add("metricsd_pg_transactions_age_seconds", t.age_s, rank=rank)
            # application_name is client-chosen: cut to LABEL_MAX; at most N such series
            # exist at a time.
            out.add("metricsd_pg_transactions_info", 1.0, rank=rank, pid=str(t.pid),
                    datname=t.datname, user=t.user, application=t.application[:LABEL_MAX],
                    state=t.state, wait_event_type=t.wait_event_type,
                    wait_event=t.wait_event)
