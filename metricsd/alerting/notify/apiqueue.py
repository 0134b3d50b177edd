"""One Alertmanager's send queue: bounded, oldest dropped first, drained in bounded batches.

Like Prometheus's notifier: alerts wait in a queue of `capacity`; when it is full the
oldest are dropped (and counted), because newer copies of the same alerts carry fresher
`endsAt`. One task per Alertmanager drains it, `max_batch` alerts per
`POST /api/v2/alerts`, one attempt each: a batch that fails is counted and not retried,
since every firing or resolved alert is offered again after `resend_delay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson

from metricsd.alerting.stats import AlertingStats

log = logging.getLogger(__name__)

API_PATH = "/api/v2/alerts"


def alerts_endpoint(base: str) -> str:
    """The alerts API of an Alertmanager given by its base URL (a path prefix is kept)."""
    base = base.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


class AlertQueue:
    """The queue and sender task of one Alertmanager for one receiver."""

    def __init__(
        self,
        receiver: str,
        base_url: str,
        capacity: int,
        max_batch: int,
        timeout: float,
        headers: Callable[[bytes], Mapping[str, str]],
        stats: AlertingStats,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.receiver = receiver
        self.base_url = base_url
        self.url = alerts_endpoint(base_url)
        self.max_batch = max_batch
        self.timeout = timeout
        self.headers = headers
        self.session: Callable[[], aiohttp.ClientSession] | None = None
        self.stats = stats
        self.on_change = on_change
        self.key = (receiver, base_url)
        self.up = True
        self._queue: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.stats.am_queue_length[self.key] = 0

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, alerts: list[dict[str, Any]],
            session: Callable[[], aiohttp.ClientSession]) -> None:
        """Enqueue without waiting; a full queue drops its oldest alerts and counts them."""
        self.session = session
        if not alerts:
            return
        overflow = len(self._queue) + len(alerts) - (self._queue.maxlen or 0)
        if overflow > 0:
            self.stats.am_dropped[self.key] += overflow
        self._queue.extend(alerts)  # deque(maxlen) discards from the left: the oldest
        self.stats.am_queue_length[self.key] = len(self._queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"alerts:alertmanager:{self.receiver}:{self.base_url}")
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._idle.clear()
            while self._queue:
                batch = [self._queue.popleft()
                         for _ in range(min(self.max_batch, len(self._queue)))]
                self.stats.am_queue_length[self.key] = len(self._queue)
                try:
                    await self._post(batch)
                except Exception:  # a bug must not stop the sender task
                    log.exception("sending to Alertmanager %s failed", self.url)
                    self.stats.am_failed[self.key] += len(batch)
            self._idle.set()

    async def _post(self, batch: list[dict[str, Any]]) -> None:
        assert self.session is not None  # put() sets it before starting the task
        body = orjson.dumps(batch)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        error = ""
        try:
            async with self.session().post(self.url, data=body, headers=self.headers(body),
                                           timeout=timeout, allow_redirects=False) as resp:
                text = await resp.text(errors="replace")
                if 200 <= resp.status < 300:
                    self.stats.am_sent[self.key] += len(batch)
                    self._mark(True, "")
                    return
                error = f"HTTP {resp.status}: {text[:200].strip()}"
        except TimeoutError:
            error = f"timed out after {self.timeout:g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.stats.am_failed[self.key] += len(batch)
        self._mark(False, error)

    def _mark(self, ok: bool, error: str) -> None:
        if ok and not self.up:
            log.info("Alertmanager %s accepts alerts again", self.url)
        elif not ok and self.up:
            log.warning("Alertmanager %s refuses alerts: %s (logged once until it recovers)",
                        self.url, error)
        if ok != self.up:
            self.up = ok
            self.on_change()

    async def close(self, budget: float) -> None:
        """Shutdown: drain the queue for up to `budget` seconds (as Prometheus does), then
        stop; what is left is dropped and counted."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), budget)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue:
            self.stats.am_dropped[self.key] += len(self._queue)
            self._queue.clear()
            self.stats.am_queue_length[self.key] = 0
