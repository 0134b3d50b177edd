"""Read views computed at most once per interval and shared by every concurrent reader.

Anyone who reaches the port may loop on `/` or `/v1/summary`; computing them per request
let such a loop stall beacon ingestion (issue 10). A `Cached` view keeps the latest
`Snapshot` with the instant it describes and recomputes it lazily, only when a reader
finds it older than `max_age`; readers that arrive while a computation runs await that
same computation instead of starting their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 1.0


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    """A computed view and the instant (Unix seconds) its figures describe."""

    value: T
    computed_at: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.computed_at)


class Cached(Generic[T]):
    """`compute(now)` run at most once per `max_age` seconds, its result shared."""

    def __init__(
        self,
        compute: Callable[[float], Awaitable[T]],
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._compute = compute
        self.max_age = max_age
        self.clock = clock
        self.latest: Snapshot[T] | None = None
        self.computations = 0  # how often compute ran: what "shared" is measured by
        self._running: asyncio.Task[Snapshot[T]] | None = None

    def fresh(self, now: float) -> Snapshot[T] | None:
        """The latest snapshot if it is younger than max_age at `now`, else None."""
        snap = self.latest
        if snap is not None and now - snap.computed_at < self.max_age:
            return snap
        return None

    async def get(self) -> Snapshot[T]:
        """The fresh snapshot, or the one being computed, or a new computation."""
        snap = self.fresh(self.clock())
        if snap is not None:
            return snap
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._run())
            self._running.add_done_callback(_retrieve)
        # A reader that goes away (client disconnect) must not cancel the shared work.
        return await asyncio.shield(self._running)

    def invalidate(self) -> None:
        """Forget the latest snapshot: the next reader computes (after a reload, in tests)."""
        self.latest = None

    async def close(self) -> None:
        """Cancel a computation in progress (shutdown)."""
        task, self._running = self._running, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> Snapshot[T]:
        try:
            now = self.clock()
            self.computations += 1
            snap = Snapshot(await self._compute(now), now)
            self.latest = snap
            return snap
        finally:
            self._running = None


def _retrieve(task: asyncio.Task[object]) -> None:
    """Mark a failed computation's exception as seen when every reader had left."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("view computation failed", exc_info=task.exception())
