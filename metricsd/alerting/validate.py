"""Configuration-time checks of alerting: the rule file loads and route matchers parse."""

from __future__ import annotations

from typing import TYPE_CHECKING

from metricsd.alerting.routing import check_matchers
from metricsd.alerting.rules import RuleFileError, load_rule_file

if TYPE_CHECKING:
    from metricsd.config import AlertingConfig


def alerting_problems(config: AlertingConfig) -> list[str]:
    """Every problem with alerting.rules and alerting.routes, one line each."""
    problems = check_matchers(config)
    if config.rules is not None:
        try:
            load_rule_file(config.rules)
        except RuleFileError as exc:
            problems += [f"rules: {exc.args[0]}"] + [f"rules: {p}" for p in exc.problems]
    return problems
