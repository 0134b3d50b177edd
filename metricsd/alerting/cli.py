"""`metricsd rules check FILE...` and `metricsd rules test FILE...`; exit 0 only when all pass."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from metricsd.alerting.rules.load import RuleFileError, load_rule_file, rule_count
from metricsd.alerting.rules.ruletest import RuleTestError, run_test_file


def check(files: Sequence[str]) -> int:
    """Load each rule file as start-up would; print what is wrong with each rule."""
    status = 0
    for path in files:
        try:
            groups = load_rule_file(path)
        except RuleFileError as exc:
            print(f"{path}: FAILED\n{exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{path}: SUCCESS: {rule_count(groups)} rule(s) in {len(groups)} group(s) "
              "within metricsd's PromQL subset")
    return status


def test(files: Sequence[str]) -> int:
    """Run promtool-style unit tests with metricsd's engine."""
    status = 0
    for path in files:
        try:
            count, failures = run_test_file(path)
        except RuleTestError as exc:
            print(f"{path}: FAILED\n  {exc}", file=sys.stderr)
            status = 1
            continue
        if failures:
            print(f"{path}: FAILED ({len(failures)} failure(s) in {count} test(s))",
                  file=sys.stderr)
            for failure in failures:
                print(f"  {failure}", file=sys.stderr)
            status = 1
        else:
            print(f"{path}: SUCCESS ({count} test(s))")
    return status


def run_rules_command(command: str, files: Sequence[str]) -> int:
    """Dispatch from metricsd.__main__."""
    if command == "check":
        return check(files)
    if command == "test":
        return test(files)
    print(f"unknown rules command {command!r}", file=sys.stderr)
    return 2
