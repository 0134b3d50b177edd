"""Alert state on disk: one small JSON file, replaced atomically on every change.

Holds the engine's alerts (state, active_at, fired_at...) and the notification log (what
each group last told each receiver, and when), which together make a restart neither page
again for an alert already delivered nor forget one that resolved while metricsd was down.
Writes go through a thread (os.fsync would block the loop) and coalesce: a burst of
changes becomes at most one write in flight and one queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metricsd.alerting.stats import AlertingStats

log = logging.getLogger(__name__)

STATE_VERSION = 1


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"), allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def read_state(path: Path) -> dict[str, Any]:
    """The saved state, or an empty one when there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable alert state file %s: %s", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        log.warning("ignoring alert state file %s: unknown format", path)
        return {}
    return data


class StateFile:
    """Coalescing, atomic persistence of a snapshot the owner builds on demand."""

    def __init__(self, path: str | Path | None, snapshot: Callable[[], dict[str, Any]],
                 stats: AlertingStats) -> None:
        self.path = Path(path) if path else None
        self._snapshot = snapshot
        self._stats = stats
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def load(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        return await asyncio.to_thread(read_state, self.path)

    def request_save(self) -> None:
        """Mark the state changed; a background task writes it soon (never blocks)."""
        if self.path is None:
            return
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._writer())

    async def _writer(self) -> None:
        assert self.path is not None
        while self._dirty:
            self._dirty = False
            data = {"version": STATE_VERSION, **self._snapshot()}
            try:
                await asyncio.to_thread(write_atomic, self.path, data)
            except (OSError, ValueError) as exc:
                self._stats.state_write_failures += 1
                if not self._failing:
                    log.error("cannot write alert state file %s: %s", self.path, exc)
                    self._failing = True
                continue
            self._stats.state_writes += 1
            if self._failing:
                log.info("alert state file %s is written again", self.path)
                self._failing = False

    async def flush(self) -> None:
        """Wait until every requested save is on disk (shutdown, tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._dirty:
            self.request_save()
            await self.flush()
