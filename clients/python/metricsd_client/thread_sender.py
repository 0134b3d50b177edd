"""Batches beacons from WSGI apps (Flask, Django) and threaded code on a daemon thread.

http.client keeps one connection open between batches; the thread starts on the first
timing in each process, so pre-forking servers (gunicorn --preload) get one per worker.
"""

from __future__ import annotations

import atexit
import http.client
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from metricsd_client.base import Item, TimingSender
from metricsd_client.retry import parse_retry_after


class ThreadSender(TimingSender):
    """Thread-safe `record()`; a daemon thread posts batches and flushes at exit."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wake_event = threading.Event()
        self._closing = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        if hasattr(os, "register_at_fork"):
            # A weak reference: fork hooks cannot be unregistered, senders can be collected.
            method = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: _call_alive(method))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def record(self, route: str, method: str, status: int, duration: float) -> None:
        """Queue one timing and start the thread the first time (cheap check after that)."""
        if self._thread is None:
            self.start()
        super().record(route, method, status, duration)

    def record_operation(self, operation: str, duration: float, outcome: str = "ok") -> None:
        """Queue one operation and start the thread the first time."""
        if self._thread is None:
            self.start()
        super().record_operation(operation, duration, outcome)

    def start(self) -> None:
        """Start the sender thread once per process."""
        with self._start_lock:
            if self._thread is not None:
                return
            self._closing.clear()
            thread = threading.Thread(target=self._run, name="metricsd-client-sender", daemon=True)
            thread.start()
            self._thread = thread
            atexit.register(self.close)

    def _wake(self) -> None:
        self._wake_event.set()

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (one attempt per batch) and stop the thread, within the timeout."""
        timeout = self.close_timeout if timeout is None else timeout
        thread = self._thread
        if thread is None:
            return
        atexit.unregister(self.close)
        self._closing.set()
        self._wake_event.set()
        thread.join(timeout)
        if thread.is_alive():
            # The thread still accounts for its in-flight batch when that attempt ends;
            # what is queued behind it is given up now.
            left: list[Item] = [*self._queue, *self._operations, *self._reports]
            self._queue.clear()
            self._operations.clear()
            self._reports.clear()
            if left:
                self._note_failed(left, f"shutdown flush took longer than {timeout}s")

    def _after_fork(self) -> None:
        """The parent's thread does not exist in a forked child: start a fresh one on demand."""
        self._thread = None
        self._start_lock = threading.Lock()
        self._count_lock = threading.Lock()  # another thread may have held it at fork time
        self._conn = None
        self._queue.clear()  # the parent sends these; sending them twice would double count
        self._operations.clear()
        self._reports.clear()

    def _run(self) -> None:
        try:
            while not self._closing.is_set():
                self._wake_event.wait(self.interval)
                self._wake_event.clear()
                self._drain()
            self._drain()
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _drain(self) -> None:
        self.collect_caches(force=self._closing.is_set())
        while True:
            kind, batch = self._take()
            if not batch:
                return
            self._inflight = batch
            try:
                self._deliver(kind, batch)
            except Exception as exc:  # a bug or odd input must not end the sender for good
                self._note_failed(batch, f"{type(exc).__name__}: {exc}")
            self._inflight = []

    def _deliver(self, kind: str, batch: list[Item]) -> None:
        """Post one batch until `after_attempt` says stop; halves are delivered in turn."""
        for attempt in range(self.max_attempts):
            body = self.encode_kind(kind, batch, retry=attempt > 0)
            status, retry_after, detail = self._post(body, self.endpoint.path_for(kind))
            step = self.after_attempt(batch, attempt, status, retry_after, detail,
                                      self._closing.is_set())
            if step.halves is not None:
                for half in step.halves:
                    self._deliver(kind, half)
                return
            if step.wait is None:
                return
            # Event.wait returns early when close() is called: shutdown never waits a backoff.
            self._closing.wait(step.wait)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = (http.client.HTTPSConnection if self.endpoint.scheme == "https"
                   else http.client.HTTPConnection)
            self._conn = cls(self.endpoint.host, self.endpoint.port, timeout=self.timeout)
        return self._conn

    def _post(self, body: bytes, path: str) -> tuple[int, float | None, str]:
        """(status, Retry-After, reason); status 0 for a connection error or timeout."""
        conn = self._connection()
        try:
            conn.request("POST", path, body=body, headers=self.headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._conn = None
            return 0, None, f"connection: {type(exc).__name__}: {exc}"
        if resp.will_close:
            conn.close()
            self._conn = None
        text = data.decode("utf-8", "replace") if resp.status >= 300 else ""
        return resp.status, parse_retry_after(resp.getheader("Retry-After")), text


def _call_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    """Run a fork hook if its sender still exists."""
    bound = method()
    if bound is not None:
        bound()
