"""What one round of SHOW POOLS, STATS, DATABASES and CONFIG says, and its metric families.

Pool utilisation is server connections serving a client (`sv_active`) over the pool's
`pool_size`: at 1.0 every further client waits (`cl_waiting`), and the time they wait adds
up in SHOW STATS' `total_wait_time`. Client utilisation is every client connection over
`max_client_conn`, beyond which PgBouncer refuses new clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metricsd.export.family import Family
from metricsd.postgres.base import FamilyBuilder, spec

POOL_LABELS = ("database", "user")
CLIENT_STATES = ("active", "waiting")
SERVER_STATES = ("active", "idle", "used", "tested", "login")
US = 1e-6  # PgBouncer reports times in microseconds

SPECS: tuple[Family, ...] = (
    spec("metricsd_pgbouncer_pool_clients", "gauge",
         "Client connections of the pool: active (linked to a server) or waiting for one",
         *POOL_LABELS, "state"),
    spec("metricsd_pgbouncer_pool_servers", "gauge",
         "Server connections of the pool by state", *POOL_LABELS, "state"),
    spec("metricsd_pgbouncer_pool_size", "gauge", "The pool's pool_size", *POOL_LABELS),
    spec("metricsd_pgbouncer_pool_utilization_ratio", "gauge",
         "Active server connections / pool_size", *POOL_LABELS),
    spec("metricsd_pgbouncer_pool_max_wait_seconds", "gauge",
         "How long the oldest waiting client of the pool has waited", *POOL_LABELS),
    spec("metricsd_pgbouncer_clients", "gauge", "Client connections in all pools"),
    spec("metricsd_pgbouncer_max_client_connections", "gauge", "max_client_conn"),
    spec("metricsd_pgbouncer_client_utilization_ratio", "gauge",
         "Client connections / max_client_conn"),
    spec("metricsd_pgbouncer_pools_dropped", "gauge",
         "Pools beyond pgbouncer.max_pools, not exported"),
    spec("metricsd_pgbouncer_database_max_connections", "gauge",
         "max_db_connections of the database (0: no limit)", "database"),
    spec("metricsd_pgbouncer_database_current_connections", "gauge",
         "Server connections to the database", "database"),
    spec("metricsd_pgbouncer_database_paused", "gauge", "1 when the database is PAUSEd",
         "database"),
    spec("metricsd_pgbouncer_database_disabled", "gauge", "1 when the database is DISABLEd",
         "database"),
    spec("metricsd_pgbouncer_transactions", "counter", "Transactions pooled", "database"),
    spec("metricsd_pgbouncer_queries", "counter", "Queries pooled", "database"),
    spec("metricsd_pgbouncer_received_bytes", "counter", "Bytes received from clients",
         "database"),
    spec("metricsd_pgbouncer_sent_bytes", "counter", "Bytes sent to clients", "database"),
    spec("metricsd_pgbouncer_transaction_time_seconds", "counter",
         "Time in transactions, linked to a server", "database"),
    spec("metricsd_pgbouncer_query_time_seconds", "counter",
         "Time in queries, linked to a server", "database"),
    spec("metricsd_pgbouncer_wait_time_seconds", "counter",
         "Time clients waited for a server connection", "database"),
)


@dataclass(frozen=True, slots=True)
class Pool:
    """One (database, user) pool from SHOW POOLS, with its database's pool_size."""

    database: str
    user: str
    clients: tuple[int, int]  # active, waiting (cancel requests included)
    servers: tuple[int, int, int, int, int]  # in SERVER_STATES order
    max_wait_s: float
    pool_size: int | None

    @property
    def utilization(self) -> float | None:
        return self.servers[0] / self.pool_size if self.pool_size else None

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.database, "user": self.user,
                **{f"clients_{s}": n for s, n in zip(CLIENT_STATES, self.clients, strict=True)},
                **{f"servers_{s}": n for s, n in zip(SERVER_STATES, self.servers, strict=True)},
                "max_wait_seconds": self.max_wait_s, "pool_size": self.pool_size,
                "utilization": self.utilization}


@dataclass(frozen=True, slots=True)
class Database:
    """One database from SHOW DATABASES and its counters from SHOW STATS."""

    name: str
    pool_size: int
    max_connections: int
    current_connections: int
    paused: bool
    disabled: bool
    stats: tuple[int, int, int, int, float, float, float] | None  # see STAT_FAMILIES


STAT_FAMILIES = ("transactions", "queries", "received_bytes", "sent_bytes",
                 "transaction_time_seconds", "query_time_seconds", "wait_time_seconds")


@dataclass(frozen=True)
class PgBouncerData:
    pools: tuple[Pool, ...]
    databases: tuple[Database, ...]
    max_client_conn: int | None
    clients: int
    pools_dropped: int

    @property
    def client_utilization(self) -> float | None:
        return self.clients / self.max_client_conn if self.max_client_conn else None


def _int(row: dict[str, Any], *keys: str) -> int:
    return sum(int(row.get(key) or 0) for key in keys)


def parse(pools: list[dict[str, Any]], stats: list[dict[str, Any]],
          databases: list[dict[str, Any]], config: list[dict[str, Any]],
          max_pools: int) -> PgBouncerData:
    """The four SHOW results as one snapshot; pools beyond `max_pools` are counted only."""
    settings = {str(r["key"]): r["value"] for r in config}
    by_stats = {str(r["database"]): r for r in stats}
    dbs = []
    sizes: dict[str, int] = {}
    for r in databases:
        name = str(r["name"])
        sizes[name] = _int(r, "pool_size")
        s = by_stats.get(name)
        dbs.append(Database(
            name=name, pool_size=sizes[name], max_connections=_int(r, "max_connections"),
            current_connections=_int(r, "current_connections"),
            paused=bool(_int(r, "paused")), disabled=bool(_int(r, "disabled")),
            stats=None if s is None else (
                _int(s, "total_xact_count"), _int(s, "total_query_count"),
                _int(s, "total_received"), _int(s, "total_sent"),
                _int(s, "total_xact_time") * US, _int(s, "total_query_time") * US,
                _int(s, "total_wait_time") * US),
        ))
    out = []
    clients = 0
    for r in pools:
        active = _int(r, "cl_active", "cl_active_cancel_req")
        waiting = _int(r, "cl_waiting", "cl_waiting_cancel_req")
        clients += active + waiting
        out.append(Pool(
            database=str(r["database"]), user=str(r["user"]), clients=(active, waiting),
            servers=(_int(r, "sv_active", "sv_active_cancel", "sv_being_canceled"),
                     _int(r, "sv_idle"), _int(r, "sv_used"), _int(r, "sv_tested"),
                     _int(r, "sv_login")),
            max_wait_s=_int(r, "maxwait") + _int(r, "maxwait_us") * US,
            pool_size=sizes.get(str(r["database"])),
        ))
    # The busiest pools first, so a cap drops the idle ones.
    out.sort(key=lambda p: (-(p.clients[0] + p.clients[1]), p.database, p.user))
    kept = sorted(out[:max_pools], key=lambda p: (p.database, p.user))
    max_client = settings.get("max_client_conn")
    return PgBouncerData(
        pools=tuple(kept), databases=tuple(sorted(dbs, key=lambda d: d.name)),
        max_client_conn=int(max_client) if max_client not in (None, "") else None,
        clients=clients, pools_dropped=len(out) - len(kept),
    )


def fill(out: FamilyBuilder, data: PgBouncerData) -> None:
    """Add every family's samples of one target's snapshot."""
    for p in data.pools:
        labels = {"database": p.database, "user": p.user}
        for state, n in zip(CLIENT_STATES, p.clients, strict=True):
            out.add("metricsd_pgbouncer_pool_clients", n, **labels, state=state)
        for state, n in zip(SERVER_STATES, p.servers, strict=True):
            out.add("metricsd_pgbouncer_pool_servers", n, **labels, state=state)
        out.add_series(labels, (
            ("metricsd_pgbouncer_pool_size", p.pool_size),
            ("metricsd_pgbouncer_pool_utilization_ratio", p.utilization),
            ("metricsd_pgbouncer_pool_max_wait_seconds", p.max_wait_s),
        ))
    out.add("metricsd_pgbouncer_clients", data.clients)
    out.add("metricsd_pgbouncer_max_client_connections", data.max_client_conn)
    out.add("metricsd_pgbouncer_client_utilization_ratio", data.client_utilization)
    out.add("metricsd_pgbouncer_pools_dropped", data.pools_dropped)
    for d in data.databases:
        out.add_series({"database": d.name}, (
            ("metricsd_pgbouncer_database_max_connections", d.max_connections),
            ("metricsd_pgbouncer_database_current_connections", d.current_connections),
            ("metricsd_pgbouncer_database_paused", 1.0 if d.paused else 0.0),
            ("metricsd_pgbouncer_database_disabled", 1.0 if d.disabled else 0.0),
            *((f"metricsd_pgbouncer_{name}", value)
              for name, value in zip(STAT_FAMILIES, d.stats or (), strict=False)),
        ))
