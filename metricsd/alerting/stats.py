"""The alerting subsystem's own counters: plain numbers the collector turns into families."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class AlertingStats:
    """Written by the engine job, the dispatcher and receivers; read by the collector."""

    # (receiver, outcome) -> notifications; outcome: success, failure, fallback, dead_letter
    notifications: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (receiver, result) -> HTTP attempts; result: success, retry, error
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letters: int = 0
    dead_letter_write_failures: int = 0  # failed appends to alerting.dead_letter_file
    dead_letters_dropped: int = 0  # given up (logged in full) when the buffer overflowed
    dead_letters_pending: int = 0  # waiting in memory for the file to be writable again
    evaluations: int = 0
    evaluation_failures: Counter[str] = field(default_factory=Counter)  # alertname -> count
    last_evaluation_seconds: float = 0.0
    evaluation_seconds_sum: float = 0.0
    last_evaluation_timestamp: float = 0.0
    state_writes: int = 0
    state_write_failures: int = 0
    receiver_up: dict[str, bool] = field(default_factory=dict)
    # format: alertmanager_api, by (receiver, Alertmanager URL): alerts posted and accepted,
    # alerts in batches that failed, alerts dropped from a full queue, the queue's length.
    am_sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    am_failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    am_dropped: Counter[tuple[str, str]] = field(default_factory=Counter)
    am_queue_length: dict[tuple[str, str], int] = field(default_factory=dict)
