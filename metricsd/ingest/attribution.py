"""Web Vitals attribution: the few fields that explain a value, validated and summarised.

web-vitals' attribution build says which element and which script made a page slow.
metricsd keeps, per page and vital, a bounded heavy-hitters summary of targets (selectors,
never Prometheus labels) and the window distribution of each sub-part (exported as the
`part` label of `metricsd_web_vitals_attribution_window_seconds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from metricsd import labels
from metricsd.errors import BeaconError
from metricsd.vitals import VITALS

# Sub-parts in milliseconds as web-vitals sends them -> the `part` label value.
PARTS: dict[str, dict[str, str]] = {
    "INP": {"inputDelay": "inp_input_delay", "processingDuration": "inp_processing_duration",
            "presentationDelay": "inp_presentation_delay"},
    "LCP": {"timeToFirstByte": "lcp_time_to_first_byte",
            "resourceLoadDelay": "lcp_resource_load_delay",
            "resourceLoadDuration": "lcp_resource_load_duration",
            "elementRenderDelay": "lcp_element_render_delay"},
}
PART_NAMES: tuple[str, ...] = tuple(p for parts in PARTS.values() for p in parts.values())
ATTRIBUTED: tuple[str, ...] = ("INP", "LCP", "CLS")
INTERACTION_TYPES = ("pointer", "keyboard")
TOP_K = 10  # targets kept per page and vital (Space-Saving: error bounded by weight/k)


@dataclass(frozen=True)
class Attribution:
    """What one report says about its cause; every text already label-checked."""

    target: str | None
    parts: tuple[tuple[str, float], ...]  # (part label, seconds)
    interaction: str | None = None
    resource: str | None = None  # LCP resource URL path
    script: str | None = None  # INP: the longest script's source URL (LoAF)


def _url(value: str, keep_origin: bool) -> str:
    """A URL without query or fragment: its path (LCP) or origin and path (scripts)."""
    try:
        split = urlsplit(value)
    except ValueError:
        raise BeaconError("attribution URL is not a URL", "bad_attribution") from None
    if keep_origin and split.scheme in ("http", "https") and split.netloc:
        return f"{split.scheme}://{split.netloc}{split.path}"
    return split.path or "/"


def parse(vital: str, raw: Any, max_len: int, max_ms: float) -> Attribution | None:
    """The attribution object of one report, or None; BeaconError on a bad field."""
    if raw is None or vital not in ATTRIBUTED:
        return None
    if type(raw) is not dict:
        raise BeaconError("attribution must be an object", "bad_attribution")

    def text(name: str) -> str | None:
        value = raw.get(name)
        if value is None or value == "":
            return None
        if type(value) is not str:
            raise BeaconError(f"attribution.{name} must be a string", "bad_attribution")
        return labels.check(value[: max_len * 4], f"attribution.{name}", max_len * 4)[:max_len]

    parts = []
    for field_name, part in PARTS.get(vital, {}).items():
        value = raw.get(field_name)
        if value is None:
            continue
        if type(value) not in (int, float) or not 0 <= value <= max_ms:
            raise BeaconError(f"attribution.{field_name} must be 0 to {max_ms:g} ms",
                              "bad_attribution")
        parts.append((part, float(value) / 1000.0))
    interaction = text("interactionType")
    if interaction is not None and interaction not in INTERACTION_TYPES:
        interaction = None
    url = text("url")
    script = text("scriptURL")
    return Attribution(
        target=text("target"), parts=tuple(parts), interaction=interaction,
        resource=_url(url, False)[:max_len] if url else None,
        script=_url(script, True)[:max_len] if script else None,
    )


def weight(vital: str, value: float) -> float:
    """A report's share in "what makes this page slow": its value over the good line.

    A good report weighs at most 1 and a poor one more than poor/good (2.5 for INP), so
    targets behind poor experiences rise to the top.
    """
    return value / VITALS[vital].good


@dataclass
class Hitter:
    weight: float = 0.0
    reports: int = 0
    poor: int = 0
    error: float = 0.0  # Space-Saving over-estimate inherited from the evicted entry


@dataclass
class HeavyHitters:
    """Space-Saving (Metwally et al.) over weights: at most `k` keys, any stream length."""

    k: int = TOP_K
    items: dict[str, Hitter] = field(default_factory=dict)

    def add(self, key: str, w: float, poor: bool) -> None:
        hit = self.items.get(key)
        if hit is None:
            if len(self.items) >= self.k:
                victim = min(self.items, key=lambda name: self.items[name].weight)
                floor = self.items.pop(victim).weight
                hit = self.items[key] = Hitter(weight=floor, error=floor)
            else:
                hit = self.items[key] = Hitter()
        hit.weight += w
        hit.reports += 1
        hit.poor += poor

    def top(self) -> list[dict[str, Any]]:
        ranked = sorted(self.items.items(), key=lambda kv: (-kv[1].weight, kv[0]))
        return [{"target": key, "weight": round(h.weight, 6), "reports": h.reports,
                 "poor": h.poor, "error": round(h.error, 6)} for key, h in ranked]


@dataclass
class PageAttribution:
    """One page's summaries: targets per vital, LCP resources, INP scripts."""

    targets: dict[str, HeavyHitters] = field(default_factory=dict)
    resources: HeavyHitters = field(default_factory=HeavyHitters)
    scripts: HeavyHitters = field(default_factory=HeavyHitters)
    interactions: dict[str, int] = field(default_factory=dict)


class AttributionStore:
    """Per page (bounded by the page budget) summaries; memory is O(pages x k)."""

    def __init__(self) -> None:
        self.pages: dict[str, PageAttribution] = {}

    def add(self, page: str, vital: str, value: float, rating: int, attr: Attribution) -> None:
        entry = self.pages.get(page)
        if entry is None:
            entry = self.pages[page] = PageAttribution()
        w, poor = weight(vital, value), rating == 2
        if attr.target:
            entry.targets.setdefault(vital, HeavyHitters()).add(attr.target, w, poor)
        if attr.resource:
            entry.resources.add(attr.resource, w, poor)
        if attr.script:
            entry.scripts.add(attr.script, w, poor)
        if attr.interaction:
            entry.interactions[attr.interaction] = entry.interactions.get(attr.interaction,
                                                                          0) + 1

    def forget(self, page: str) -> None:
        """The page left the page budget: its summaries go with it."""
        self.pages.pop(page, None)
