"""Web Vitals: the one home of their names, units, thresholds, buckets and rating rule.

Ingest rates each report with `rating_index`, the store sizes its histograms from
`buckets`, export names families with `histogram_name` / `window_name`, and the page and
the dashboard builder colour values with the same thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RATINGS: tuple[str, ...] = ("good", "needs-improvement", "poor")
NAVIGATION_TYPES: tuple[str, ...] = (
    "navigate", "reload", "back-forward", "back-forward-cache", "prerender", "restore",
    "soft-navigation", "other",
)  # fmt: skip


@dataclass(frozen=True)
class VitalSpec:
    """One Web Vital: its exported unit and Google's good / poor thresholds (base units)."""

    name: str  # web-vitals name, e.g. "LCP"
    unit: str  # "seconds" or "" (CLS)
    good: float
    poor: float
    buckets: tuple[float, ...]
    help: str

    @property
    def histogram_name(self) -> str:
        """`metricsd_web_vitals_lcp_seconds`, or `metricsd_web_vitals_cls` (unitless)."""
        base = f"metricsd_web_vitals_{self.name.lower()}"
        return f"{base}_{self.unit}" if self.unit else base

    @property
    def window_name(self) -> str:
        """`metricsd_web_vitals_lcp_window_seconds`, `metricsd_web_vitals_cls_window`."""
        base = f"metricsd_web_vitals_{self.name.lower()}_window"
        return f"{base}_{self.unit}" if self.unit else base

    def rating_index(self, value: float) -> int:
        """Index into RATINGS: good <= good < needs-improvement <= poor < poor."""
        if value <= self.good:
            return 0
        return 1 if value <= self.poor else 2


def _buckets(good: float, poor: float, extra: Sequence[float]) -> tuple[float, ...]:
    return tuple(sorted({good, poor, *extra}))


VITALS: dict[str, VitalSpec] = {
    spec.name: spec
    for spec in (
        VitalSpec("LCP", "seconds", 2.5, 4.0, _buckets(2.5, 4.0, (
            0.5, 1.0, 1.5, 2.0, 3.0, 3.5, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0)),
            "Largest Contentful Paint"),
        VitalSpec("INP", "seconds", 0.2, 0.5, _buckets(0.2, 0.5, (
            0.025, 0.05, 0.1, 0.15, 0.25, 0.3, 0.4, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)),
            "Interaction to Next Paint"),
        VitalSpec("CLS", "", 0.1, 0.25, _buckets(0.1, 0.25, (
            0.01, 0.025, 0.05, 0.075, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0)),
            "Cumulative Layout Shift (unitless)"),
        VitalSpec("FCP", "seconds", 1.8, 3.0, _buckets(1.8, 3.0, (
            0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 4.0, 5.0, 7.5, 10.0, 20.0)),
            "First Contentful Paint"),
        VitalSpec("TTFB", "seconds", 0.8, 1.8, _buckets(0.8, 1.8, (
            0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0, 1.2, 1.5, 2.5, 3.0, 5.0, 10.0)),
            "Time to First Byte"),
        VitalSpec("FID", "seconds", 0.1, 0.3, _buckets(0.1, 0.3, (
            0.01, 0.025, 0.05, 0.075, 0.15, 0.2, 0.25, 0.5, 0.75, 1.0, 2.0)),
            "First Input Delay (deprecated, from old web-vitals clients)"),
    )
}  # fmt: skip
# Shown on the page and the dashboard even before any report; FID only when reported.
CORE: tuple[str, ...] = ("LCP", "INP", "CLS", "FCP", "TTFB")


def rating(name: str, value: float | None) -> str | None:
    """The rating of a value of vital `name` as text; None for no value."""
    return None if value is None else RATINGS[VITALS[name].rating_index(value)]
