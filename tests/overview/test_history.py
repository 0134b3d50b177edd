"""The per-minute History behind the overview sparklines: bounded, gap-aware, downsampled."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metricsd.overview.history import History

T0 = 1_700_000_000.0 - (1_700_000_000.0 % 60)  # the start of a minute


def test_values_are_per_minute_oldest_first_with_gaps():
    history = History(minutes=5)
    history.record("a", 1.0, T0)
    history.record("a", 2.0, T0 + 59)  # same minute: the later write wins
    history.record("a", 3.0, T0 + 120)  # minute 2; minute 1 stays a gap
    got = history.values("a", T0 + 125)
    expected = [math.nan, math.nan, 2.0, math.nan, 3.0]
    np.testing.assert_array_equal(got, expected)


def test_ring_wraps_and_old_laps_read_as_gaps():
    history = History(minutes=4)
    for minute in range(10):
        history.record("a", float(minute), T0 + 60 * minute)
    np.testing.assert_array_equal(history.values("a", T0 + 60 * 9), [6.0, 7.0, 8.0, 9.0])
    # Three quiet minutes later only minute 9 is still in view; the cells holding 6..8
    # belong to an earlier lap and must not come back as if they were recent.
    np.testing.assert_array_equal(
        history.values("a", T0 + 60 * 12), [9.0, math.nan, math.nan, math.nan]
    )
    assert np.isnan(history.values("a", T0 + 60 * 20)).all()


def test_memory_is_bounded_by_series_and_minutes():
    history = History(minutes=30, max_series=3)
    for i in range(10):
        for minute in range(100):
            history.record(f"s{i}", float(minute), T0 + 60 * minute)
    assert len(history) == 3
    assert history.refused == 7 * 100
    assert history.nbytes == 3 * 30 * (8 + 8)
    assert not history.record("new", 1.0, T0)
    assert np.isnan(history.values("s9", T0)).all()


def test_downsample_averages_buckets_ignoring_gaps():
    rng = np.random.default_rng(7)
    history = History(minutes=180)
    now = T0 + 60 * 179
    raw = rng.uniform(0.0, 10.0, 180)
    raw[10:20] = np.nan  # the daemon was down for ten minutes
    raw[::7] = np.nan
    for minute, value in enumerate(raw):
        if not np.isnan(value):
            history.record("p95", float(value), T0 + 60 * minute)
    got = history.downsample("p95", now, 60)
    assert len(got) == 60
    for i in range(60):
        bucket = raw[3 * i : 3 * i + 3]
        if np.isnan(bucket).all():
            assert np.isnan(got[i])
        else:
            assert got[i] == pytest.approx(np.nanmean(bucket))


def test_downsample_uneven_keeps_the_newest_minutes_in_full_buckets():
    history = History(minutes=10)
    now = T0 + 60 * 9
    for minute in range(10):
        history.record("a", float(minute), T0 + 60 * minute)
    # 10 minutes into at most 4 points: buckets of 3, the oldest one short (1 real + 2 pad).
    got = history.downsample("a", now, 4)
    np.testing.assert_allclose(got, [0.0, 2.0, 5.0, 8.0])
    np.testing.assert_array_equal(history.downsample("a", now, 50), np.arange(10.0))


def test_forget_drops_series_no_longer_tracked():
    history = History(minutes=10, max_series=2)
    history.record("a", 1.0, T0)
    history.record("b", 1.0, T0)
    assert history.forget({"a"}) == 1
    assert "b" not in history
    assert history.record("c", 1.0, T0)  # the freed place can be used again


def test_unknown_series_is_all_gaps():
    assert np.isnan(History(minutes=10).values("nope", T0)).all()
