"""aiohttp middleware: records the matched resource's template, e.g. `/users/{id}`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from metricsd_client.async_sender import AsyncSender
from metricsd_client.default import offer_default_sender

SENDER = web.AppKey("metricsd_client_sender", AsyncSender)


def route_template(request: web.Request) -> str:
    """The resource's canonical template; the raw path when no route matched.

    metricsd normalises routes itself (ids become `:id`), so the client keeps no rule.
    """
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    return request.path


def aiohttp_middleware(sender: AsyncSender) -> Middleware:
    """Middleware that times every request into `sender` (status 500 when the handler raises)."""
    record = sender.record
    clock = time.perf_counter

    @web.middleware
    async def metricsd_timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = clock()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # raised redirects and 4xx are answers, not errors
            status = exc.status
            raise
        except asyncio.CancelledError:  # the client went away: nobody saw a status
            status = 0
            raise
        finally:
            if status:
                record(route_template(request), request.method, status, clock() - start)

    return metricsd_timing


def setup_aiohttp(
    app: web.Application, url: str, *, service: str, token: str | None = None, **options: Any
) -> AsyncSender:
    """Add the middleware and a cleanup context that starts the sender and flushes it on exit."""
    sender = AsyncSender(url, service=service, token=token, **options)
    offer_default_sender(sender)  # timer() and the cache helpers use it too
    app[SENDER] = sender
    app.middlewares.insert(0, aiohttp_middleware(sender))  # outermost: times the others too

    async def metricsd_sender(app: web.Application) -> AsyncIterator[None]:
        sender.start()
        yield
        await sender.close()

    app.cleanup_ctx.append(metricsd_sender)
    return sender
