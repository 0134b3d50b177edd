"""Dead letters: notifications no receiver took, appended as JSON lines for a human to replay.

A dead letter must never vanish. One that cannot be written (disk full, permissions, a
directory where the file should be) stays in a bounded in-memory buffer and is retried on
the next dead letter and on every evaluation tick; each failed write is counted
(`metricsd_alert_dead_letter_write_failures_total`) and logged with the alert names it
carries. Past `alerting.dead_letter_buffer` the oldest is given up, but only after it has
been logged in full at ERROR (`..._dead_letters_dropped_total`), and whatever is still
buffered at shutdown is logged the same way. Writes are at least once: a retry after a
partial write may repeat a line.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from metricsd.alerting.stats import AlertingStats

log = logging.getLogger(__name__)


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()


class DeadLetterLog:
    """Appends one JSON object per undeliverable notification (alerting.dead_letter_file)."""

    def __init__(self, path: str | Path | None, stats: AlertingStats,
                 buffer: int = 1000) -> None:
        self.path = Path(path) if path else None
        self.stats = stats
        self.buffer = buffer
        self.pending: deque[tuple[str, bytes]] = deque()  # (alert names, JSON line)
        self._lock = asyncio.Lock()

    async def append(self, record: dict[str, Any], alerts: str = "") -> None:
        """Record one dead letter for `alerts` (their names, for the log); never raises."""
        self.stats.dead_letters += 1
        line = orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"
        if self.path is None:
            log.error("undeliverable notification for %s (no dead_letter_file): %s",
                      alerts or "?", line.decode())
            return
        self.pending.append((alerts, line))
        while len(self.pending) > self.buffer:
            names, dropped = self.pending.popleft()
            self.stats.dead_letters_dropped += 1
            log.error("dead-letter buffer full (%d): giving up writing the dead letter for "
                      "%s, here it is: %s", self.buffer, names or "?", dropped.decode())
        await self.retry()
        self.stats.dead_letters_pending = len(self.pending)

    async def retry(self) -> bool:
        """Write every buffered dead letter; True when none is left."""
        if self.path is None:
            return True
        async with self._lock:
            if not self.pending:
                return True
            batch = list(self.pending)
            try:
                await asyncio.to_thread(_append, self.path, b"".join(line for _, line in batch))
            except OSError as exc:
                self.stats.dead_letter_write_failures += 1
                names = ", ".join(sorted({n for n, _ in batch if n})) or "?"
                log.error("cannot write %d dead letter(s) for %s to %s: %s (kept in memory, "
                          "retried)", len(batch), names, self.path, exc.strerror or exc)
                return False
            for _ in batch:
                self.pending.popleft()
            self.stats.dead_letters_pending = len(self.pending)
            return True

    async def close(self) -> None:
        """Last try at shutdown; what still cannot be written goes to the log in full."""
        if await self.retry():
            return
        while self.pending:
            names, line = self.pending.popleft()
            log.error("dead letter for %s could not be written before shutdown: %s",
                      names or "?", line.decode())
        self.stats.dead_letters_pending = 0
