"""Several databases of one target: which to read (a list, or `auto` discovery) and their pools.

Discovery follows postgres_exporter's `--auto-discover-databases` (databases that allow
connections and are not templates) with pgwatch's include/exclude patterns; the
per-database views (tables, indexes) read each database through a one-connection pool,
while the server-wide views keep reading once from the target's own connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from metricsd.config import PostgresConfig, TargetConfig
from metricsd.postgres.base import PgCollector
from metricsd.postgres.health import ViewSet
from metricsd.postgres.targets import PgTarget

DISCOVERY_SQL = """
SELECT datname, datname = current_database() AS current
FROM pg_database
WHERE datallowconn AND NOT datistemplate
ORDER BY datname
"""


@dataclass(frozen=True)
class Selection:
    """The databases to read, in order, and how many matched beyond max_databases."""

    databases: tuple[str, ...]
    over_limit: int


def select(target: TargetConfig, found: Iterable[str], current: str | None = None) -> Selection:
    """Filtered by the patterns, the DSN's database first, then by name, up to the maximum."""
    matched = sorted({name for name in found if target.wants_database(name)},
                     key=lambda name: (name != current, name))
    keep = matched[:target.max_databases]
    return Selection(tuple(keep), len(matched) - len(keep))


def configured(target: TargetConfig) -> Selection:
    """A `databases: [..]` list as given, up to the maximum."""
    names = target.databases if isinstance(target.databases, list) else []
    keep = names[:target.max_databases]
    return Selection(tuple(keep), len(names) - len(keep))


class DatabaseState(ViewSet):
    """One database of a multi-database target: its one-connection pool and its views."""

    def __init__(self, target: TargetConfig, config: PostgresConfig, database: str,
                 views: Iterable[type[PgCollector]]) -> None:
        collectors = {}
        for cls in views:
            collector = cls(target.name, config)
            collector.database = database
            collectors[cls.name] = collector
        super().__init__(collectors)
        self.database = database
        self.pg = PgTarget(target, config, database)

    def gone(self) -> bool:
        """The latest connection attempt said the database does not exist (dropped)."""
        return isinstance(self.pg.last_exception, asyncpg.InvalidCatalogNameError)
