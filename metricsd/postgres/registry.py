"""The registry of PostgreSQL views: `@register` adds a view class to COLLECTORS.

The view modules themselves are imported by postgres/views.py (one line per view), so
this module imports none of them and no import cycle runs through it.
"""

from __future__ import annotations

from typing import TypeVar

from metricsd.config import PostgresConfig
from metricsd.postgres.base import PgCollector

C = TypeVar("C", bound=type[PgCollector])

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
