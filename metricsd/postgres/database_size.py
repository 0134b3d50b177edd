"""Database size on disk, per database (pg_database_size).

pg_database_size stats every file of a database, which on a cluster with hundreds of
thousands of relations costs more than the rest of a round: it is read at most every
SIZE_REFRESH_S and the last reading is served in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import asyncpg

from metricsd.config import PostgresConfig
from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

SIZE_REFRESH_S = 60.0
# Only databases the role may connect to (pg_database_size raises otherwise); templates
# that refuse connections (template0) are left out.
SIZE_SQL = """
SELECT datname, pg_database_size(oid) AS size_bytes
FROM pg_database
WHERE datallowconn AND has_database_privilege(oid, 'CONNECT')
ORDER BY datname
"""


@dataclass(frozen=True)
class DatabaseSizeData:
    sizes: tuple[tuple[str, int], ...]  # (datname, bytes)
    measured_at: float


@register
class DatabaseSizeCollector(PgCollector):
    """pg_database_size of every database the role may connect to."""

    name = "database_size"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_database_size_bytes", "gauge", "Size of the database on disk",
             "datname"),
    )

    def __init__(self, target: str, config: PostgresConfig) -> None:
        super().__init__(target, config)
        self._last: DatabaseSizeData | None = None
        self._last_at = -math.inf

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        if self._last is None or now - self._last_at >= SIZE_REFRESH_S:
            rows = await conn.fetch(SIZE_SQL)
            self._last = DatabaseSizeData(
                tuple((r["datname"], int(r["size_bytes"])) for r in rows), now)
            self._last_at = now
        return self.snapshot(now, self._last)

    def fill(self, out: FamilyBuilder, data: DatabaseSizeData) -> None:
        for datname, size in data.sizes:
            out.add("metricsd_pg_database_size_bytes", size, datname=datname)
