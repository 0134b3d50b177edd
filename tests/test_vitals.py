"""metricsd/vitals.py is the one home of the Web Vitals thresholds: the rating rule at its
boundaries, and the shipped alert rules (which cannot import Python) agree with it."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from metricsd.vitals import CORE, RATINGS, VITALS, rating

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", list(VITALS))
def test_rating_boundaries(name):
    spec = VITALS[name]
    below_good = math.nextafter(spec.good, -math.inf)
    above_good = math.nextafter(spec.good, math.inf)
    above_poor = math.nextafter(spec.poor, math.inf)
    assert [rating(name, v) for v in (0.0, below_good, spec.good, above_good, spec.poor,
                                      above_poor, spec.poor * 10)] == [
        "good", "good", "good", "needs-improvement", "needs-improvement", "poor", "poor"]
    assert rating(name, None) is None
    assert RATINGS[spec.rating_index(spec.poor * 10)] == "poor"
    # The histogram has a bucket boundary at each threshold, so rates by rating and
    # histogram_quantile agree exactly at the lines that matter.
    assert spec.good in spec.buckets and spec.poor in spec.buckets


def test_shipped_alert_rules_use_the_same_thresholds():
    rules = [rule for group in yaml.safe_load((ROOT / "alerts.yml").read_text())["groups"]
             for rule in group["rules"] if rule.get("alert", "").startswith("WebVitals")]
    # vitals (issue 17): the assessment rule reads the pass gauge, thresholds live in Python.
    assessment = [r for r in rules if r["alert"] == "WebVitalsAssessmentFailing"]
    assert [r["expr"].strip() for r in assessment] == ["metricsd_web_vitals_cwv_pass == 0"]
    rules = [r for r in rules if r not in assessment]
    seen = set()
    for rule in rules:
        match = re.fullmatch(
            r'metricsd_web_vitals_([a-z]+)_window(?:_seconds)?\{quantile="0\.75"\} > '
            r"([0-9.]+)(?: <= ([0-9.]+))?", rule["expr"].strip())
        assert match, rule["expr"]
        spec = VITALS[match.group(1).upper()]
        low, high = float(match.group(2)), match.group(3)
        if rule["alert"].endswith("Poor"):
            assert (low, high) == (spec.poor, None), rule["alert"]
        else:
            assert (low, float(high)) == (spec.good, spec.poor), rule["alert"]
        seen.add(spec.name)
    assert seen <= set(CORE) and seen, seen
