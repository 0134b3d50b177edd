"""The client must import in apps that have neither starlette nor flask installed."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
for name in ("starlette", "flask", "werkzeug", "fastapi", "django"):
    sys.modules[name] = None  # any import of these now raises ImportError
from metricsd_client import (AsyncSender, DjangoRouteMiddleware, MetricsdASGIMiddleware,
                             MetricsdWSGIMiddleware, SenderCollector, ThreadSender,
                             setup_aiohttp)
assert "aiohttp.web" in sys.modules  # only because setup_aiohttp was asked for
"""

WSGI_ONLY = """
import sys
from metricsd_client import MetricsdWSGIMiddleware
assert "aiohttp" not in sys.modules, "a WSGI app should not pay for importing aiohttp"
"""


def test_imports_without_starlette_or_flask() -> None:
    subprocess.run([sys.executable, "-c", CODE], check=True, timeout=60)


def test_wsgi_middleware_does_not_import_aiohttp() -> None:
    subprocess.run([sys.executable, "-c", WSGI_ONLY], check=True, timeout=60)
