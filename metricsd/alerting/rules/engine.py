"""Alert states per rule and label set, with Prometheus's semantics for `for` and keep_firing_for.

`AlertEngine.evaluate(source, now)` is pure: it reads current samples (name -> [(labels,
value)]), moves every alert instance through inactive -> pending -> firing -> resolved, and
returns whether anything changed. No I/O happens here; the service persists and notifies.

- A new result element starts `pending` at `active_at`; it fires on the first evaluation at
  which `now - active_at >= for` (at once when `for` is 0).
- A pending alert whose element disappears is dropped (inactive), never notified.
- A firing alert whose element disappears stays firing for `keep_firing_for` (counted from
  the first evaluation that missed it), then becomes `resolved` at that evaluation's time;
  resolved alerts are kept for RESOLVED_RETENTION_S so notifications can say so.
- A resolved alert whose element comes back is a new alert (new `active_at`).
- An alert restored after a restart is *held*: until its rule has been evaluated on fresh
  data for the rule's grace period (`restore(..., grace=)`, counted from the restore), it
  keeps its state, `active_at` and `fired_at` whatever the evaluations say. The store is
  empty after a restart, so without the hold the first evaluation would resolve every
  firing alert and the next one would page again with a new start. Prometheus solves the
  same problem with `ALERTS_FOR_STATE` and `--rules.alert.for-grace-period`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from metricsd.alerting.rules.load import AlertRule, RuleGroup
from metricsd.alerting.rules.promql import EvaluationError, SampleSource

log = logging.getLogger(__name__)

RESOLVED_RETENTION_S = 900.0  # Prometheus keeps resolved alerts 15 minutes for re-sending
STATES = ("pending", "firing", "resolved")
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert fingerprint: FNV-1a 64 over sorted name/value pairs, 0xff-separated."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
            h = ((h ^ 0xFF) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


@dataclass
class Alert:
    """One alert instance; the engine owns and mutates it, readers get copies."""

    name: str
    rule_key: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str
    active_at: float
    value: float = math.nan
    fired_at: float | None = None
    resolved_at: float | None = None
    keep_firing_since: float | None = None
    last_evaluated: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["value"] = self.value if math.isfinite(self.value) else None
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        fields = dict(data)
        fields["value"] = math.nan if fields.get("value") is None else float(fields["value"])
        return cls(**fields)


def rule_keys(groups: Iterable[RuleGroup]) -> list[tuple[str, AlertRule]]:
    """A stable key per rule: group/alert/occurrence, so state survives restarts and edits."""
    out = []
    for group in groups:
        seen: dict[str, int] = {}
        for rule in group.rules:
            n = seen.get(rule.name, 0)
            seen[rule.name] = n + 1
            out.append((f"{group.name}/{rule.name}/{n}", rule))
    return out


@dataclass
class RuleHealth:
    """The last evaluation of one rule."""

    ok: bool = True
    error: str | None = None
    failures: int = 0


@dataclass
class AlertEngine:
    """All rules and their alert instances; evaluate() is the only writer."""

    groups: list[RuleGroup]
    external_url: str = ""
    external_labels: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    resolved_retention_s: float = RESOLVED_RETENTION_S

    def __post_init__(self) -> None:
        self.rules: dict[str, AlertRule] = dict(rule_keys(self.groups))
        self.group_of: dict[str, RuleGroup] = {
            key: group for group in self.groups for key, r in rule_keys([group])
        }
        self.active: dict[str, dict[str, Alert]] = {key: {} for key in self.rules}
        self.health: dict[str, RuleHealth] = {key: RuleHealth() for key in self.rules}
        self.names: frozenset[str] = frozenset(
            name for rule in self.rules.values() for name in rule.query.names
        )
        self.last_evaluation: float | None = None
        self._next_group_eval: dict[str, float] = {}
        # Alerts restored for rules that no longer exist: resolved once, then forgotten.
        self.orphans: list[Alert] = []
        # Restored alerts still held (rule key -> fingerprints) and until when (rule key).
        self.held: dict[str, set[str]] = {}
        self.hold_until: dict[str, float] = {}

    # ---- evaluation -------------------------------------------------------------------

    def due_groups(self, now: float) -> set[str]:
        """Groups to evaluate now: all, except those with their own longer interval."""
        due = set()
        for group in self.groups:
            if group.interval_s is None or now >= self._next_group_eval.get(group.name, 0.0):
                due.add(group.name)
                if group.interval_s is not None:
                    self._next_group_eval[group.name] = now + group.interval_s * 0.999
        return due

    def evaluate(self, source: SampleSource, now: float | None = None) -> bool:
        """One evaluation of every due rule at `now`; True when any alert changed state."""
        now = self.clock() if now is None else now
        due = self.due_groups(now)
        changed = False
        for key, rule in self.rules.items():
            if self.group_of[key].name not in due:
                continue
            try:
                changed |= self._evaluate_rule(key, rule, source, now)
            except EvaluationError as exc:
                health = self.health[key]
                if health.ok:  # log once per failure streak, not every tick
                    log.warning("alert rule %s failed: %s", rule.name, exc)
                health.ok, health.error = False, str(exc)
                health.failures += 1
                continue
            if not self.health[key].ok:
                log.info("alert rule %s evaluates again", rule.name)
            self.health[key].ok, self.health[key].error = True, None
        self.orphans = [a for a in self.orphans
                        if now - (a.resolved_at or now) <= self.resolved_retention_s]
        self.last_evaluation = now
        return changed

    def _evaluate_rule(
        self, key: str, rule: AlertRule, source: SampleSource, now: float
    ) -> bool:
        vector = rule.query.evaluate(source)
        active = self.active[key]
        found: dict[str, tuple[dict[str, str], dict[str, str], float]] = {}
        for sample in vector:
            sample_labels = sample.label_dict()
            labels = dict(sample.labels)
            for name, template in rule.labels.items():
                labels[name] = template.render(sample_labels, sample.value,
                                               self.external_labels, self.external_url)
            labels["alertname"] = rule.name
            labels = {k: v for k, v in labels.items() if v != ""}
            fp = fingerprint(labels)
            if fp in found:
                raise EvaluationError(
                    "vector contains metrics with the same labelset after applying alert labels"
                )
            annotations = {
                name: template.render(sample_labels, sample.value, self.external_labels,
                                      self.external_url)
                for name, template in rule.annotations.items()
            }
            found[fp] = (labels, annotations, sample.value)
        changed = False
        held = self._held(key, now)
        for fp, (labels, annotations, value) in found.items():
            alert = active.get(fp)
            if alert is None or alert.state == "resolved":
                alert = Alert(rule.name, key, fp, labels, annotations, "pending", now)
                active[fp] = alert
                held.discard(fp)
                changed = True
            alert.labels, alert.annotations, alert.value = labels, annotations, value
            alert.keep_firing_since = None
            alert.last_evaluated = now
        for fp, alert in list(active.items()):
            if fp in held:
                continue  # restored, and the data it depends on is not yet complete
            if fp in found:
                if alert.state == "pending" and now - alert.active_at >= rule.for_s:
                    alert.state, alert.fired_at = "firing", now
                    changed = True
                continue
            if alert.state == "pending":
                del active[fp]
                changed = True
            elif alert.state == "resolved":
                if alert.resolved_at is not None and \
                        now - alert.resolved_at > self.resolved_retention_s:
                    del active[fp]
            elif alert.state == "firing":
                if rule.keep_firing_for_s > 0:
                    if alert.keep_firing_since is None:
                        alert.keep_firing_since = now
                        changed = True
                    if now - alert.keep_firing_since < rule.keep_firing_for_s:
                        continue
                alert.state, alert.resolved_at = "resolved", now
                changed = True
        return changed

    def _held(self, key: str, now: float) -> set[str]:
        """Fingerprints of `key` still held at `now`; the hold ends for all of them at once."""
        held = self.held.get(key)
        if held is None:
            return set()
        if now >= self.hold_until.get(key, 0.0):
            del self.held[key]
            self.hold_until.pop(key, None)
            return set()
        return held

    # ---- reading ----------------------------------------------------------------------

    def notifiable(self) -> list[Alert]:
        """Firing and recently resolved alerts: what Prometheus would send to Alertmanager."""
        out = [a for alerts in self.active.values() for a in alerts.values()
               if a.state in ("firing", "resolved")]
        out.extend(self.orphans)
        return out

    def all_alerts(self) -> list[Alert]:
        return [a for alerts in self.active.values() for a in alerts.values()]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for alert in self.all_alerts():
            counts[alert.state] += 1
        return counts

    def rule_of(self, alert: Alert) -> AlertRule | None:
        return self.rules.get(alert.rule_key)

    # ---- persistence ------------------------------------------------------------------

    def dump(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.all_alerts()]

    def restore(self, saved: Iterable[Mapping[str, Any]], now: float,
                grace: Mapping[str, float] | None = None) -> int:
        """Load alerts saved before a restart, each held for its rule's `grace` seconds.

        Alerts of rules that no longer exist resolve now (Alertmanager would resolve them
        too once they stopped arriving); `saved` has been validated by the state file.
        """
        restored = 0
        for data in saved:
            try:
                alert = Alert.from_json(data)
            except (TypeError, ValueError, KeyError):
                continue
            if alert.rule_key in self.active:
                key = alert.rule_key
                self.active[key][alert.fingerprint] = alert
                if alert.state != "resolved":
                    self.held.setdefault(key, set()).add(alert.fingerprint)
                    self.hold_until[key] = now + (grace or {}).get(key, 0.0)
                restored += 1
            elif alert.state == "firing":
                alert.state, alert.resolved_at = "resolved", now
                self.orphans.append(alert)
        return restored
