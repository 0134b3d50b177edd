"""Transaction-ID and multixact wraparound: how far each database is from the hard limit.

PostgreSQL stops assigning XIDs shortly before a database's `age(datfrozenxid)` reaches
2^31; autovacuum starts anti-wraparound vacuums at `autovacuum_freeze_max_age`. Both
ages and both thresholds are exported, so an alert can say "x % of the way".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

# XIDs and multixact IDs are compared modulo 2^32, so half of that is the horizon.
WRAP_LIMIT = 2**31

# pg_database only (one row per database, no per-table scan): cheap on any cluster.
WRAPAROUND_SQL = """
SELECT datname, age(datfrozenxid)::int8 AS xid_age, mxid_age(datminmxid)::int8 AS mxid_age,
       current_setting('autovacuum_freeze_max_age')::int8 AS freeze_max_age,
       current_setting('autovacuum_multixact_freeze_max_age')::int8 AS mxid_freeze_max_age
FROM pg_database ORDER BY datname
"""


@dataclass(frozen=True, slots=True)
class DatabaseAge:
    """One database's oldest unfrozen XID and multixact, as ages."""

    datname: str
    xid_age: int
    multixact_age: int

    def as_dict(self) -> dict[str, Any]:
        return {"datname": self.datname, "xid_age": self.xid_age,
                "xid_limit_ratio": self.xid_age / WRAP_LIMIT,
                "multixact_age": self.multixact_age,
                "multixact_limit_ratio": self.multixact_age / WRAP_LIMIT}


@dataclass(frozen=True)
class WraparoundData:
    databases: tuple[DatabaseAge, ...]
    freeze_max_age: int
    multixact_freeze_max_age: int


@register
class WraparoundCollector(PgCollector):
    """age(datfrozenxid) and mxid_age(datminmxid) per database (the whole server)."""

    name = "wraparound"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_wraparound_xid_age", "gauge",
             "Transactions since the database's oldest unfrozen XID (age(datfrozenxid))",
             "datname"),
        spec("metricsd_pg_wraparound_xid_limit_ratio", "gauge",
             "age(datfrozenxid) / 2^31: 1 is the wraparound horizon", "datname"),
        spec("metricsd_pg_wraparound_multixact_age", "gauge",
             "Multixacts since the database's oldest (mxid_age(datminmxid))", "datname"),
        spec("metricsd_pg_wraparound_multixact_limit_ratio", "gauge",
             "mxid_age(datminmxid) / 2^31", "datname"),
        spec("metricsd_pg_wraparound_freeze_max_age", "gauge",
             "autovacuum_freeze_max_age: XID age that forces an anti-wraparound vacuum"),
        spec("metricsd_pg_wraparound_multixact_freeze_max_age", "gauge",
             "autovacuum_multixact_freeze_max_age"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        rows = await conn.fetch(WRAPAROUND_SQL)
        databases = tuple(DatabaseAge(r["datname"], int(r["xid_age"]), int(r["mxid_age"]))
                          for r in rows)
        first = rows[0] if rows else None
        return self.snapshot(now, WraparoundData(
            databases,
            int(first["freeze_max_age"]) if first else 0,
            int(first["mxid_freeze_max_age"]) if first else 0,
        ))

    def fill(self, out: FamilyBuilder, data: WraparoundData) -> None:
        for d in data.databases:
            out.add_series({"datname": d.datname}, (
                ("metricsd_pg_wraparound_xid_age", d.xid_age),
                ("metricsd_pg_wraparound_xid_limit_ratio", d.xid_age / WRAP_LIMIT),
                ("metricsd_pg_wraparound_multixact_age", d.multixact_age),
                ("metricsd_pg_wraparound_multixact_limit_ratio", d.multixact_age / WRAP_LIMIT),
            ))
        out.add("metricsd_pg_wraparound_freeze_max_age", data.freeze_max_age)
        out.add("metricsd_pg_wraparound_multixact_freeze_max_age",
                data.multixact_freeze_max_age)
