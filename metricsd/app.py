"""create_app(): the table of contents of metricsd, in start-up order.

Each subsystem's `setup(app)` declares its own keys and at most one cleanup context.
Contexts open in this order and close in reverse: PostgreSQL pools, then the alerting
HTTP session, and the scheduler last of all, so its jobs start only when everything they
use is open and stop before anything closes.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from metricsd import alerting, core, history, ingest, overview, pgbouncer, postgres
from metricsd import web as routes
from metricsd.clientlog import ConciseServerLog
from metricsd.config import Config
from metricsd.web.auth import admin_auth


def create_app(config: Config, path: str | Path | None = None) -> web.Application:
    """Build the application; I/O happens only in the cleanup contexts.

    `path` is the file `config` came from, re-read on reload (None: defaults and env).
    """
    # Request bodies are decompressed by the beacon routes themselves (bounded, strict):
    # aiohttp's decompression accepts trailing garbage and answers corrupt data with a 500.
    app = web.Application(client_max_size=config.ingest.max_body_bytes,
                          middlewares=[admin_auth],
                          handler_args={"auto_decompress": False,
                                        "logger": ConciseServerLog()})
    core.setup(app, config, path)  # config, registry, scheduler, readiness, reload
    ingest.setup(app)  # store, beacon kinds, rate limiter, expiry job
    postgres.setup(app)  # targets, pools (context), scrape jobs, exporter
    pgbouncer.setup(app)  # admin consoles (context), their jobs, collector
    alerting.setup(app)  # rules, evaluation job, dispatcher, HTTP session (context)
    overview.setup(app)  # page figures, per-minute history job
    history.setup(app)  # rollups in the history file (context), reports
    routes.setup(app)  # HTTP routes only
    core.start(app)  # the scheduler (context), last
    return app
