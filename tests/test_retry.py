"""metricsd.retry: the one backoff and Retry-After policy of receivers and the client."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from metricsd.retry import Backoff, parse_retry_after

NOW = 1_700_000_000.0


def http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, UTC), usegmt=True)


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), ("", None), ("  ", None), ("soon", None), ("nan", None),
    ("0", 0.0), ("120", 120.0), (" 7 ", 7.0), ("1.5", 1.5), ("-3", 0.0),
    (http_date(90), 90.0), (http_date(-30), 0.0),  # a date in the past: retry now
    ("Wed, 21 Oct 2015 07:28:00", 0.0),  # no zone: read as UTC, long past
    ("Mon, 99 Foo 2015 07:28:00 GMT", None),
])
def test_retry_after_takes_seconds_and_http_dates(value, seconds):
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_is_equal_jitter_and_capped(attempt):
    policy = Backoff(initial=0.5, maximum=10.0, max_retry_after=60.0)
    base = min(10.0, 0.5 * 2**attempt)
    low, high = policy.delay(attempt, rng=lambda: 0.0), policy.delay(attempt, rng=lambda: 1.0)
    assert (low, high) == (base / 2, base)  # never below half: not "full" jitter
    assert low <= policy.delay(attempt) <= high


@pytest.mark.parametrize(("retry_after", "expected"), [
    (None, 2.0), (0.0, 2.0), (1.0, 2.0),  # shorter than our backoff: backoff wins
    (30.0, 30.0), (600.0, 60.0),  # longer: obeyed up to the cap
])
def test_retry_after_wins_only_when_longer_and_is_capped(retry_after, expected):
    policy = Backoff(initial=2.0, maximum=10.0, max_retry_after=60.0)
    assert policy.delay(0, retry_after, rng=lambda: 1.0) == expected
