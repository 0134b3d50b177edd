"""What a receiver is asked to deliver: one aggregation group's alerts at one flush."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote_plus

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing


def rfc3339(ts: float | None) -> str:
    """Unix seconds as RFC 3339 in UTC; None as Go's zero time, as Alertmanager writes it."""
    if ts is None:
        return ZERO_TIME
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def generator_url(external_url: str, expr: str) -> str:
    """The Prometheus-style link to the expression, like Prometheus puts in generatorURL."""
    return f"{external_url.rstrip('/')}/graph?g0.expr={quote_plus(expr)}&g0.tab=1"


@dataclass(frozen=True)
class NotifyAlert:
    """One alert as notifications show it (immutable copy of the engine's state)."""

    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None  # set once resolved
    generator_url: str = ""
    value: float | None = None

    @property
    def status(self) -> str:
        return "resolved" if self.ends_at is not None else "firing"


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = dict(maps[0])
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


@dataclass(frozen=True)
class Notification:
    """One group's notification for one receiver."""

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    alerts: Sequence[NotifyAlert]
    external_url: str = ""
    truncated: int = field(default=0)

    @property
    def status(self) -> str:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    @property
    def firing(self) -> list[NotifyAlert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[NotifyAlert]:
        return [a for a in self.alerts if a.status == "resolved"]

    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])
