"""metricsd.labels: every value that passes is encodable, printable, NFC and bounded."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricsd.errors import LabelError
from metricsd.ingest import store_families
from metricsd.labels import MAX_LABEL_LENGTH, check, clean, clean_text, is_clean, require_clean
from metricsd.store.series import Store

# Every code point, lone surrogates included (aiohttp's surrogateescape makes them).
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
any_text = st.text(any_char, max_size=300)
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# The ones the issue found plus their families: C0, DEL, C1 (NEL), bidi, zero-width, BOM.
HOSTILE = ["\x00", "\x07", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b", "\u200b",
           "\u200e", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067",
           "\u2068", "\u2069", "\u2028", "\u2029", "\ufeff", "\udcff", "\ud800", "\ue000",
           "\U000e0001"]


def valid_label(value: str, max_len: int = MAX_LABEL_LENGTH) -> bool:
    """The invariant, stated independently of the implementation."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return (len(value) <= max_len
            and unicodedata.is_normalized("NFC", value)
            and not any(unicodedata.category(c) in FORBIDDEN_CATEGORIES for c in value)
            and not any(unicodedata.category(c) == "Zs" and c != " " for c in value))


@settings(max_examples=500, deadline=None)
@given(value=any_text, max_len=st.integers(8, 400))
def test_clean_always_gives_a_valid_label(value, max_len):
    out = clean(value, max_len)
    assert valid_label(out, max_len)
    assert is_clean(out, max_len)
    if is_clean(value, max_len):
        assert out == value


@settings(max_examples=500, deadline=None)
@given(value=any_text, max_len=st.integers(8, 400))
def test_check_accepts_only_what_is_valid_and_says_why_otherwise(value, max_len):
    try:
        out = check(value, "page", max_len)
    except LabelError as exc:
        assert exc.reason == "bad_string" and "page" in str(exc)
        nfc_ok = all(c.isprintable() for c in value) and len(
            unicodedata.normalize("NFC", value)) <= max_len
        assert not (nfc_ok and len(value) <= max_len)
    else:
        assert valid_label(out, max_len)
        assert out == unicodedata.normalize("NFC", value)


@settings(max_examples=200, deadline=None)
@given(value=any_text)
def test_is_clean_agrees_with_the_invariant(value):
    assert is_clean(value) == valid_label(value)


@pytest.mark.parametrize("char", HOSTILE)
def test_hostile_characters_are_refused_and_escaped(char):
    value = f"/x{char}y"
    assert not is_clean(value)
    with pytest.raises(LabelError):
        check(value, "page", 256)
    out = clean(value)
    assert is_clean(out) and out.startswith("/x") and out.endswith("y") and len(out) > 4


def test_nfc_and_length():
    assert check("cafe\u0301", "page", 256) == "caf\u00e9"
    with pytest.raises(LabelError):
        check("x" * 257, "page", 256)
    long = clean("q" * 5000, 1000)
    assert len(long) == 1000 and long.endswith("\u2026")


def test_clean_text_keeps_lines_but_not_controls():
    out = clean_text("line one\nline \u202etwo\x85\tend", 100)
    assert out.split("\n")[0] == "line one"
    assert all(is_clean(line) for line in out.split("\n"))


def test_the_store_refuses_a_key_that_skipped_the_choke_point():
    store = Store(max_series=10, window_samples=16, window_seconds=60, idle_timeout=60,
                  families=store_families())
    for bad in ("/x\udcff", "/\u202eevil", "a\x85b", "x" * (MAX_LABEL_LENGTH + 1)):
        with pytest.raises(LabelError):
            store.observe("LCP", (bad,), 1.0, 1.0)
        with pytest.raises(LabelError):
            store.observe_columns("api", [("s", bad, "GET")] * 40, [1.0] * 40, [1.0] * 40,
                                  [1] * 40, [0] * 40)
    assert store.series_count == 0
    assert store.observe("LCP", ("/caf\u00e9",), 1.0, 1.0) is not None
    with pytest.raises(LabelError):
        require_clean(("ok", 3))  # type: ignore[arg-type]
