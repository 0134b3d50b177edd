"""The history service: the tap, the rollups, the sampler and the file, with their jobs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from metricsd.config import HistoryConfig
from metricsd.history import writes
from metricsd.history.db import HistoryDB
from metricsd.history.rollup import HOUR, BeaconRollups
from metricsd.history.sampler import AlertReader, PgReader, Sampler
from metricsd.history.tap import Tap

log = logging.getLogger(__name__)


class HistoryService:
    """Queued samples become hourly rows on `flush`; PostgreSQL and alerts on `sample`."""

    def __init__(self, config: HistoryConfig, store: Any,
                 clock: Callable[[], float] = time.time) -> None:
        assert config.path is not None
        self.config = config
        self.store = store
        self.clock = clock
        self.db = HistoryDB(config.path, clock)
        self.tap = Tap(config.max_pending)
        self.rollups = BeaconRollups()
        self.sampler = Sampler()
        self.rows_written = 0
        self.flushes = 0
        self.flush_failures = 0
        self.rows_removed = 0
        self._refused_seen = sum(store.dropped.values()) if store is not None else 0
        self._tap_dropped_seen = 0
        self._lock = asyncio.Lock()
        # (family, key) -> series id, used on the writer thread only; emptied whenever a
        # transaction fails or retention may have removed series.
        self._series_ids: dict[tuple[str, tuple[str, ...]], int] = {}

    async def open(self) -> None:
        """Open (or create, or replace a bad) file on the writer thread; attach the tap."""
        await asyncio.to_thread(self.db.start)
        if self.store is not None:
            self.store.tap = self.tap

    async def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self.store is not None and self.store.tap is self.tap:
            self.store.tap = None
        try:
            await self.flush()
        finally:
            await asyncio.to_thread(self.db.stop)

    def _keys_of(self, family: str) -> dict[int, tuple[str, ...]]:
        """Slot -> series key of one store family, as it is now."""
        if self.store is None or family not in self.store.families:
            return {}
        return {slot: key for key, slot in self.store.families[family].slot_of.items()}

    async def flush(self, now: float | None = None) -> int:
        """Queued samples into rollups, rollups into the file (one transaction)."""
        async with self._lock:
            now = self.clock() if now is None else now
            self.tap.drain(self.rollups, self._keys_of)
            deltas = self.rollups.flush()
            quality: dict[str, float] = {}
            if self.store is not None:
                refused = sum(self.store.dropped.values())
                if refused > self._refused_seen:
                    quality["samples_refused"] = refused - self._refused_seen
                self._refused_seen = refused
            if self.tap.dropped > self._tap_dropped_seen:
                quality["history_samples_dropped"] = self.tap.dropped - self._tap_dropped_seen
                self._tap_dropped_seen = self.tap.dropped
            hour = int(now // HOUR) * HOUR

            def run(conn: Any) -> int:
                n = writes.merge_beacons(conn, deltas, self._series_ids)
                writes.mark_up(conn, int(now // 60))
                if quality:
                    writes.add_quality(conn, hour, quality)
                return n

            try:
                n = await self.db.write(run)
            except Exception:
                self._series_ids.clear()
                self.flush_failures += 1
                log.exception("history flush failed; %d rollup rows lost", len(deltas))
                return 0
            self.rows_written += n
            self.flushes += 1
            return n

    async def sample(self, pg: PgReader | None, plans: Any, alerts: AlertReader | None,
                     now: float | None = None) -> None:
        """PostgreSQL and alert facts of this instant into the file."""
        now = self.clock() if now is None else now
        facts = self.sampler.sample(now, pg, plans, alerts)
        hour = int(now // HOUR) * HOUR

        def run(conn: Any) -> None:
            writes.add_statements(conn, facts.statements)
            writes.add_plan_changes(conn, facts.plan_changes)
            writes.set_indexes(conn, hour, facts.indexes)
            writes.add_targets(conn, facts.targets)
            writes.add_alert_events(conn, facts.alerts)
            if facts.quality:
                writes.add_quality(conn, hour, facts.quality)

        try:
            await self.db.write(run)
        except Exception:
            log.exception("history sample failed")

    async def retain(self, now: float | None = None) -> int:
        """Cut rows past retention, then the oldest days beyond max_bytes."""
        now = self.clock() if now is None else now
        before = now - self.config.retention
        max_bytes = self.config.max_bytes

        def run(conn: Any) -> int:
            removed = writes.cut(conn, before)
            removed += writes.bound_size(conn, max_bytes)
            # incremental_vacuum frees one page per step and Python's execute() steps
            # once; executescript steps to the end, but only outside a transaction.
            conn.execute("COMMIT")
            conn.executescript("PRAGMA incremental_vacuum;")
            conn.execute("BEGIN IMMEDIATE")  # the writer's own COMMIT closes this one
            return int(removed)

        try:
            removed = await self.db.write(run)
        finally:
            self._series_ids.clear()
        self.rows_removed += removed
        return removed
