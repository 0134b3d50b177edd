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


# --- Dimensions and the assessment (issue 17) ----------------------------------------
# Bounded label values: anything else a client sends becomes "unknown".
DEVICES: tuple[str, ...] = ("mobile", "tablet", "desktop", "unknown")
CONNECTIONS: tuple[str, ...] = ("4g", "3g", "2g", "slow-2g", "unknown")
# The three vitals the Core Web Vitals assessment judges at the 75th percentile.
ASSESSED: tuple[str, ...] = ("LCP", "INP", "CLS")
ASSESSMENT_QUANTILE = 0.75


def device_class(sent: object, user_agent: str | None, ch_mobile: str | None) -> str:
    """The client's own device class when valid; else client hints, else the User-Agent.

    `Sec-CH-UA-Mobile: ?1` means a phone; `?0` is not enough for desktop (tablets send it
    too), so the User-Agent decides then: iPad or Android without "Mobile" is a tablet,
    "Mobi", iPhone or Android is a phone, any other browser User-Agent is a desktop.
    """
    if type(sent) is str and sent in DEVICES and sent != "unknown":
        return sent
    if ch_mobile is not None and ch_mobile.strip() == "?1":
        return "mobile"
    if not user_agent:
        return "unknown"
    ua = user_agent.lower()
    if "ipad" in ua or "tablet" in ua or ("android" in ua and "mobile" not in ua):
        return "tablet"
    if "mobi" in ua or "iphone" in ua or "android" in ua:
        return "mobile"
    if "mozilla/" in ua:
        return "desktop"
    return "unknown"


def connection_type(sent: object) -> str:
    """navigator.connection.effectiveType as sent, or "unknown"."""
    return sent if type(sent) is str and sent in CONNECTIONS else "unknown"


def passes(p75: dict[str, float | None]) -> bool:
    """Core Web Vitals pass: every assessed vital with data has a good p75.

    As CrUX does, a vital without data (no interaction: no INP) is not held against the
    page; LCP and CLS are always reported by a page view, so they decide then.
    """
    judged = [(name, value) for name, value in p75.items()
              if name in ASSESSED and value is not None]
    return bool(judged) and all(VITALS[name].rating_index(value) == 0 for name, value in judged)
