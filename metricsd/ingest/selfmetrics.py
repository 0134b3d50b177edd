"""The daemon's own ingest counters: plain ints, because the hot path cannot afford locks.

prometheus_client's Counter takes a lock on every inc(); beacons are counted here instead
and exported by `IngestSource` at scrape time, with the series budget of the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metricsd import __version__
from metricsd.export.family import Family, Reader, RowList, Rows
from metricsd.store.series import Store


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
    # (beacon type,) -> items counted under page="other" because the page budget was spent
    pages_other: Counter[str] = field(default_factory=Counter)


FAMILIES: tuple[Family, ...] = (
    Family("metricsd_build_info", "gauge", "metricsd version; always 1", ("version",)),
    Family("metricsd_ingest_accepted", "counter", "Beacon items accepted", ("type",)),
    Family("metricsd_ingest_rejected", "counter", "Beacon items or requests rejected by reason",
           ("type", "reason")),
    Family("metricsd_ingest_requests", "counter", "Beacon HTTP requests by response code",
           ("type", "code")),
    Family("metricsd_ingest_rate_limited", "counter", "Beacon requests answered 429",
           ("type",)),
    Family("metricsd_ingest_vitals_duplicates", "counter",
           "Repeated web-vitals ids: updated in place or ignored", ("action",)),
    Family("metricsd_ingest_pages_other", "counter",
           "Beacon items counted under page=\"other\": ingest.pages.budget was spent",
           ("type",)),
    Family("metricsd_series", "gauge", "Live series per family", ("family",)),
    Family("metricsd_series_limit", "gauge", "ingest.max_series"),
    Family("metricsd_series_dropped_samples", "counter",
           "Samples refused because ingest.max_series was reached", ("family",)),
    Family("metricsd_series_expired", "counter",
           "Series removed after ingest.series_idle_timeout", ("family",)),
)


def _rows(names: tuple[str, ...], counts: Mapping[Any, int]) -> RowList:
    """A family's rows from a mapping of label value (or tuple of them) to count."""
    out = RowList()
    for key, value in counts.items():
        values = key if isinstance(key, tuple) else (key,)
        out.add(dict(zip(names, map(str, values), strict=True)), value)
    return out


class IngestSource:
    """The daemon's build info, ingest counters and series budget as families."""

    def __init__(self, store: Store, counters: SelfMetrics) -> None:
        self.store = store
        self.counters = counters

    @property
    def families(self) -> Sequence[Family]:
        return FAMILIES

    async def prepare(self, now: float) -> None:
        """Counters need no preparation."""

    def read(self) -> Reader:
        c, store = self.counters, self.store
        series = {name: len(family) for name, family in store.families.items()}
        counts: dict[str, Mapping[Any, int]] = {
            "metricsd_build_info": {__version__: 1},
            "metricsd_ingest_accepted": c.accepted,
            "metricsd_ingest_rejected": c.rejected,
            "metricsd_ingest_requests": c.requests,
            "metricsd_ingest_rate_limited": c.rate_limited,
            "metricsd_ingest_vitals_duplicates": c.vitals_duplicates,
            "metricsd_ingest_pages_other": c.pages_other,
            "metricsd_series": series,
            "metricsd_series_limit": {(): store.pool.slots},
            "metricsd_series_dropped_samples": store.dropped,
            "metricsd_series_expired": store.expired,
        }

        def rows(family: Family) -> list[Rows]:
            block = _rows(family.labels, counts[family.name])
            return [block] if len(block) else []  # an empty family is left out

        return rows
