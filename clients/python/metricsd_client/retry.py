"""The one retry policy of metricsd's HTTP senders: alert receivers and the Python client.

Exponential backoff with *equal* jitter (half the delay fixed, half random, so retries
spread out but never come back at once), capped; a server's Retry-After (delta-seconds
or an HTTP date) is obeyed when it asks for longer, up to a cap of our own. Standard
library only: the client distribution (clients/python) ships an identical copy, kept
equal by tests/client/test_shared_rules.py.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number `attempt` (0 for the first retry)."""

    initial: float  # the first retry waits between initial/2 and initial
    maximum: float  # no backoff delay exceeds this
    max_retry_after: float  # a Retry-After beyond this is capped, not obeyed blindly

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Equal-jitter exponential delay; the server's Retry-After if that is longer."""
        base = min(self.maximum, self.initial * 2.0 ** max(0, attempt))
        delay = base / 2 + base / 2 * rng()
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait from `now`: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
