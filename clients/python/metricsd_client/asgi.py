"""ASGI middleware (Starlette, FastAPI): records the matched route's path, e.g. `/users/{id}`.

Starlette's router writes the matched route into the request's scope, which is the same
dict this middleware passed down, so the template is read after the app returns: no
second route match, and no starlette import.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from metricsd_client.async_sender import AsyncSender
from metricsd_client.default import offer_default_sender

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_template(scope: Scope) -> str:
    """Mount prefix + the route's path template; the raw path (metricsd normalises it)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        root = scope.get("root_path", "")
        # root_path grows by each Mount's prefix; app_root_path is where the app itself sits.
        mount_prefix = str(root[len(scope.get("app_root_path", root)):])
        return mount_prefix + path
    path = scope.get("path")
    return path if isinstance(path, str) and path else "/"


class MetricsdASGIMiddleware:
    """`app.add_middleware(MetricsdASGIMiddleware, url=..., service=..., token=...)`."""

    def __init__(
        self,
        app: ASGIApp,
        url: str | None = None,
        *,
        service: str = "app",
        token: str | None = None,
        sender: AsyncSender | None = None,
        **options: Any,
    ) -> None:
        if sender is None:
            if url is None:
                raise ValueError("give the metricsd url or a sender")
            sender = AsyncSender(url, service=service, token=token, **options)
        self.app = app
        self.sender = sender
        offer_default_sender(sender)  # timer() and the cache helpers use it too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        sender = self.sender
        if not sender.running:
            sender.start()  # servers without lifespan support: start on the first request
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except asyncio.CancelledError:
            status = 0  # the client went away
            raise
        except BaseException:
            status = 500
            raise
        finally:
            if status:
                sender.record(route_template(scope), scope["method"], status,
                              time.perf_counter() - start)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the sender at startup; flush it before the server is told shutdown is done."""

        async def on_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.sender.start()
            return message

        async def on_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.sender.close()
            await send(message)

        await self.app(scope, on_receive, on_send)
