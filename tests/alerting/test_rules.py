"""The shipped alerts.yml against the real promtool, the CLI, and start-up rejection of rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metricsd.alerting import ALERTS
from metricsd.alerting.cli import run_rules_command
from metricsd.alerting.rules.load import RuleFileError, load_rule_file, parse_rule_text
from metricsd.app import create_app
from metricsd.core import REGISTRY
from metricsd.errors import ConfigError
from tests.fixtures.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
ALERTS_YML = ROOT / "alerts.yml"
RULE_TESTS = Path(__file__).with_name("rules")
SHIPPED = {
    "ApiLatencyP95High", "ApiErrorRatioHigh", "WebVitalsLCPPoor", "WebVitalsLCPNeedsImprovement",
    "WebVitalsINPPoor", "WebVitalsINPNeedsImprovement", "WebVitalsCLSPoor",
    "WebVitalsCLSNeedsImprovement", "PostgresTargetDown", "PostgresSlowStatement",
    "PostgresConnectionUtilizationHigh", "PostgresCacheHitRatioLow",
    "PostgresReplicationLagHigh", "PostgresInvalidIndex", "MetricsdDroppingSeries",
    "PostgresStandbyDisconnected", "PostgresStandbyMissing", "PostgresReplicationSlotInactive",
    # pg-more (issue 13): PgBouncer and PostgreSQL maintenance.
    "PgBouncerDown", "PgBouncerPoolUtilizationHigh", "PgBouncerClientsWaiting",
    "PgBouncerClientConnectionsHigh", "PostgresWraparoundRisk", "PostgresArchivingFailing",
    "PostgresPlanRegression",
    "WebVitalsAssessmentFailing",
    "OperationObjectiveMissed",  # issue 16
    "CacheHitRatioLow",  # issue 16
}


def _metric_names_in_docs() -> set[str]:
    import re

    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    return set(re.findall(r"`(metricsd_[a-z0-9_]+)`", text))


def test_shipped_rules_pass_real_promtool_check():
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "rules", str(ALERTS_YML)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(SHIPPED)} rules found" in result.stdout


def test_shipped_rules_load_in_metricsd_and_cover_the_issue(make_config):
    groups = load_rule_file(ALERTS_YML)
    rules = [r for g in groups for r in g.rules]
    assert {r.name for r in rules} == SHIPPED
    # Real names: what a running metricsd registers, plus docs/metrics.md (PostgreSQL
    # families exist only with a target configured).
    app = create_app(make_config({}))
    documented = _metric_names_in_docs() | {
        name for source in app[REGISTRY].sources() for family in source.families
        for name in family.sample_names}
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8").lower()
    for rule in rules:
        assert set(rule.annotations) >= {"summary", "description", "runbook_url"}, rule.name
        url = rule.annotations["runbook_url"].source
        assert url == f"docs/runbook.md#{rule.name.lower()}"
        assert f"## {rule.name.lower()}" in runbook, f"runbook lacks a section for {rule.name}"
        for name in rule.query.names:  # only real metricsd names, as docs/metrics.md lists
            assert name in documented, name


@pytest.mark.parametrize("test_file", ["alerts_test.yml", "semantics_test.yml",
                                       "pgbouncer_test.yml"])
def test_rule_unit_tests_pass_in_metricsd_and_in_promtool(test_file):
    """Same file, two engines: metricsd must agree with Prometheus on every expectation."""
    path = RULE_TESTS / test_file
    ours = subprocess.run([sys.executable, "-m", "metricsd", "rules", "test", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    promtool = require_binary("promtool")
    theirs = subprocess.run([promtool, "test", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr


def test_rules_test_reports_a_wrong_expectation(tmp_path, capsys):
    text = (RULE_TESTS / "alerts_test.yml").read_text(encoding="utf-8")
    text = text.replace("../../../alerts.yml", str(ALERTS_YML))
    bad = tmp_path / "bad_test.yml"
    bad.write_text(text.replace("is 750ms (threshold", "is 700ms (threshold"))
    assert run_rules_command("test", [str(bad)]) == 1
    err = capsys.readouterr().err
    assert "ApiLatencyP95High" in err and "750ms" in err and "700ms" in err


def test_rules_check_cli(tmp_path, capsys):
    assert run_rules_command("check", [str(ALERTS_YML)]) == 0
    assert f"SUCCESS: {len(SHIPPED)} rule(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: Rated\n"
                   "        expr: rate(metricsd_api_requests_total[5m]) > 1\n")
    assert run_rules_command("check", [str(bad)]) == 1
    err = capsys.readouterr().err
    assert "'Rated'" in err and "rate()" in err


@pytest.mark.parametrize(("expr", "reason"), [
    ("rate(x_total[5m]) > 1", "function rate() is outside the supported subset"),
    ("topk(3, x)", "aggregation topk() is outside the subset"),
    ("x offset 5m > 1", "offset"),
    ("x and on(a) group_left b", "no grouping allowed"),
    ("42", "must return an instant vector"),
    ('{job="x"}', "must name its metric"),
    ("x >", "invalid PromQL"),
])
def test_rules_outside_the_subset_are_rejected_with_name_and_reason(expr, reason):
    text = f"groups:\n  - name: g\n    rules:\n      - alert: Bad\n        expr: '{expr}'\n"
    with pytest.raises(RuleFileError) as info:
        parse_rule_text(text)
    [problem] = info.value.problems
    assert "rule 'Bad'" in problem and reason in problem


def test_rule_file_structure_problems_are_all_reported():
    text = """
groups:
  - name: g
    rules:
      - record: job:x:sum
        expr: sum(x)
      - alert: A
        expr: x > 1
        for: 5 minutes
        labels: {"bad-name": "v"}
        annotations: {summary: "{{ range $x }}"}
        extra: 1
  - name: g
    rules: []
"""
    with pytest.raises(RuleFileError) as info:
        parse_rule_text(text)
    joined = "\n".join(info.value.problems)
    assert "recording rule 'job:x:sum' is not supported" in joined
    assert "for: invalid duration '5 minutes'" in joined
    assert "invalid label name 'bad-name'" in joined
    assert "annotation 'summary': range is not supported" in joined
    assert "unknown key(s) extra" in joined
    assert "repeated group name" in joined


def test_bad_rule_stops_start_up_with_its_name(make_config, tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: Rated\n"
                     "        expr: rate(metricsd_api_requests_total[5m]) > 1\n")
    config = make_config({"alerting": {"rules": str(rules)}})  # config is pure: shape only
    with pytest.raises(ConfigError) as info:
        create_app(config)  # alerting compiles the file once, at start-up
    assert "'Rated'" in str(info.value) and "rate()" in str(info.value)


def test_shipped_rules_load_into_the_app(make_config):
    app = create_app(make_config({"alerting": {"rules": str(ALERTS_YML)}}))
    assert app[ALERTS].rule_count == len(SHIPPED)
