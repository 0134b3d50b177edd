"""Alerting: Prometheus rule files evaluated in-process, Alertmanager-style delivery.

`setup(app)` is the only entry point create_app() calls. Imports happen inside it so
that metricsd.keys can import AlertingService without a cycle.
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Load the rules (RuleFileError stops start-up), add the job, route and collector."""
    from metricsd.alerting.wiring import setup_alerting

    setup_alerting(app)
