"""The PromQL subset's evaluation corner cases (the common paths are checked against promtool)."""

from __future__ import annotations

import math

import pytest

from metricsd.alerting.rules.promql import EvaluationError, compile_query

SOURCE = {
    "req": [({"route": "/a", "code": "5xx"}, 5.0), ({"route": "/a", "code": "2xx"}, 95.0),
            ({"route": "/b", "code": "2xx"}, 0.0)],
    "lat": [({"route": "/a"}, math.nan), ({"route": "/b"}, 0.7)],
    "zero": [({"route": "/a"}, 0.0), ({"route": "/b"}, 0.0)],
}


def run(expr):
    return {tuple(sorted(s.label_dict().items())): s.value
            for s in compile_query(expr).evaluate(SOURCE)}


def test_nan_compares_false_and_min_max_skip_nan():
    assert run("lat > 0") == {(("__name__", "lat"), ("route", "/b")): 0.7}
    assert run("max(lat)") == {(): 0.7}
    assert run("min(lat)") == {(): 0.7}


def test_division_by_zero_is_ieee():
    out = run("sum by (route) (req) / on (route) zero")
    assert out[(("route", "/a"),)] == math.inf
    assert math.isnan(out[(("route", "/b"),)])


def test_set_operators_match_on_labels_without_name():
    assert set(run('req{code="2xx"} unless on (route) req{code="5xx"}')) == {
        (("__name__", "req"), ("code", "2xx"), ("route", "/b"))}
    assert len(run("lat or zero")) == 2  # zero's series share lat's labels: lat wins


def test_duplicate_series_in_one_to_one_matching_fail_the_evaluation():
    with pytest.raises(EvaluationError, match="many-to-many"):
        compile_query("lat / ignoring (code) req").evaluate(SOURCE)


def test_aggregations_by_and_without():
    assert run("count without (code) (req)") == {(("route", "/a"),): 2.0,
                                                 (("route", "/b"),): 1.0}
    assert run("avg by (code) (req)") == {(("code", "5xx"),): 5.0, (("code", "2xx"),): 47.5}


def test_names_are_collected_for_the_sample_reader():
    assert compile_query("a > 1 and on() sum(b) > count(c)").names == {"a", "b", "c"}
