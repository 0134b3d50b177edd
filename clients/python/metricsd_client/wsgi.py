"""WSGI middleware (Flask, Django, any WSGI app) with a thread sender: no event loop needed.

The route template comes from, in order: `environ["metricsd.route"]` (set by
DjangoRouteMiddleware or any framework hook), Flask/werkzeug's matched rule (read while
the response starts, when Flask's request is still in the environ), else a normalised path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from metricsd_client.default import offer_default_sender
from metricsd_client.thread_sender import ThreadSender

ROUTE_KEY = "metricsd.route"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _werkzeug_rule(environ: dict[str, Any]) -> str | None:
    request = environ.get("werkzeug.request")
    rule = getattr(request, "url_rule", None)
    text = getattr(rule, "rule", None)
    return text if isinstance(text, str) else None


class MetricsdWSGIMiddleware:
    """`app.wsgi_app = MetricsdWSGIMiddleware(app.wsgi_app, url=..., service=..., token=...)`.

    The duration runs until the app returns its response iterable; a streamed body sent
    after that is not included.
    """

    def __init__(
        self,
        app: WSGIApp,
        url: str | None = None,
        *,
        service: str = "app",
        token: str | None = None,
        sender: ThreadSender | None = None,
        **options: Any,
    ) -> None:
        if sender is None:
            if url is None:
                raise ValueError("give the metricsd url or a sender")
            sender = ThreadSender(url, service=service, token=token, **options)
        self.app = app
        self.sender = sender
        offer_default_sender(sender)  # timer() and the cache helpers use it too

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start = time.perf_counter()
        seen: list[Any] = [500, None]  # status, route read while the response started

        def start_timed(status: str, headers: list[tuple[str, str]],
                        exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
            seen[0] = int(status[:3])
            seen[1] = environ.get(ROUTE_KEY) or _werkzeug_rule(environ)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start_timed)
        except BaseException:
            seen[0] = 500
            raise
        finally:
            route = seen[1] or environ.get(ROUTE_KEY)
            if route is None:
                # The raw path: metricsd normalises routes (ids become :id) itself.
                route = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/") or "/"
            self.sender.record(route, environ.get("REQUEST_METHOD", "GET"), seen[0],
                               time.perf_counter() - start)


class DjangoRouteMiddleware:
    """Django middleware that hands the resolved URL pattern (e.g. `users/<int:pk>/`) to the
    WSGI middleware; add it to MIDDLEWARE. Needs no Django import."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        if route:
            request.environ[ROUTE_KEY] = "/" + route.lstrip("/")
        return None
