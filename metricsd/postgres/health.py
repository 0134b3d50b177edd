"""How each view's latest scrape went, and its stored rows: shared by targets and databases."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot


@dataclass
class CollectorHealth:
    """How the latest scrape of one collector on one target went."""

    status: str = "pending"
    message: str = ""
    duration_s: float | None = None
    last_run: float | None = None
    last_success: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    logged: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message,
                "duration_seconds": self.duration_s, "last_success": self.last_success}


@dataclass(frozen=True)
class Rendered:
    """A stored snapshot with its rows per family, built once when it is stored."""

    snapshot: Snapshot
    builder: FamilyBuilder


def render(collector: PgCollector, snapshot: Snapshot) -> Rendered:
    """Build a snapshot's rows once; the writer formats each block once, on first scrape."""
    return Rendered(snapshot, collector.build(snapshot))


class ViewSet:
    """Collector instances on one connection target (a server, or one of its databases)."""

    def __init__(self, collectors: dict[str, PgCollector]) -> None:
        self.collectors = collectors
        self.health = {name: CollectorHealth() for name in collectors}
        self.rendered: dict[str, Rendered | None] = dict.fromkeys(collectors)
        self.locks = {name: asyncio.Lock() for name in collectors}
        # Did the server answer on this connection target's own pool (the target's `up`)?
        self.up = False
        self.last_up: float | None = None
        self.down_logged = False  # the outage was logged; cleared when the server answers
        self.up_since = -float("inf")  # start time of the scrape that last set `up`

    def data(self, collector: str) -> Any:
        """The payload of the collector's latest successful snapshot, or None."""
        rendered = self.rendered.get(collector)
        return rendered.snapshot.data if rendered is not None else None

    def problems(self) -> list[str]:
        """Failing collectors and why, for /readyz and the page."""
        return [f"{name}: {health.message or health.status}"
                for name, health in self.health.items()
                # A view the server lacks is a skip, not a problem to show.
                if health.status not in ("ok", "pending", "unsupported_version")]
