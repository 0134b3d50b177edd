"""What every beacon type shares: field checks, the batch loop and the registry.

A beacon type turns one JSON item into one `Sample` (or raises BeaconError with a reason
the sender can act on); the batch loop keeps the valid items of a batch and reports the
others by index. Validation is plain Python on purpose: it is the hot path, and a
pydantic model per item costs several times more than these few type checks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from metricsd import labels
from metricsd.config import IngestConfig
from metricsd.errors import BeaconError
from metricsd.export.beacons import View
from metricsd.export.family import Source
from metricsd.ingest.normalize import normalize_path
from metricsd.ingest.selfmetrics import SelfMetrics
from metricsd.store.series import FamilySpec, Store

# Client timestamps may run this far ahead of ours (clock skew) before they are refused;
# within it they are clamped to now, so windows never hold samples from the future.
MAX_CLOCK_SKEW_S = 300.0
# Oldest client timestamp accepted: older samples would only feed the cumulative
# histograms with data Prometheus can no longer place in time.
MAX_SAMPLE_AGE_S = 3600.0
# Epoch values above this are milliseconds (1e11 s is the year 5138).
_MS_EPOCH_THRESHOLD = 1e11
# How many per-item errors a response lists; the count of rejects is always exact.
MAX_ERRORS_REPORTED = 100


# One validated observation: (family, key, value, stamp, tag, extra, ident). A plain
# tuple on purpose (see metricsd.store.series.Observation); `ident` is the web-vitals id.
Sample = tuple[str, tuple[str, ...], float, float, int, int, str]


@dataclass
class Context:
    """Per-request facts a parser may need (arrival time, Referer)."""

    now: float
    referer: str | None = None
    user_agent: str | None = None  # device class when the beacon does not say (vitals)
    ch_mobile: str | None = None  # Sec-CH-UA-Mobile client hint


@dataclass
class BatchResult:
    """Outcome of one request: accepted count and (index, reason, message) per reject."""

    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, index: int, error: BeaconError, element: int | None = None) -> None:
        """Count one rejected sample; `element` places it inside a columnar series object."""
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_REPORTED:
            where: dict[str, Any] = {"index": index}
            if element is not None:
                where["element"] = element
            self.errors.append({**where, "reason": error.reason, "error": str(error)})


class BeaconType(ABC):
    """One beacon route: `/v1/beacons/<name>`."""

    name: ClassVar[str]
    needs_token: ClassVar[bool]  # server-to-server beacons carry a bearer token
    cors: ClassVar[bool]  # browser beacons are cross-origin
    # The store families this kind writes (created by ingest.setup before any beacon).
    series: ClassVar[tuple[FamilySpec, ...]] = ()

    @classmethod
    def store_families(cls, config: IngestConfig) -> tuple[FamilySpec, ...]:
        """The store families for this config: `series` unless bounds come from config."""
        return cls.series

    @classmethod
    def exports(cls, store: Store) -> list[View]:
        """The families /metrics shows of this kind's series (export/beacons.py builders)."""
        return []

    def sources(self) -> list[Source]:
        """Families this kind exports beside its store views (config, state of its own)."""
        return []

    def own_budget(self) -> int | None:
        """Series this kind may keep outside the store (None: it keeps none)."""
        return None

    def own_series(self) -> int:
        """Series this kind keeps outside the store now."""
        return 0

    def reloaded(self, previous: BeaconType) -> None:
        """Take over what must outlive a config reload from the instance this one replaces."""
        return None

    def __init__(self, config: IngestConfig, store: Store, counters: SelfMetrics) -> None:
        self.config = config
        self.store = store
        self.counters = counters
        self.max_len = config.max_string_length

    @abstractmethod
    def parse(self, item: Any, ctx: Context) -> Sample:
        """Validate one item; raise BeaconError saying what is wrong."""

    def count(self, items: list[Any]) -> int:
        """Samples in a decoded batch (what ingest.max_items bounds)."""
        return len(items)

    def ingest_body(self, body: bytes, ctx: Context) -> BatchResult | None:
        """Optional fast path straight from the raw body; None means use `ingest`."""
        return None

    def record(self, samples: list[Sample], result: BatchResult, indexes: list[int]) -> None:
        """Write valid samples; a sample refused for want of a series slot is a reject."""
        if not samples:
            return
        stored = self.store.observe_many(samples)
        for ok, index in zip(stored, indexes, strict=True):
            if ok:
                result.accepted += 1
            else:
                result.reject(index, SERIES_LIMIT)

    def ingest(self, items: list[Any], ctx: Context) -> BatchResult:
        """Parse every item, keep the valid ones, count and report the others."""
        result = BatchResult()
        samples: list[Sample] = []
        indexes: list[int] = []
        parse = self.parse
        for index, item in enumerate(items):
            try:
                samples.append(parse(item, ctx))
            except BeaconError as exc:
                result.reject(index, exc)
                self.counters.rejected[(self.name, exc.reason)] += 1
                continue
            indexes.append(index)
        before = result.rejected
        self.record(samples, result, indexes)
        if result.rejected > before:
            self.counters.rejected[(self.name, "series_limit")] += result.rejected - before
        self.counters.accepted[self.name] += result.accepted
        return result

    # --- field checks shared by the beacon types -------------------------------------

    def string(self, item: dict[str, Any], name: str, required: bool = True) -> str | None:
        """A label-bound text field, passed through metricsd.labels (the one choke point)."""
        value = item.get(name)
        if value is None:
            if required:
                raise BeaconError(f"{name} is required", "missing_field")
            return None
        if type(value) is not str:
            raise BeaconError(f"{name} must be a string", "wrong_type")
        if not value:
            raise BeaconError(f"{name} must be 1 to {self.max_len} characters", "bad_string")
        return labels.check(value, name, self.max_len)

    def path(self, raw: str, name: str) -> str:
        """A checked path normalised (`/orders/:id`); ids made longer still fit the bound."""
        path = normalize_path(raw)
        if len(path) > self.max_len:
            raise BeaconError(
                f"{name} is longer than {self.max_len} characters once ids become :id",
                "bad_string")
        return path


SERIES_LIMIT = BeaconError(
    "series limit reached (ingest.max_series, or this kind's share in ingest.budgets): "
    "sample dropped", "series_limit"
)


def _finite(value: Any) -> bool:
    """A JSON number that is a finite float or an int of any size (no float() overflow)."""
    kind = type(value)
    if kind is int:
        return True
    return kind is float and math.isfinite(value)


def number(item: dict[str, Any], name: str, low: float, high: float) -> float:
    """A finite JSON number (not a bool, not a string) within [low, high]."""
    value = item.get(name)
    if value is None:
        raise BeaconError(f"{name} is required", "missing_field")
    kind = type(value)
    if kind is not float and kind is not int:
        raise BeaconError(f"{name} must be a number", "wrong_type")
    if not _finite(value):
        raise BeaconError(f"{name} must be finite", "out_of_range")
    # Compared before float(): Python compares an int of any size exactly, while
    # float(10**400) raises OverflowError.
    if not low <= value <= high:
        raise BeaconError(f"{name} must be between {low:g} and {high:g}", "out_of_range")
    return float(value)


# Epoch values are compared against this before any arithmetic, so an int of any size is
# refused as out of range instead of overflowing a float division.
_MAX_EPOCH = 1e15


def stamp_in_range(value: float, now: float) -> float | None:
    """Unix seconds (or milliseconds) within the accepted range, clamped to now; else None."""
    if not -_MAX_EPOCH < value < _MAX_EPOCH:
        return None
    stamp = value / 1000.0 if value > _MS_EPOCH_THRESHOLD else float(value)
    if stamp > now + MAX_CLOCK_SKEW_S or stamp < now - MAX_SAMPLE_AGE_S:
        return None
    return min(stamp, now)


def timestamp(item: dict[str, Any], now: float) -> float:
    """Optional `timestamp`: Unix seconds (or milliseconds); defaults to arrival time."""
    value = item.get("timestamp")
    if value is None:
        return now
    if not _finite(value):
        raise BeaconError("timestamp must be Unix seconds or milliseconds", "wrong_type")
    stamp = stamp_in_range(value, now)
    if stamp is None:
        raise BeaconError(
            f"timestamp must be within {MAX_SAMPLE_AGE_S:g}s before and "
            f"{MAX_CLOCK_SKEW_S:g}s after the server's clock",
            "out_of_range",
        )
    return stamp


def as_object(item: Any) -> dict[str, Any]:
    if type(item) is not dict:
        raise BeaconError("each beacon must be a JSON object", "not_object")
    return item


BEACONS: dict[str, type[BeaconType]] = {}


def register(cls: type[BeaconType]) -> type[BeaconType]:
    """Class decorator: make `/v1/beacons/<cls.name>` route to this type."""
    if cls.name in BEACONS:
        raise RuntimeError(f"beacon type {cls.name!r} registered twice")
    BEACONS[cls.name] = cls
    return cls
