"""PostgreSQL views: one module per statistics view, found through COLLECTORS."""

from __future__ import annotations

import importlib
from typing import TypeVar

from metricsd.config import PostgresConfig
from metricsd.postgres.base import PgCollector

C = TypeVar("C", bound=type[PgCollector])

# Collector modules, in /metrics order: the first six, then issue 13's server-wide views.
MODULES = (
    "statements", "indexes", "tables", "activity", "database", "replication",
    "transactions", "blocking", "wraparound", "database_size", "checkpointer", "bgwriter",
    "wal", "archiver", "io",
)

# name -> collector class, in registration order (which is the /metrics order).
COLLECTORS: dict[str, type[PgCollector]] = {}


def register(cls: C) -> C:
    """Class decorator: add a collector; its name must have a default in the config."""
    name = cls.name
    if name in COLLECTORS:
        raise RuntimeError(f"collector {name!r} registered twice")
    if name not in PostgresConfig.default_collectors():
        raise RuntimeError(f"collector {name!r} has no default on/off in PostgresConfig")
    COLLECTORS[name] = cls
    return cls


def load_all() -> dict[str, type[PgCollector]]:
    """Import every collector module so each registers itself."""
    for module in MODULES:
        importlib.import_module(f"metricsd.postgres.{module}")

    return COLLECTORS
