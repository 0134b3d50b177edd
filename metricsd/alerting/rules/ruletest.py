"""`metricsd rules test`: promtool-style rule unit tests run by metricsd's own engine.

The file format is promtool's (`rule_files`, `evaluation_interval`, `tests[]` with
`interval`, `input_series`, `alert_rule_test`, `promql_expr_test`), so one test file is
checked by both `metricsd rules test` and `promtool test rules`, and any difference between
metricsd and Prometheus shows up as a failing test. Series values use promtool's expanding
notation: `1+2x3` is 1 3 5 7, `5x2` is 5 5 5, `_` is a missing sample, `_x2` two of them,
`stale` ends the series. Samples are looked up as Prometheus does: the latest one no older
than 5 minutes before the evaluation time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser as pp
import yaml

from metricsd.alerting.rules.engine import AlertEngine
from metricsd.alerting.rules.load import (
    RuleFileError,
    RuleGroup,
    load_rule_file,
    parse_prom_duration,
)
from metricsd.alerting.rules.promql import NAME, UnsupportedQuery, compile_query

LOOKBACK_S = 300.0
STALE = None
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN"
_EXPAND_RE = re.compile(rf"^({_NUMBER})(?:([-+])({_NUMBER}))?x(\d+)$")


class RuleTestError(ValueError):
    """The test file itself is invalid (not a failing expectation)."""


def _float(text: str) -> float:
    return float(text.replace("Inf", "inf"))


def expand_values(text: str) -> list[float | str | None]:
    """promtool's notation -> one entry per interval: a float, '_' (missing) or None (stale)."""
    out: list[float | str | None] = []
    for token in str(text).split():
        if token == "_":
            out.append("_")
        elif token == "stale":
            out.append(STALE)
        elif token.startswith("_x") and token[2:].isdigit():
            out.extend(["_"] * int(token[2:]))
        elif (match := _EXPAND_RE.match(token)) is not None:
            start, sign, step, times = match.groups()
            a, b = _float(start), _float(step) if step else 0.0
            if sign == "-":
                b = -b
            out.extend(a + i * b for i in range(int(times) + 1))
        else:
            try:
                out.append(_float(token))
            except ValueError:
                raise RuleTestError(f"invalid series value {token!r}") from None
    return out


def parse_series(text: str) -> dict[str, str]:
    """`name{a="b"}` -> labels including __name__."""
    try:
        expr = pp.parse(text)
    except ValueError as exc:
        raise RuleTestError(f"invalid series {text!r}: {exc}") from None
    if not isinstance(expr, pp.VectorSelector):
        raise RuleTestError(f"invalid series {text!r}: expected name{{labels}}")
    labels = {m.name: m.value for m in expr.matchers.matchers}
    if expr.name:
        labels[NAME] = expr.name
    return labels


def _duration(value: Any, what: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if value in ("0", 0):
        return 0.0
    try:
        return parse_prom_duration(value)
    except ValueError as exc:
        raise RuleTestError(f"{what}: {exc}") from None


@dataclass
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float | None]]  # (time, value or STALE)


@dataclass
class SeriesSet:
    """Input series over time, read as a Prometheus instant query would."""

    series: list[Series] = field(default_factory=list)

    def at(self, t: float) -> dict[str, list[tuple[dict[str, str], float]]]:
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for s in self.series:
            latest: tuple[float, float | None] | None = None
            for point in s.points:
                if point[0] > t:
                    break
                latest = point
            if latest is None or latest[1] is STALE or latest[0] < t - LOOKBACK_S:
                continue
            labels = {k: v for k, v in s.labels.items() if k != NAME}
            out.setdefault(s.labels[NAME], []).append((labels, float(latest[1])))
        return out


def build_series(raw: list[Mapping[str, Any]], interval: float) -> SeriesSet:
    out = SeriesSet()
    for item in raw or []:
        labels = parse_series(str(item.get("series", "")))
        if NAME not in labels:
            raise RuleTestError(f"series {item.get('series')!r} has no metric name")
        points: list[tuple[float, float | None]] = []
        for i, value in enumerate(expand_values(str(item.get("values", "")))):
            if value == "_":
                continue
            points.append((i * interval, value if value is STALE else float(value)))
        out.series.append(Series(labels, points))
    return out


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _fmt_alerts(alerts: list[tuple[dict[str, str], dict[str, str]]]) -> str:
    return "\n".join(f"      labels: {dict(sorted(lab.items()))}\n"
                     f"      annotations: {dict(sorted(ann.items()))}"
                     for lab, ann in sorted(alerts, key=lambda x: sorted(x[0].items()))) \
        or "      (none)"


def run_test_group(groups: list[RuleGroup], test: Mapping[str, Any], eval_interval: float,
                   name: str) -> list[str]:
    """Run one entry of `tests:`; return failure messages (empty when it passes)."""
    interval = _duration(test.get("interval", eval_interval), f"{name}: interval")
    series = build_series(test.get("input_series") or [], interval)
    engine = AlertEngine(groups, external_url=str(test.get("external_url", "")),
                         external_labels=dict(test.get("external_labels") or {}))
    alert_tests = list(test.get("alert_rule_test") or [])
    expr_tests = list(test.get("promql_expr_test") or [])
    checks: dict[float, list[Mapping[str, Any]]] = {}
    for case in alert_tests:
        t = _duration(case.get("eval_time", 0), f"{name}: eval_time")
        checks.setdefault(t, []).append(case)
    failures: list[str] = []
    last = max(checks, default=0.0)
    steps = math.floor(last / eval_interval + 1e-9)
    times = [i * eval_interval for i in range(steps + 1)]
    known = {rule.name for group in groups for rule in group.rules}
    pending_checks = sorted(checks)
    for t in times:
        engine.evaluate(series.at(t), t)
        while pending_checks and pending_checks[0] < t + eval_interval - 1e-9:
            check_time = pending_checks.pop(0)
            for case in checks[check_time]:
                failures += _check_alerts(engine, case, check_time, known, name)
    for case in expr_tests:
        failures += _check_expr(series, case, name)
    return failures


def _check_alerts(engine: AlertEngine, case: Mapping[str, Any], t: float, known: set[str],
                  name: str) -> list[str]:
    alertname = case.get("alertname")
    if alertname not in known:
        return [f"{name}: alertname {alertname!r} is not a rule in the rule files"]
    got = [(dict(a.labels), dict(a.annotations)) for a in engine.all_alerts()
           if a.name == alertname and a.state == "firing"]
    want = []
    for exp in case.get("exp_alerts") or []:
        labels = {str(k): str(v) for k, v in (exp.get("exp_labels") or {}).items()}
        labels["alertname"] = str(alertname)
        annotations = {str(k): str(v) for k, v in (exp.get("exp_annotations") or {}).items()}
        want.append((labels, annotations))
    key = lambda x: (sorted(x[0].items()), sorted(x[1].items()))  # noqa: E731
    if sorted(got, key=key) == sorted(want, key=key):
        return []
    return [f"{name}: alertname: {alertname}, time: {t:g}s,\n"
            f"    exp:\n{_fmt_alerts(want)}\n    got:\n{_fmt_alerts(got)}"]


def _check_expr(series: SeriesSet, case: Mapping[str, Any], name: str) -> list[str]:
    expr = str(case.get("expr", ""))
    t = _duration(case.get("eval_time", 0), f"{name}: eval_time")
    try:
        query = compile_query(expr)
    except UnsupportedQuery as exc:
        return [f"{name}: expr {expr!r}: {exc}"]
    got = sorted((sorted(s.label_dict().items()), s.value) for s in query.evaluate(series.at(t)))
    want = []
    for sample in case.get("exp_samples") or []:
        labels = parse_series(str(sample.get("labels", "{}"))) if sample.get("labels") else {}
        want.append((sorted(labels.items()), _float(str(sample.get("value")))))
    want.sort()
    ok = len(got) == len(want) and all(
        g[0] == w[0] and _same(g[1], w[1]) for g, w in zip(got, want, strict=True)
    )
    if ok:
        return []
    return [f"{name}: expr: {expr!r}, time: {t:g}s,\n    exp: {want}\n    got: {got}"]


def run_test_file(path: str | Path) -> tuple[int, list[str]]:
    """Run every test of one file; (number of tests, failure messages)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RuleTestError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RuleTestError(f"{path}: expected a mapping with rule_files and tests")
    eval_interval = _duration(data.get("evaluation_interval", "1m"), "evaluation_interval")
    if eval_interval <= 0:
        raise RuleTestError("evaluation_interval must be positive")
    groups: list[RuleGroup] = []
    for rule_file in data.get("rule_files") or []:
        rule_path = Path(rule_file)
        if not rule_path.is_absolute():
            rule_path = path.parent / rule_path
        try:
            groups += load_rule_file(rule_path)
        except RuleFileError as exc:
            raise RuleTestError(str(exc)) from None
    failures: list[str] = []
    tests = data.get("tests") or []
    for i, test in enumerate(tests):
        name = str(test.get("name") or f"test {i}")
        failures += run_test_group(groups, test, eval_interval, name)
    return len(tests), failures
