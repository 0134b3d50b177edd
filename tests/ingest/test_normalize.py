"""The one route normaliser (the server's): every route and page label goes through it.

The Python client sends its framework's route template, or the raw path when no route
matched, and never normalises itself; so this table is the whole rule.
"""

from __future__ import annotations

import pytest

from metricsd.ingest.normalize import normalize_method, normalize_path, referer_path


@pytest.mark.parametrize(("raw", "label"), [
    ("/", "/"),
    ("", "/"),
    ("//", "/"),
    ("/health", "/health"),
    ("/a//b/", "/a/b"),  # empty segments and trailing slashes go
    ("/orders/123/", "/orders/:id"),
    ("/orders/123", "/orders/:id"),
    ("/orders/123/items/9?page=2", "/orders/:id/items/:id"),
    ("/x/7#top", "/x/:id"),
    ("/orders/{id}", "/orders/{id}"),  # templates stay
    ("/orders/:id", "/orders/:id"),
    ("/u/550e8400-e29b-41d4-a716-446655440000/avatar", "/u/:id/avatar"),
    ("/u/550E8400-E29B-41D4-A716-446655440000", "/u/:id"),
    ("/blobs/9f86d081884c7d659a2feaa0c55ad015", "/blobs/:id"),  # hex digest
    ("/blobs/ABCDEF0123456789", "/blobs/:id"),  # 16 hex with a digit
    ("/blobs/0123456789abcde", "/blobs/0123456789abcde"),  # 15 hex: too short for a token
    ("/words/deadbeefdeadbeef", "/words/deadbeefdeadbeef"),  # hex letters, no digit: a word
    ("/files/abc123def456ghi789", "/files/abc123def456ghi789"),  # 18 chars, not hex: < 24
    ("/files/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/files/:id"),  # ULID
    ("/t/dGhpc2lzYXRva2VuMTIzNDU2Nzg5", "/t/:id"),  # base64-ish token with digits
    ("/t/this_is_a_long_name_without_digits", "/t/this_is_a_long_name_without_digits"),
    ("/v2/docs", "/v2/docs"),  # short names with digits are names, not ids
    ("/files/report-2024", "/files/report-2024"),
    ("https://shop.example.com/orders/12?x=1#y", "/orders/:id"),  # a whole URL: its path
    ("HTTP://Shop.Example.com", "/"),
    ("https://[::1", "/"),  # unparseable URL: no path, not an error
    ("http:/x", "/http:/x"),  # not a URL: a path like any other
])
def test_normalize_path(raw: str, label: str) -> None:
    assert normalize_path(raw) == label
    assert normalize_path(label) == label  # idempotent: a label normalises to itself


@pytest.mark.parametrize(("referer", "path"), [
    ("https://shop.example/products/42?utm=x", "/products/42"),  # normalised by the caller
    ("https://shop.example", None),
    ("http://[::1", None),  # unparsable
])
def test_referer_path(referer: str, path: str | None) -> None:
    assert referer_path(referer) == path


@pytest.mark.parametrize(("raw", "method"), [
    ("get", "GET"), ("PATCH", "PATCH"), ("PURGE", "OTHER"), ("", "OTHER")])
def test_normalize_method(raw: str, method: str) -> None:
    assert normalize_method(raw) == method
