"""The history file: SQLite in WAL mode, written by one thread, read by short connections.

Every write is a job on the writer thread, one transaction each, so a kill -9 loses at most
the transaction under way (WAL: the file itself stays consistent). A file that is not
SQLite, is corrupt, or belongs to something else is moved aside and a new one started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
APPLICATION_ID = 0x6D647468  # "mdth": a file with another id is not ours
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
  id INTEGER PRIMARY KEY, family TEXT NOT NULL, key TEXT NOT NULL, UNIQUE (family, key));
CREATE TABLE IF NOT EXISTS beacon_hours (
  hour INTEGER NOT NULL, series INTEGER NOT NULL, count INTEGER NOT NULL, total REAL NOT NULL,
  tags BLOB NOT NULL, bucket_idx BLOB NOT NULL, bucket_n BLOB NOT NULL,
  PRIMARY KEY (hour, series)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS statement_hours (
  hour INTEGER NOT NULL, target TEXT NOT NULL, queryid TEXT NOT NULL,
  calls INTEGER NOT NULL, time_s REAL NOT NULL, rows INTEGER NOT NULL,
  max_mean_s REAL, plan_hash TEXT,
  PRIMARY KEY (hour, target, queryid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS statements (
  target TEXT NOT NULL, queryid TEXT NOT NULL, query TEXT NOT NULL, first_seen REAL NOT NULL,
  PRIMARY KEY (target, queryid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plan_changes (
  target TEXT NOT NULL, queryid TEXT NOT NULL, at REAL NOT NULL,
  old_hash TEXT, new_hash TEXT, regression INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (target, queryid, at)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_hours (
  hour INTEGER NOT NULL, target TEXT NOT NULL, name TEXT NOT NULL, tbl TEXT NOT NULL,
  scans INTEGER NOT NULL, unused INTEGER NOT NULL, valid INTEGER NOT NULL,
  PRIMARY KEY (hour, target, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS target_hours (
  hour INTEGER NOT NULL, target TEXT NOT NULL,
  peak_connections INTEGER, max_connections INTEGER, peak_utilisation REAL,
  hit_ratio_sum REAL NOT NULL DEFAULT 0, hit_ratio_n INTEGER NOT NULL DEFAULT 0,
  peak_lag_s REAL,
  PRIMARY KEY (hour, target)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_events (
  at REAL NOT NULL, fingerprint TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
  labels TEXT NOT NULL,
  PRIMARY KEY (fingerprint, kind, at)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quality_hours (
  hour INTEGER NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL,
  PRIMARY KEY (hour, metric)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uptime_minutes (minute INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS reports (
  period TEXT PRIMARY KEY, built_at REAL NOT NULL, body TEXT NOT NULL);
"""
# Tables with a time column, and that column: retention and the size bound cut by it.
TIMED = {"beacon_hours": "hour", "statement_hours": "hour", "index_hours": "hour",
         "target_hours": "hour", "alert_events": "at", "quality_hours": "hour",
         "uptime_minutes": "minute * 60", "plan_changes": "at", "reports": "built_at"}


class ForeignFileError(Exception):
    """The file is SQLite but not a metricsd history file (or a newer schema)."""


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0,
                               check_same_thread=False)
    else:
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def _check(conn: sqlite3.Connection) -> None:
    """Raise unless the file is empty or ours, and intact."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id != APPLICATION_ID and (app_id != 0 or tables):
        raise ForeignFileError(f"application_id {app_id:#x} with {tables} tables")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ForeignFileError(f"schema version {version} is newer than {SCHEMA_VERSION}")
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise sqlite3.DatabaseError(f"quick_check: {result}")


def open_file(path: Path, clock: Callable[[], float] = time.time) -> tuple[sqlite3.Connection,
                                                                          str | None]:
    """Open (creating) the history file; move a bad one aside. Returns (conn, moved_to)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    moved: str | None = None
    for attempt in range(2):
        conn = _connect(path)
        try:
            _check(conn)  # before anything writes: a foreign file is left as it was
            conn.execute("PRAGMA journal_mode = WAL")
            if conn.execute("PRAGMA application_id").fetchone()[0] == 0:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                conn.execute("VACUUM")  # auto_vacuum takes effect on an empty file now
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.executescript(SCHEMA)
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: consistent after a crash
            return conn, moved
        except (sqlite3.DatabaseError, ForeignFileError) as exc:
            conn.close()
            if attempt:
                raise
            moved = f"{path}.bad-{int(clock())}"
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(f"{path}{suffix}"):
                    os.replace(f"{path}{suffix}", f"{moved}{suffix}")
            log.warning("history file %s is unusable (%s); moved aside to %s, starting a "
                        "new one", path, exc, moved)
    raise AssertionError("unreachable")  # pragma: no cover


class HistoryDB:
    """The writer thread and its connection; `write` and `read` for async callers."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.moved_aside: str | None = None
        self.write_seconds = 0.0
        self.writes = 0
        self.errors = 0
        self._jobs: queue.Queue[tuple[Callable[[sqlite3.Connection], Any], Future[Any]] | None]
        self._jobs = queue.Queue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    def start(self) -> None:
        """Open the file on the writer thread and start taking jobs."""
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="history-writer",
                                        daemon=True)
        self._thread.start()
        ready.result()

    def _run(self, ready: Future[None]) -> None:
        try:
            self._conn, self.moved_aside = open_file(self.path, self.clock)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        conn = self._conn
        while True:
            item = self._jobs.get()
            if item is None:
                break
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            started = time.perf_counter()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                future.set_result(result)
            except BaseException as exc:
                self.errors += 1
                future.set_exception(exc)
            self.writes += 1
            self.write_seconds += time.perf_counter() - started
        conn.close()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue one transaction on the writer thread."""
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        return future

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in one transaction on the writer thread; await its result."""
        return await asyncio.wrap_future(self.submit(fn))

    def stop(self) -> None:
        """Finish queued jobs, close the file."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A short read-only connection (WAL: readers never wait for the writer)."""
        conn = _connect(self.path, readonly=True)
        try:
            yield conn
        finally:
            conn.close()

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on a read-only connection in a worker thread."""
        def run() -> T:
            with self.reader() as conn:
                return fn(conn)
        return await asyncio.to_thread(run)

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                pass
        return total
