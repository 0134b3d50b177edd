"""Errors metricsd raises on purpose; anything else is a bug."""

from __future__ import annotations


class MetricsdError(Exception):
    """Base of every error metricsd raises deliberately."""


class ConfigError(MetricsdError):
    """The configuration is invalid; `problems` lists each one with its path."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        lines = [self.args[0], *(f"  - {problem}" for problem in self.problems)]
        return "\n".join(lines)


class BeaconError(MetricsdError):
    """A beacon (or one item of a batch) is invalid; the message tells the sender why.

    `reason` is a short fixed code (the `reason` label of metricsd_ingest_rejected_total),
    so bad input cannot create new series; the message may name fields and values.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class LabelError(BeaconError):
    """A label value is not printable, normalisable text of bounded length (metricsd.labels)."""


class RuleError(MetricsdError):
    """An alerting rule cannot be loaded or is outside the supported PromQL subset."""


class CollectorError(MetricsdError):
    """A PostgreSQL collector failed in a way it can describe (missing extension, privileges)."""
