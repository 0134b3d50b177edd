"""Routes: label matchers to receivers, with Alertmanager's grouping timers and defaults.

`alerting.routes` is a flat list tried in order (first match wins unless `continue: true`),
below a root route that uses `default_receiver` and the alerting-level `group_by`,
`group_wait`, `group_interval` and `repeat_interval` (Alertmanager's defaults: alertname,
30s, 5m, 4h). A route leaves a timer unset to inherit the root's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from metricsd.config import AlertingConfig

_MATCHER_RE = re.compile(
    r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*$'
)


class MatcherError(ValueError):
    """A matcher string that is not `label op "value"`."""


@dataclass(frozen=True)
class Matcher:
    """`severity="page"`, `team=~"db|ops"`, `env!="dev"` (regexes anchored, as Alertmanager)."""

    name: str
    op: str
    value: str

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise MatcherError(f"invalid regular expression {self.value!r}: {exc}") from None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        match = _MATCHER_RE.match(text)
        if match is None:
            raise MatcherError(f'invalid matcher {text!r}: use label="value", =~, != or !~')
        name, op, quoted, bare = match.groups()
        value = bytes(quoted, "utf-8").decode("unicode_escape") if quoted is not None else bare
        return cls(name, op, value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        found = re.fullmatch(self.value, have) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


@dataclass(frozen=True)
class Route:
    """One resolved route: receiver, matchers and effective grouping settings."""

    key: str  # Alertmanager's route key, the prefix of the group key
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...] | None  # None: group by every label ('...')
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if self.group_by is None:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if labels.get(k, "")}


def _group_by(labels: list[str]) -> tuple[str, ...] | None:
    return None if "..." in labels else tuple(labels)


class Router:
    """Finds the routes an alert takes; the root route catches what no route matched."""

    def __init__(self, config: AlertingConfig) -> None:
        if config.default_receiver is None:
            raise MatcherError("alerting.default_receiver is required to route alerts")
        self.root = Route(
            key="{}",
            receiver=config.default_receiver,
            matchers=(),
            group_by=_group_by(config.group_by),
            group_wait=config.group_wait,
            group_interval=config.group_interval,
            repeat_interval=config.repeat_interval,
        )
        self.routes: list[Route] = []
        for i, raw in enumerate(config.routes):
            try:
                matchers = tuple(Matcher.parse(m) for m in raw.matchers)
            except MatcherError as exc:
                raise MatcherError(f"alerting.routes[{i}]: {exc}") from None
            key = "{}/{" + ",".join(str(m) for m in matchers) + "}"
            if any(r.key == key for r in self.routes):
                key = f"{key}/{i}"  # two routes with the same matchers still group apart
            self.routes.append(Route(
                key=key,
                receiver=raw.receiver,
                matchers=matchers,
                group_by=self.root.group_by if raw.group_by is None else _group_by(raw.group_by),
                group_wait=self.root.group_wait if raw.group_wait is None else raw.group_wait,
                group_interval=(self.root.group_interval if raw.group_interval is None
                                else raw.group_interval),
                repeat_interval=(self.root.repeat_interval if raw.repeat_interval is None
                                 else raw.repeat_interval),
                continue_=raw.continue_,
            ))

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        matched = []
        for route in self.routes:
            if route.matches(labels):
                matched.append(route)
                if not route.continue_:
                    break
        return matched or [self.root]


def check_matchers(config: AlertingConfig) -> list[str]:
    """Problems with route matchers, for configuration validation."""
    problems = []
    for i, route in enumerate(config.routes):
        for text in route.matchers:
            try:
                Matcher.parse(text)
            except MatcherError as exc:
                problems.append(f"alerting.routes[{i}].matchers: {exc}")
    return problems
