"""Batches beacons from asyncio apps (aiohttp, Starlette, FastAPI) on one keep-alive connection."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import aiohttp

from metricsd_client.base import Item, TimingSender
from metricsd_client.retry import parse_retry_after


class AsyncSender(TimingSender):
    """A task on the app's event loop; `record()` from that loop, operations from any thread."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._wake_event: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the background task on the running loop (idempotent)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()  # fail loudly outside the app's loop
        self._loop_thread = threading.get_ident()
        self._wake_event = asyncio.Event()
        self._closing = asyncio.Event()
        # limit=1: every batch reuses one keep-alive connection; batches are sequential.
        connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )
        self._task = asyncio.create_task(self._run(), name="metricsd-client-sender")

    def _wake(self) -> None:
        event, loop = self._wake_event, self._loop
        if event is None or loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            event.set()
        else:  # record_operation from a worker thread (run_in_executor): no direct Event.set
            with contextlib.suppress(RuntimeError):  # the loop is closed: the interval sends
                loop.call_soon_threadsafe(event.set)

    async def close(self) -> None:
        """Send what is queued (one attempt per batch, within close_timeout), then stop."""
        timeout = self.close_timeout
        task = self._task
        if task is None or self._closing is None or self._wake_event is None:
            return
        self._closing.set()
        self._wake_event.set()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            left = self._inflight + self._take_all()
            self._inflight = []
            if left:
                self._note_failed(left, f"shutdown flush took longer than {timeout}s")
        finally:
            if self._session is not None:
                await self._session.close()

    def _take_all(self) -> list[Item]:
        left: list[Item] = []
        while True:
            _, batch = self._take()
            if not batch:
                return left
            left += batch

    async def _run(self) -> None:
        assert self._wake_event is not None and self._closing is not None
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake_event.wait()
            self._wake_event.clear()
            await self._drain()
        await self._drain()

    async def _drain(self) -> None:
        assert self._closing is not None
        self.collect_caches(force=self._closing.is_set())
        while True:
            kind, batch = self._take()
            if not batch:
                return
            self._inflight = batch
            try:
                await self._deliver(kind, batch)
            except Exception as exc:  # a bug or odd input must not end the sender for good
                self._note_failed(batch, f"{type(exc).__name__}: {exc}")
            self._inflight = []

    async def _deliver(self, kind: str, batch: list[Item]) -> None:
        """Post one batch until `after_attempt` says stop; halves are delivered in turn."""
        assert self._closing is not None
        url = self.endpoint.url_for(kind)
        for attempt in range(self.max_attempts):
            body = self.encode_kind(kind, batch, retry=attempt > 0)
            status, retry_after, detail = await self._post(body, url)
            step = self.after_attempt(batch, attempt, status, retry_after, detail,
                                      self._closing.is_set())
            if step.halves is not None:
                for half in step.halves:
                    await self._deliver(kind, half)
                return
            if step.wait is None:
                return
            # Sleep, but wake up at once for shutdown so close() is not held by a backoff.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(step.wait):
                    await self._closing.wait()

    async def _post(self, body: bytes, url: str) -> tuple[int, float | None, str]:
        """(status, Retry-After, reason); status 0 for a connection error or timeout."""
        assert self._session is not None
        try:
            async with self._session.post(url, data=body) as resp:
                text = await resp.text() if resp.status >= 300 else ""
                await resp.read()
                return resp.status, parse_retry_after(resp.headers.get("Retry-After")), text
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return 0, None, f"connection: {type(exc).__name__}: {exc}"
