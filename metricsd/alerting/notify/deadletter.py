"""Dead letters: notifications no receiver took, appended as JSON lines for a human to replay."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson

from metricsd.alerting.stats import AlertingStats

log = logging.getLogger(__name__)


def _append(path: Path, line: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        handle.write(line)


class DeadLetterLog:
    """Appends one JSON object per undeliverable notification (alerting.dead_letter_file)."""

    def __init__(self, path: str | Path | None, stats: AlertingStats) -> None:
        self.path = Path(path) if path else None
        self.stats = stats
        self._failing = False

    async def append(self, record: dict[str, Any]) -> None:
        self.stats.dead_letters += 1
        line = orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"
        if self.path is None:
            log.error("undeliverable notification (no dead_letter_file): %s", line.decode())
            return
        try:
            await asyncio.to_thread(_append, self.path, line)
        except OSError as exc:
            if not self._failing:
                log.error("cannot append to dead-letter file %s: %s", self.path, exc)
                self._failing = True
            return
        self._failing = False
