"""Route and page normalisation: ids become `:id` so raw URLs cannot explode cardinality.

A segment is an id when it is all digits, a UUID, a run of 16+ hex characters, or an
opaque token of 24+ URL-safe characters with a digit (ULIDs, base64 ids). Query strings
and fragments are dropped, and so are the scheme and host of a whole URL. Results are
cached: the same raw routes repeat all day.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

ID = ":id"
_ID_SEGMENT = re.compile(
    r"""^(?:
        \d+                                                     # 123
      | [0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}  # UUID
      | (?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}                       # long hex token
      | (?=[A-Za-z0-9_]*\d)[A-Za-z0-9_]{24,}                     # opaque token, ULID
    )$""",
    re.VERBOSE,
)

_ABSOLUTE = re.compile(r"(?i)https?://")

HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


@lru_cache(maxsize=65536)
def normalize_path(raw: str) -> str:
    """`/orders/123/items?x=1` -> `/orders/:id/items`; templates like `/orders/{id}` stay.

    A whole URL (clients that send `location.href` as the page) counts by its path: the
    scheme and host would otherwise become path segments, one series per host.
    """
    if _ABSOLUTE.match(raw):
        raw = referer_path(raw) or "/"
    path = raw.split("?", 1)[0].split("#", 1)[0]
    segments = [s for s in path.split("/") if s]
    if not segments:
        return "/"
    return "/" + "/".join(ID if _ID_SEGMENT.match(s) else s for s in segments)


def referer_path(referer: str) -> str | None:
    """The raw path of a Referer URL (not yet checked or normalised), or None."""
    try:
        path = urlsplit(referer).path
    except ValueError:
        return None
    return path or None


def normalize_method(raw: str) -> str:
    """Upper-case; anything outside the standard methods is `OTHER` (bounded cardinality)."""
    method = raw.upper()
    return method if method in HTTP_METHODS else "OTHER"
