"""PgCollector and Snapshot: the I/O half (scrape) and the pure half (families) of a view."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample as PromSample

from metricsd.config import PostgresConfig
from metricsd.errors import CollectorError
from metricsd.export.family import Family, RowList, escape_label_value, label_string, samples
from metricsd.labels import clean_all
from metricsd.postgres.targets import ServerInfo

# Relations someone holds or waits for in ACCESS EXCLUSIVE mode (a migration, VACUUM FULL,
# REINDEX): pg_relation_size() on them would queue behind the lock, so the views leave them
# out for that round instead of waiting, as pgwatch does. Used as `relid NOT IN (...)`.
LOCKED_RELATIONS_SQL = """
SELECT relation FROM pg_locks
WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND relation IS NOT NULL
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


PRIVILEGE_HINT = "the role needs pg_read_all_stats (GRANT pg_monitor TO <role>)"


class CollectorStatusError(CollectorError):
    """A failure the collector can name: `status` is the metricsd_pg_collector_status label."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Snapshot:
    """What one scrape of one collector on one target saw; never mutated once stored."""

    target: str
    collector: str
    taken_at: float
    data: Any
    # Set when the data is incomplete because the role lacks a privilege (what and the
    # grant): served anyway, with status insufficient_privilege (docs/postgres.md).
    missing_privilege: str = ""


class FamilyBuilder:
    """A snapshot's rows per declared family, one RowList each (target label first).

    Every label value PostgreSQL gives (catalog names, users, query text) passes
    metricsd.labels.clean here: escaped and bounded, never dropped.

    The label text is escaped once per series (and shared by all its families), so the
    writer formats one line per sample with an f-string, once per snapshot.
    """

    def __init__(self, families: Iterable[Family], target: str,
                 database: str | None = None) -> None:
        self.families = {family.name: family for family in families}
        self.target = target
        const = {"target": target}
        self._target_text = f'target="{escape_label_value(target)}"'
        if database is not None:  # a view of one database of a multi-database target
            const["datname"] = database = clean_all({"datname": database})["datname"]
            self._target_text += f',datname="{escape_label_value(database)}"'
        self.blocks: dict[str, RowList] = {
            name: RowList(const=dict(const)) for name in self.families}

    def _text(self, labels: dict[str, str]) -> str:
        if not labels:
            return self._target_text
        return f"{self._target_text},{label_string(labels)}"

    def add(self, name: str, value: float | None, **labels: str) -> None:
        """One sample; None means unknown and is left out rather than exported as NaN."""
        if value is not None:
            labels = clean_all(labels)
            self.blocks[name].add(labels, value, text=self._text(labels))

    def add_series(
        self, labels: dict[str, str], values: Iterable[tuple[str, float | None]]
    ) -> str:
        """Several families' samples of one series (same labels); returns its label text."""
        labels = clean_all(labels)
        text = self._text(labels)
        blocks = self.blocks
        for name, value in values:
            if value is not None:
                blocks[name].add(labels, value, text=text)
        return text

    def add_text(self, name: str, text: str, labels: dict[str, str], value: float) -> None:
        """A sample whose label text the caller built from `add_series`'s (target first)."""
        self.blocks[name].add(clean_all(labels), value, text=text)

    def metrics(self) -> list[Metric]:
        """prometheus_client families, for tests that look at one view's output."""
        out = []
        for name, family in self.families.items():
            metric = Metric(name, family.help, family.type)
            metric.samples = [PromSample(*s) for s in samples(family, self.blocks[name])]
            out.append(metric)
        return out


class PgCollector:
    """One statistics view of one target: `scrape` does the I/O, `families` is pure.

    One instance per (target, collector), so a collector may keep what it needs to diff
    consecutive scrapes (statements, database) between calls.
    """

    name: ClassVar[str]
    min_server_version: ClassVar[int] = 130000
    specs: ClassVar[tuple[Family, ...]] = ()  # every family it exports, made with `spec`
    # Reads the views of the database it is connected to (tables, indexes), not the whole
    # server: a target with `databases:` runs it once per database, labelled `datname`.
    per_database: ClassVar[bool] = False

    def __init__(self, target: str, config: PostgresConfig) -> None:
        self.target = target
        self.config = config
        self.database: str | None = None  # set for one database of a multi-database target

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        raise NotImplementedError

    def build(self, snapshot: Snapshot) -> FamilyBuilder:
        """The snapshot's samples, ready to render; pure."""
        builder = FamilyBuilder(self.specs, self.target, self.database)
        self.fill(builder, snapshot.data)
        return builder

    def families(self, snapshot: Snapshot) -> list[Metric]:
        return self.build(snapshot).metrics()

    def fill(self, out: FamilyBuilder, data: Any) -> None:
        """Add the samples of `data` (the snapshot's payload) to `out`."""
        raise NotImplementedError

    def snapshot(self, now: float, data: Any, missing_privilege: str = "") -> Snapshot:
        return Snapshot(self.target, self.name, now, data, missing_privilege)


def spec(name: str, kind: str, doc: str, *labels: str) -> Family:
    """A family of a target: every PostgreSQL series carries the `target` label first."""
    return Family(name, kind, doc, ("target", *labels))


async def fetch_one(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    """The row of a one-row statistics query; no row at all is a query error."""
    row = await conn.fetchrow(sql, *args)
    if row is None:
        raise CollectorStatusError("query_error", "the statistics query returned no row")
    return row


def epoch(value: Any) -> float | None:
    """A timestamptz (datetime) as Unix seconds, None stays None."""
    return None if value is None else float(value.timestamp())
