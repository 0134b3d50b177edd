"""The one choke point every label value passes, whatever its source.

A label value ends up in the exposition text, in alert fingerprints, in webhook bodies
and on the page; one value that cannot be encoded (a lone surrogate from a header that
aiohttp decoded with `surrogateescape`), or that rewrites what is shown around it
(C0/C1 controls, bidi overrides, other format characters), breaks all of them. So every
value is valid Unicode without surrogates, printable (`str.isprintable`: no categories
Cc, Cf, Cs, Co, Cn, Zl, Zp, and no separator but the ASCII space), NFC-normalised and
bounded in length.

Two doors, one rule: `check` is for what a client sent (the caller rejects the item with
the reason), `clean` is for what the server itself read (PostgreSQL names and query
text, template output): it never fails, it escapes. `is_clean` is the store's guard:
the store refuses to create a series whose key did not pass one of the two.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from metricsd.errors import LabelError

# No label value anywhere is longer (ingest.max_string_length is at most this).
MAX_LABEL_LENGTH = 4096
ELLIPSIS = "\u2026"


def is_clean(value: str, max_len: int = MAX_LABEL_LENGTH) -> bool:
    """True when `value` may be a label value as it is (the cheap test on the hot path)."""
    if len(value) > max_len:
        return False
    if value.isascii():  # ASCII is always NFC; isprintable() refuses its controls
        return value.isprintable()
    return value.isprintable() and unicodedata.is_normalized("NFC", value)


def check(value: str, name: str, max_len: int) -> str:
    """A client's value, NFC-normalised; raise LabelError naming `name` when it cannot be."""
    if len(value) > max_len:
        raise LabelError(f"{name} must be 1 to {max_len} characters", "bad_string")
    if value.isascii():
        if value.isprintable():
            return value
    elif value.isprintable():
        value = unicodedata.normalize("NFC", value)
        if len(value) > max_len:
            raise LabelError(f"{name} must be 1 to {max_len} characters", "bad_string")
        return value
    raise LabelError(
        f"{name} must be printable UTF-8 text (no control, format or bidi characters, "
        "no undecodable bytes)", "bad_string")


def _escape(char: str) -> str:
    """A character that may not appear, as visible text (`\\x85`, `\\u202e`, `\\udcff`)."""
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean(value: str, max_len: int = MAX_LABEL_LENGTH) -> str:
    """What the server read, made a valid label value: escaped, normalised, truncated.

    Never raises and never drops the value: a catalog name with a control character
    stays recognisable (`bad\\x07name`), an over-long query text ends in an ellipsis.
    """
    if is_clean(value, max_len):
        return value
    if not value.isprintable():
        value = "".join(c if c.isprintable() else _escape(c) for c in value)
    value = unicodedata.normalize("NFC", value)
    if len(value) > max_len:
        value = value[: max_len - 1] + ELLIPSIS
    return value


def clean_text(value: str, max_len: int) -> str:
    """Like `clean`, but keeps line breaks (annotations, SQL); tabs become spaces."""
    if is_clean(value, max_len):
        return value
    lines = value.split("\n")
    joined = "\n".join(clean(line.replace("\t", " ")) for line in lines)
    if len(joined) > max_len:
        joined = joined[: max_len - 1] + ELLIPSIS
    return joined


def clean_row(row: dict[str, Any], max_len: int = 200_000) -> dict[str, Any]:
    """`clean_text` over the text values of a row (names and query text for JSON views)."""
    return {k: clean_text(v, max_len) if type(v) is str else v for k, v in row.items()}


def clean_all(labels: dict[str, str], max_len: int = MAX_LABEL_LENGTH) -> dict[str, str]:
    """`clean` over every value of a label set (returns the same dict when all are clean)."""
    if all(is_clean(v, max_len) for v in labels.values()):
        return labels
    return {k: clean(v, max_len) for k, v in labels.items()}


def require_clean(key: Iterable[str]) -> None:
    """The store's guard: raise LabelError when a value skipped `check`/`clean`."""
    for value in key:
        if type(value) is not str or not is_clean(value):
            raise LabelError(
                "a label value did not pass metricsd.labels (a bug: report it)", "bad_label")
