"""The daemon's own ingest counters: plain ints, because the hot path cannot afford locks.

prometheus_client's Counter takes a lock on every inc(); beacons are counted here instead
and exported by metricsd.export.prometheus at scrape time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SelfMetrics:
    """Counters keyed by label tuples; exported as metricsd_ingest_* families."""

    # (beacon type,) -> items accepted
    accepted: Counter[str] = field(default_factory=Counter)
    # (beacon type, reason) -> items or requests rejected
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (beacon type, status code) -> HTTP requests answered
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    # (beacon type,) -> requests refused by the rate limiter
    rate_limited: Counter[str] = field(default_factory=Counter)
    # web-vitals reports of an id already seen: updated in place or ignored
    vitals_duplicates: Counter[str] = field(default_factory=Counter)
