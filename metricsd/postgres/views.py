"""Every PostgreSQL view module, imported so each registers itself: one line per view."""

from __future__ import annotations

from metricsd.postgres import (  # noqa: F401  (importing a view module registers it)
    activity,
    archiver,
    bgwriter,
    blocking,
    checkpointer,
    database,
    database_size,
    indexes,
    io,
    replication,
    statements,
    tables,
    transactions,
    wal,
    wraparound,
)
from metricsd.postgres.base import PgCollector
from metricsd.postgres.registry import COLLECTORS


def load_all() -> dict[str, type[PgCollector]]:
    """name -> view class, in registration order (the /metrics order)."""
    return COLLECTORS
