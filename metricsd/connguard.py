"""Connection hygiene below HTTP: a header read timeout and a cap on connections per IP.

aiohttp waits forever for the headers of a request (its keep-alive timer only starts after
a response), and accepts any number of connections from one client, so a few hundred
sockets that send one byte a minute would use up the file descriptors and lock every
beacon out. Each accepted socket gets a thin protocol in front of aiohttp's: it counts
connections per client IP (refusing more than the cap with a 429), and a sweeper closes a
connection whose request head is not complete `header_timeout` after its first byte
(with a 408), or that sent nothing for `keepalive_timeout` (silently: aiohttp's own
keep-alive timer only runs after a first response). The body read
timeout is the beacon handler's (web/beacons.py), which can answer it with a 408.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

log = logging.getLogger("metricsd.http")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _raw_response(status: str, reason: str, message: str, extra: str = "") -> bytes:
    body = f'{{"error": "{message}", "reason": "{reason}"}}'.encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


TOO_MANY = _raw_response(
    "429 Too Many Requests", "too_many_connections",
    "too many open connections from this address (server.max_connections_per_ip)",
    "Retry-After: 1\r\n")
HEADER_TIMEOUT = _raw_response(
    "408 Request Timeout", "header_timeout",
    "request headers not received within server.header_timeout")


class ConnectionGuard:
    """Open connections per client IP, and the sweeper that enforces the header timeout."""

    def __init__(
        self, header_timeout: float, idle_timeout: float, max_per_ip: int,
        exempt: Sequence[Any] = (),
    ) -> None:
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.max_per_ip = max_per_ip
        self.exempt: tuple[Network, ...] = tuple(exempt)
        self.open: Counter[str] = Counter()
        self.live: set[GuardedProtocol] = set()
        self.refused = 0
        self.timed_out = 0

    def _exempt(self, ip: str) -> bool:
        if not self.exempt:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.exempt)

    def admit(self, ip: str) -> bool:
        """Count a new connection from `ip`; False when it would exceed the cap."""
        if self.open[ip] >= self.max_per_ip and not self._exempt(ip):
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:  # one line, not a flood
                log.warning("refusing connections from %s: %d open (server.max_connections_"
                            "per_ip); %d refused so far", ip, self.open[ip], self.refused)
            return False
        self.open[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self.open[ip] -= 1
        if self.open[ip] <= 0:
            del self.open[ip]

    def sweep(self, now: float) -> None:
        """Close connections whose request head is overdue, or that idle too long."""
        for conn in list(self.live):
            if conn.busy():
                conn.idle_since = conn.partial_since = None
                continue
            if conn.idle_since is None:  # first seen idle: remember how much had arrived
                conn.idle_since, conn.idle_bytes = now, conn.bytes_in
            elif conn.partial_since is None and conn.bytes_in > conn.idle_bytes:
                conn.partial_since = now  # part of a request head arrived since
            if conn.partial_since is not None:
                if now - conn.partial_since >= self.header_timeout:
                    self.timed_out += 1
                    conn.expire()
            elif now - conn.idle_since >= self.idle_timeout:
                conn.expire()

    async def run(self) -> None:
        """Sweep a few times per timeout until cancelled."""
        interval = max(0.05, min(1.0, self.header_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())

    def factory(self, server: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` wrapping aiohttp's `server`."""
        return lambda: GuardedProtocol(server(), self)


class GuardedProtocol(asyncio.Protocol):
    """Forwards to aiohttp's RequestHandler; admits by IP and tracks header progress."""

    def __init__(self, inner: Any, guard: ConnectionGuard) -> None:
        self.inner: Any = inner
        self.guard = guard
        self.ip = ""
        self.transport: asyncio.Transport | None = None
        self.bytes_in = 0  # counted here; everything else is the sweeper's (hot path)
        self.idle_bytes = 0
        self.idle_since: float | None = None  # no request since (seen by the sweeper)
        self.partial_since: float | None = None  # bytes of an unfinished request head seen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else "unknown"
        if not self.guard.admit(self.ip):
            self.transport.write(TOO_MANY)  # type: ignore[union-attr]
            transport.close()
            self.inner = None
            return
        self.guard.live.add(self)
        self.idle_since = time.monotonic()  # a new connection owes a head from its start
        self.inner.connection_made(transport)

    def busy(self) -> bool:
        """A request is queued or being handled (aiohttp keeps no public flag for this;
        server.py's drain reads the same attribute)."""
        inner = self.inner
        return inner is not None and bool(
            getattr(inner, "_request_in_progress", False) or getattr(inner, "_messages", ()))

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.inner is not None:
            self.inner.data_received(data)
            if self.idle_since is not None and self.busy():
                # A whole request head arrived: the bytes the sweeper saw since it last
                # looked were no partial head. Without this, a keep-alive client whose
                # quick requests the sweeper never catches in flight got a 408 mid-stream.
                self.idle_since = self.partial_since = None

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is None:
            return
        self.guard.live.discard(self)
        self.guard.release(self.ip)
        inner, self.inner = self.inner, None
        inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def expire(self) -> None:
        """The header timeout passed: a 408 if part of a request came, then close."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.partial_since is not None:
            log.info("client error: %s: request headers not complete within %gs; closed",
                     self.ip, self.guard.header_timeout)
            self.transport.write(HEADER_TIMEOUT)
        self.transport.close()


class GuardedSite(web.TCPSite):
    """A TCPSite whose sockets go through a ConnectionGuard."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 guard: ConnectionGuard) -> None:
        super().__init__(runner, host, port)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            self.guard.factory(server), self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
