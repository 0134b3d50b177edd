"""Engine details the promtool cross-check does not reach: group intervals, health, restore."""

from __future__ import annotations

import logging

import pytest

from metricsd.alerting.rules.engine import AlertEngine, fingerprint
from metricsd.alerting.rules.load import parse_rule_text

RULES = """
groups:
  - name: slow
    interval: 5m
    rules:
      - alert: Slow
        expr: x > 1
  - name: dup
    rules:
      - alert: Dup
        expr: y > 0
        labels:
          a: same
"""


# prometheus/common model/signature_test.go: the label-set fingerprints Alertmanager uses
# (TestMetricToFingerprint and the BenchmarkMetricToFingerprint* expectations).
SIGNATURE_VECTORS = [
    ({}, 14695981039346656037),
    ({"name": "garland, briggs", "fear": "love is not enough"}, 5799056148416392346),
    ({"first-label": "first-label-value"}, 5146282821936882169),
    ({"first-label": "first-label-value", "second-label": "second-label-value"},
     3195800080984914717),
    ({"first-label": "first-label-value", "second-label": "second-label-value",
      "third-label": "third-label-value"}, 13843036195897128121),
]


@pytest.mark.parametrize(("labels", "expected"), SIGNATURE_VECTORS)
def test_fingerprint_matches_prometheus_common(labels, expected):
    assert fingerprint(labels) == f"{expected:016x}"
    assert fingerprint(dict(reversed(labels.items()))) == f"{expected:016x}"  # order-free


def test_group_interval_is_honoured():
    engine = AlertEngine(parse_rule_text(RULES))
    source = {"x": [({}, 2.0)]}
    engine.evaluate(source, 0.0)
    assert engine.counts()["firing"] == 1
    source = {"x": []}
    engine.evaluate(source, 60.0)  # the group is not due: state kept
    assert engine.counts()["firing"] == 1
    engine.evaluate(source, 300.0)
    assert engine.counts() == {"pending": 0, "firing": 0, "resolved": 1}


def test_duplicate_labelsets_fail_the_rule_and_log_once(caplog):
    caplog.set_level(logging.WARNING)
    engine = AlertEngine(parse_rule_text(RULES))
    source = {"y": [({"a": "1"}, 1.0), ({"a": "2"}, 1.0)]}
    for t in (0.0, 15.0, 30.0):
        engine.evaluate(source, t)
    [key] = [k for k, r in engine.rules.items() if r.name == "Dup"]
    assert engine.health[key].failures == 3 and not engine.health[key].ok
    assert "same labelset" in (engine.health[key].error or "")
    assert len([r for r in caplog.records if "Dup failed" in r.getMessage()]) == 1
    engine.evaluate({"y": []}, 45.0)
    assert engine.health[key].ok


def test_restored_alerts_of_removed_rules_resolve_once():
    old = AlertEngine(parse_rule_text(RULES))
    old.evaluate({"x": [({"job": "a"}, 2.0)]}, 0.0)
    saved = old.dump()
    new = AlertEngine(parse_rule_text("groups: []"))
    assert new.restore(saved, 100.0) == 0
    [orphan] = new.notifiable()
    assert orphan.state == "resolved" and orphan.resolved_at == 100.0
    new.evaluate({}, 100.0 + 901)  # past the retention: forgotten
    assert new.notifiable() == []
