"""Self-metrics of alerting: notifications, attempts, evaluations, alerts by state.

collect() only reads counters the job and the dispatcher already updated; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import Metric

from metricsd.alerting.rules.engine import STATES
from metricsd.alerting.service import AlertingService
from metricsd.alerting.stats import AlertingStats

_AM_COUNTERS = (
    ("metricsd_alertmanager_alerts_sent", "am_sent",
     "Alerts an Alertmanager accepted (format: alertmanager_api)"),
    ("metricsd_alertmanager_alerts_failed", "am_failed",
     "Alerts in POSTs an Alertmanager refused or did not answer; re-sent after resend_delay"),
    ("metricsd_alertmanager_alerts_dropped", "am_dropped",
     "Alerts dropped from a full Alertmanager queue (oldest first) or left at shutdown"),
)


def _alertmanager_families(stats: AlertingStats) -> Iterator[Metric]:
    """metricsd_alertmanager_*: per receiver and Alertmanager base URL."""
    for name, attr, doc in _AM_COUNTERS:
        family = Metric(name, doc, "counter")
        counts = getattr(stats, attr)
        for key in sorted(stats.am_queue_length):
            family.add_sample(f"{name}_total", {"receiver": key[0], "alertmanager": key[1]},
                              float(counts.get(key, 0)))
        yield family
    length = Metric("metricsd_alertmanager_queue_length",
                    "Alerts waiting to be sent to an Alertmanager", "gauge")
    for (receiver, url), n in sorted(stats.am_queue_length.items()):
        length.add_sample("metricsd_alertmanager_queue_length",
                          {"receiver": receiver, "alertmanager": url}, float(n))
    yield length


class AlertingCollector:
    """Exports metricsd_alert_* and metricsd_alerts from an AlertingService."""

    def __init__(self, service: AlertingService) -> None:
        self.service = service

    def describe(self) -> Iterable[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        service, stats = self.service, self.service.stats
        notifications = Metric("metricsd_alert_notifications",
                               "Notifications by receiver and outcome (success, failure, "
                               "fallback, dead_letter)", "counter")
        for (receiver, outcome), n in sorted(stats.notifications.items()):
            notifications.add_sample("metricsd_alert_notifications_total",
                                     {"receiver": receiver, "outcome": outcome}, float(n))
        yield notifications
        attempts = Metric("metricsd_alert_notification_attempts",
                          "HTTP attempts by receiver and result (success, retry, error)",
                          "counter")
        for (receiver, result), n in sorted(stats.attempts.items()):
            attempts.add_sample("metricsd_alert_notification_attempts_total",
                                {"receiver": receiver, "result": result}, float(n))
        yield attempts
        up = Metric("metricsd_alert_receiver_up",
                    "1 while the receiver's last attempt succeeded (or none was made)", "gauge")
        for receiver, ok in sorted(stats.receiver_up.items()):
            up.add_sample("metricsd_alert_receiver_up", {"receiver": receiver}, float(ok))
        yield up
        dead = Metric("metricsd_alert_dead_letters",
                      "Notifications no receiver took, written to the dead-letter log", "counter")
        dead.add_sample("metricsd_alert_dead_letters_total", {}, float(stats.dead_letters))
        yield dead
        failures = Metric("metricsd_alert_dead_letter_write_failures",
                          "Failed writes to the dead-letter file (each one retried)", "counter")
        failures.add_sample("metricsd_alert_dead_letter_write_failures_total", {},
                            float(stats.dead_letter_write_failures))
        yield failures
        pending = Metric("metricsd_alert_dead_letters_pending",
                         "Dead letters kept in memory until the dead-letter file takes them",
                         "gauge")
        pending.add_sample("metricsd_alert_dead_letters_pending", {},
                           float(stats.dead_letters_pending))
        yield pending
        dropped = Metric("metricsd_alert_dead_letters_dropped",
                         "Dead letters given up (logged in full instead) when the buffer "
                         "overflowed", "counter")
        dropped.add_sample("metricsd_alert_dead_letters_dropped_total", {},
                           float(stats.dead_letters_dropped))
        yield dropped
        duration = Metric("metricsd_alert_evaluation_duration_seconds",
                          "Time spent evaluating every rule per tick", "summary")
        duration.add_sample("metricsd_alert_evaluation_duration_seconds_count", {},
                            float(stats.evaluations))
        duration.add_sample("metricsd_alert_evaluation_duration_seconds_sum", {},
                            stats.evaluation_seconds_sum)
        yield duration
        last = Metric("metricsd_alert_last_evaluation_timestamp_seconds",
                      "When the rules were last evaluated (Unix time)", "gauge")
        last.add_sample("metricsd_alert_last_evaluation_timestamp_seconds", {},
                        stats.last_evaluation_timestamp)
        yield last
        rule_failures = Metric("metricsd_alert_rule_evaluation_failures",
                          "Evaluations that failed, by alert rule", "counter")
        for name in sorted({rule.name for rule in service.engine.rules.values()}):
            rule_failures.add_sample("metricsd_alert_rule_evaluation_failures_total",
                                {"alertname": name},
                                float(stats.evaluation_failures.get(name, 0)))
        yield rule_failures
        rules = Metric("metricsd_alert_rules", "Alerting rules loaded", "gauge")
        rules.add_sample("metricsd_alert_rules", {}, float(service.rule_count))
        yield rules
        by_state = Metric("metricsd_alerts", "Alert instances by alert name and state", "gauge")
        counts = {(rule.name, state): 0 for rule in service.engine.rules.values()
                  for state in STATES}
        for alert in service.engine.all_alerts():
            counts[(alert.name, alert.state)] = counts.get((alert.name, alert.state), 0) + 1
        for (name, state), n in sorted(counts.items()):
            by_state.add_sample("metricsd_alerts", {"alertname": name, "state": state}, float(n))
        yield by_state
        groups = Metric("metricsd_alert_groups", "Aggregation groups with alerts", "gauge")
        groups.add_sample("metricsd_alert_groups", {},
                          float(len(service.dispatcher.groups) if service.dispatcher else 0))
        yield groups
        yield from _alertmanager_families(stats)
        writes = Metric("metricsd_alert_state_writes",
                        "Alert state file writes by result (ok, error)", "counter")
        writes.add_sample("metricsd_alert_state_writes_total", {"result": "ok"},
                          float(stats.state_writes))
        writes.add_sample("metricsd_alert_state_writes_total", {"result": "error"},
                          float(stats.state_write_failures))
        yield writes
