"""Endpoint parsing and response classification (routes are normalised by the server:
tests/ingest/test_normalize.py)."""

from __future__ import annotations

import pytest
from metricsd_client.base import Endpoint, Outcome, outcome_of


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:9811", "http://127.0.0.1:9811/v1/beacons/timings"),
    ("http://metricsd:9811/", "http://metricsd:9811/v1/beacons/timings"),
    ("https://m.example.com/v1/beacons/timings", "https://m.example.com/v1/beacons/timings"),
    ("https://m.example.com/prefix", "https://m.example.com/prefix/v1/beacons/timings"),
])
def test_endpoint_accepts_base_or_full_url(url: str, expected: str) -> None:
    endpoint = Endpoint.parse(url)
    assert endpoint.url == expected
    assert endpoint.port == (443 if url.startswith("https") else 9811)


def test_endpoint_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="http"):
        Endpoint.parse("udp://metricsd:9811")


@pytest.mark.parametrize(("status", "outcome"), [
    (202, Outcome.SENT), (400, Outcome.REJECTED), (401, Outcome.REJECTED),
    (413, Outcome.SPLIT), (429, Outcome.RETRY), (500, Outcome.RETRY), (503, Outcome.RETRY),
])
def test_classify(status: int, outcome: Outcome) -> None:
    assert outcome_of(status) is outcome
