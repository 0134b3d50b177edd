"""Fallback route labels: a raw path turned into a template so labels stay few."""

from __future__ import annotations

import re

# One path segment that is an identifier rather than a name: a number, a UUID, or a long
# hex/base64-ish token with at least one digit (hashes, object ids, opaque keys).
_ID_SEGMENT = re.compile(
    r"^(?:\d+"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?=[^/]*\d)[0-9A-Za-z_-]{16,})$"
)
MAX_ROUTE_LENGTH = 200


def normalise_path(path: str) -> str:
    """`/orders/123/items/9f86d081884c7d65` -> `/orders/:id/items/:id` (query dropped)."""
    path = path.split("?", 1)[0] or "/"
    if not any(ch.isdigit() for ch in path):
        return path[:MAX_ROUTE_LENGTH]
    parts = [":id" if _ID_SEGMENT.match(part) else part for part in path.split("/")]
    return "/".join(parts)[:MAX_ROUTE_LENGTH]
