"""Load a Prometheus rule file (groups of alerting rules) and compile it for metricsd.

The file stays a valid Prometheus rule file; metricsd checks the same structure promtool
does (strict keys, label names, durations) and, in addition, that every expression,
label and annotation is inside the subset it can evaluate. Every problem is collected,
each naming its group and rule, and raised together as one RuleFileError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser as pp
import yaml

from metricsd.alerting.rules.promql import Query, UnsupportedQuery, compile_query
from metricsd.alerting.rules.templates import AlertTemplate, TemplateError
from metricsd.errors import RuleError

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
GROUP_KEYS = {"name", "interval", "rules", "limit", "query_offset"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


class RuleFileError(RuleError):
    """One or more rules cannot be loaded; `problems` names each rule and the reason."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join([self.args[0], *(f"  - {p}" for p in self.problems)])


@dataclass(frozen=True)
class AlertRule:
    """One compiled alerting rule."""

    name: str
    group: str
    query: Query
    for_s: float
    keep_firing_for_s: float
    labels: Mapping[str, AlertTemplate]
    annotations: Mapping[str, AlertTemplate]

    @property
    def expr(self) -> str:
        return self.query.source


@dataclass(frozen=True)
class RuleGroup:
    """A named group; `interval_s` None means alerting.evaluation_interval."""

    name: str
    file: str
    interval_s: float | None
    rules: tuple[AlertRule, ...]


def parse_prom_duration(value: Any) -> float:
    """A Prometheus duration ('5m', '1h30m', '0s') in seconds."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"invalid duration {value!r}: use a string such as 30s, 5m or 1h")
    if re.fullmatch(r"0+(?:ms|[smhdwy])?", value):
        return 0.0  # promql-parser refuses zero durations; Prometheus accepts them
    try:
        return pp.parse_duration(value).total_seconds()
    except ValueError:
        raise ValueError(f"invalid duration {value!r}: use a string such as 30s, 5m or 1h") \
            from None


def _templates(
    raw: Any, where: str, what: str, problems: list[str], check_names: bool
) -> dict[str, AlertTemplate]:
    out: dict[str, AlertTemplate] = {}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        problems.append(f"{where}: {what} must be a mapping")
        return out
    for key, value in raw.items():
        if not isinstance(key, str) or (check_names and not LABEL_NAME_RE.match(key)):
            problems.append(f"{where}: invalid {what[:-1]} name {key!r}")
            continue
        if not isinstance(value, str):
            problems.append(f"{where}: {what[:-1]} {key!r} must be a string")
            continue
        try:
            out[key] = AlertTemplate(value)
        except TemplateError as exc:
            problems.append(f"{where}: {what[:-1]} {key!r}: {exc}")
    return out


def _rule(raw: Any, group: str, index: int, problems: list[str]) -> AlertRule | None:
    if not isinstance(raw, dict):
        problems.append(f"group {group!r}, rule {index}: must be a mapping")
        return None
    name = raw.get("alert")
    where = f"group {group!r}, rule {name!r}" if name else f"group {group!r}, rule {index}"
    before = len(problems)
    unknown = sorted(set(map(str, raw)) - RULE_KEYS)
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "record" in raw:
        problems.append(
            f"{where}: recording rule {raw['record']!r} is not supported by metricsd "
            "(keep recording rules in a file only Prometheus loads)"
        )
        return None
    if not isinstance(name, str) or not name:
        problems.append(f"{where}: 'alert' must name the alert")
        return None
    expr = raw.get("expr")
    query: Query | None = None
    if not isinstance(expr, str) or not expr.strip():
        problems.append(f"{where}: 'expr' is required")
    else:
        try:
            query = compile_query(expr)
        except UnsupportedQuery as exc:
            problems.append(f"{where}: {exc}")
    durations: dict[str, float] = {}
    for key in ("for", "keep_firing_for"):
        try:
            durations[key] = parse_prom_duration(raw[key]) if key in raw else 0.0
        except ValueError as exc:
            problems.append(f"{where}: {key}: {exc}")
    labels = _templates(raw.get("labels"), where, "labels", problems, check_names=True)
    if "alertname" in labels:
        problems.append(f"{where}: label 'alertname' is set from 'alert' and cannot be overridden")
    annotations = _templates(raw.get("annotations"), where, "annotations", problems,
                             check_names=False)
    if len(problems) > before or query is None:
        return None
    return AlertRule(name, group, query, durations["for"], durations["keep_firing_for"],
                     labels, annotations)


def parse_rule_text(text: str, file: str = "<rules>") -> list[RuleGroup]:
    """Rule-file YAML -> compiled groups; RuleFileError lists every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{file}: not valid YAML", [str(exc)]) from None
    problems: list[str] = []
    if data is None:
        data = {"groups": []}
    if not isinstance(data, dict) or not isinstance(data.get("groups", []), list):
        raise RuleFileError(f"{file}: not a rule file", ["expected a mapping with 'groups:'"])
    extra = sorted(set(map(str, data)) - {"groups"})
    if extra:
        problems.append(f"unknown top-level key(s) {', '.join(extra)}")
    groups: list[RuleGroup] = []
    seen_groups: set[str] = set()
    for i, raw_group in enumerate(data.get("groups") or []):
        if not isinstance(raw_group, dict) or not isinstance(raw_group.get("name"), str) \
                or not raw_group["name"]:
            problems.append(f"group {i}: needs a 'name'")
            continue
        name = raw_group["name"]
        if name in seen_groups:
            problems.append(f"group {name!r}: repeated group name")
        seen_groups.add(name)
        unknown = sorted(set(map(str, raw_group)) - GROUP_KEYS)
        if unknown:
            problems.append(f"group {name!r}: unknown key(s) {', '.join(unknown)}")
        if raw_group.get("limit"):
            problems.append(f"group {name!r}: 'limit' is not supported by metricsd")
        if raw_group.get("query_offset"):
            problems.append(f"group {name!r}: 'query_offset' needs history; not supported")
        interval: float | None = None
        if "interval" in raw_group:
            try:
                interval = parse_prom_duration(raw_group["interval"])
            except ValueError as exc:
                problems.append(f"group {name!r}: interval: {exc}")
        raw_rules = raw_group.get("rules") or []
        if not isinstance(raw_rules, list):
            problems.append(f"group {name!r}: 'rules' must be a list")
            continue
        rules = [_rule(r, name, j, problems) for j, r in enumerate(raw_rules)]
        groups.append(RuleGroup(name, file, interval, tuple(r for r in rules if r is not None)))
    if problems:
        raise RuleFileError(f"{file}: {len(problems)} problem(s)", problems)
    return groups


def load_rule_file(path: str | Path) -> list[RuleGroup]:
    """Read and compile one rule file (start-up, `metricsd rules check`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"cannot read rule file {path}", [str(exc)]) from None
    return parse_rule_text(text, str(path))


def rule_count(groups: list[RuleGroup]) -> int:
    return sum(len(g.rules) for g in groups)
