"""Compile alerting's configuration once: rules load, matchers parse, receiver kinds exist.

Start-up (alerting.setup) and `metricsd check-config` call the same function, so a bad
rule stops both with its name and reason, before the port is bound.
"""

from __future__ import annotations

from metricsd.alerting.notify.receivers import RECEIVER_KINDS
from metricsd.alerting.notify.routing import check_matchers
from metricsd.alerting.rules.load import RuleFileError, RuleGroup, load_rule_file
from metricsd.config import AlertingConfig
from metricsd.errors import ConfigError


def compile_alerting(config: AlertingConfig) -> list[RuleGroup]:
    """The rule groups of `alerting.rules` (none when unset); ConfigError lists every problem."""
    problems = check_matchers(config)
    for receiver in config.receivers:
        if receiver.format not in RECEIVER_KINDS:
            problems.append(f"alerting.receivers.{receiver.name}: unknown format "
                            f"{receiver.format!r}, use one of {', '.join(RECEIVER_KINDS)}")
    groups: list[RuleGroup] = []
    if config.rules is not None:
        try:
            groups = load_rule_file(config.rules)
        except RuleFileError as exc:
            problems += [f"alerting.rules: {exc.args[0]}"]
            problems += [f"alerting.rules: {p}" for p in exc.problems]
    if problems:
        raise ConfigError("invalid alerting configuration", problems)
    return groups
