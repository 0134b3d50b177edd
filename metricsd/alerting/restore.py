"""The restore grace: how long an alert restored after a restart is held as it was.

After a restart the store is empty; the window quantiles and PostgreSQL snapshots a rule
reads fill up again only as beacons arrive and scrapes run. Until then an evaluation that
finds nothing says nothing about the alert, so a restored alert keeps its state, start and
notification log until its rule has been evaluated on fresh data for

    grace = max(alerting.restore_grace, window)

- `alerting.restore_grace` defaults to 2 x the rule's evaluation interval (its group's
  `interval`, else `alerting.evaluation_interval`) + `postgres.scrape_interval`: at least
  one scrape of every PostgreSQL view and two evaluations of what it produced;
- `window` is `ingest.window.seconds` for rules that read a window family (names ending
  in `_window` or `_window_seconds`: exact quantiles over the last T seconds), since a
  quantile over a few seconds of beacons is not the quantile the alert fired on.

This is Prometheus's `--rules.alert.for-grace-period` idea (a restored alert does not
change on the strength of an incomplete picture) applied to resolving as well as firing.
"""

from __future__ import annotations

from metricsd.alerting.rules.engine import rule_keys
from metricsd.alerting.rules.load import AlertRule, RuleGroup
from metricsd.config import AlertingConfig

WINDOW_SUFFIXES = ("_window", "_window_seconds")


def reads_window(rule: AlertRule) -> bool:
    """Whether the rule reads an exact-quantile window family."""
    return any(name.endswith(WINDOW_SUFFIXES) for name in rule.query.names)


def rule_grace(rule: AlertRule, group: RuleGroup, config: AlertingConfig,
               scrape_interval_s: float, window_s: float) -> float:
    """Seconds a restored alert of `rule` is held after the restore."""
    interval = group.interval_s if group.interval_s is not None else config.evaluation_interval
    base = config.restore_grace if config.restore_grace is not None \
        else 2 * interval + scrape_interval_s
    return max(base, window_s if reads_window(rule) else 0.0)


def grace_by_rule(groups: list[RuleGroup], config: AlertingConfig,
                  scrape_interval_s: float, window_s: float) -> dict[str, float]:
    """The grace of every rule, by the engine's rule key."""
    out = {}
    for group in groups:
        for key, rule in rule_keys([group]):
            out[key] = rule_grace(rule, group, config, scrape_interval_s, window_s)
    return out
