"""Pages of Web Vitals: route templates first, then the id collapse, then a page budget.

`ingest.pages.templates` (`/blog/:slug`, `/products/:id/reviews`) name what the automatic
id collapse cannot guess (a slug is not an id). Pages beyond `ingest.pages.budget` are
counted under the single page `other`, never silently dropped: `metricsd_ingest_pages_other`
counts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from metricsd.ingest.normalize import normalize_path, referer_path

OTHER_PAGE = "other"
_ABSOLUTE = re.compile(r"(?i)https?://")
SWEEP_EVERY_S = 60.0  # how often a full budget looks for idle pages to let go


def _compile(template: str) -> tuple[str, ...]:
    """`/blog/:slug` -> ("blog", ":slug"); `*` as the last segment matches the rest."""
    return tuple(s for s in template.split("/") if s)


class Templates:
    """Route templates, matched segment by segment (first match in config order wins)."""

    def __init__(self, templates: Sequence[str]) -> None:
        self.templates = [(t, _compile(t)) for t in templates]
        # Index by segment count and first literal segment: 100,000 pages x 50 templates
        # must not cost 5 million comparisons.
        self.by_length: dict[int, list[tuple[str, tuple[str, ...]]]] = {}
        self.tails: list[tuple[str, tuple[str, ...]]] = []
        for text, parts in self.templates:
            if parts and parts[-1] == "*":
                self.tails.append((text, parts))
            else:
                self.by_length.setdefault(len(parts), []).append((text, parts))

    def match(self, path: str) -> str | None:
        """The template `path` (no query) matches, or None."""
        segments = [s for s in path.split("/") if s]
        for text, parts in self.by_length.get(len(segments), ()):
            if all(p[0] == ":" or p == s for p, s in zip(parts, segments, strict=True)):
                return text
        for text, parts in self.tails:
            head = parts[:-1]
            if len(segments) >= len(head) and all(
                    p[0] == ":" or p == s for p, s in zip(head, segments, strict=False)):
                return text
        return None

    def apply(self, raw: str) -> str:
        """A template when one matches, else the automatic id collapse.

        A whole URL (`location.href` as the page) is matched by its path, as
        normalize_path counts it.
        """
        if _ABSOLUTE.match(raw):
            raw = referer_path(raw) or "/"
        path = raw.split("?", 1)[0].split("#", 1)[0]
        if self.templates:
            matched = self.match(path)
            if matched is not None:
                return matched
        return normalize_path(path)


class PageBudget:
    """At most `limit` distinct pages; a new page beyond it is `other` (counted)."""

    def __init__(self, limit: int, idle_timeout: float,
                 on_overflow: Callable[[], None] = lambda: None,
                 on_evict: Callable[[str], None] = lambda page: None) -> None:
        self.limit = limit
        self.idle_timeout = idle_timeout
        self.on_overflow = on_overflow
        self.on_evict = on_evict
        self.last_seen: dict[str, float] = {}
        self._swept = 0.0

    def admit(self, page: str, now: float) -> str:
        """`page`, or `other` when the budget is spent by pages seen recently."""
        seen = self.last_seen
        if page in seen:
            seen[page] = now
            return page
        if len(seen) >= self.limit and now - self._swept >= SWEEP_EVERY_S:
            self._sweep(now)
        if len(seen) >= self.limit:
            self.on_overflow()
            return OTHER_PAGE
        seen[page] = now
        return page

    def _sweep(self, now: float) -> None:
        """Forget pages idle longer than their series live (their series expire too)."""
        self._swept = now
        cutoff = now - self.idle_timeout
        for page in [p for p, t in self.last_seen.items() if t < cutoff]:
            del self.last_seen[page]
            self.on_evict(page)
