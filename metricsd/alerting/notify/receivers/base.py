"""Receiver: turns a Notification into an HTTP POST, signed, timed out and retried.

Each attempt runs under `timeout`. Connection errors, timeouts, 5xx and 429 are retried
with metricsd.retry's policy (equal-jitter exponential backoff; a 429's or 503's
Retry-After is honoured when longer, up to MAX_RETRY_AFTER_S); other 4xx
are the receiver telling us the body is wrong, so they are never retried. A failing
receiver is logged once when it starts failing and once when it recovers, not per attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import aiohttp
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from metricsd.alerting.notify.notification import Notification, NotifyAlert
from metricsd.alerting.stats import AlertingStats
from metricsd.config import ReceiverConfig
from metricsd.retry import Backoff, parse_retry_after

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 600.0  # a Retry-After beyond this is capped, not obeyed blindly
Sleep = Callable[[float], Awaitable[None]]


class DeliveryError(Exception):
    """One failed attempt; `retryable` and `retry_after` decide what happens next."""

    def __init__(self, reason: str, retryable: bool, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """The result of send(): delivered or not, after how many attempts, and why not."""

    ok: bool
    attempts: int
    error: str | None = None
    status: int | None = None


def sign(secret: str, body: bytes) -> str:
    """The signature header value: sha256=<hex HMAC-SHA256 of the exact body bytes>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Receiver:
    """Base of every receiver kind; subclasses only say how a notification looks."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        config: ReceiverConfig,
        stats: AlertingStats | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.name = config.name
        self.stats = stats or AlertingStats()
        self._sleep = sleep
        self._rng = rng
        self.backoff = Backoff(config.backoff, config.max_backoff, MAX_RETRY_AFTER_S)
        self.up = True
        self._failed_attempts = 0
        self.stats.receiver_up[self.name] = True

    # A direct receiver takes every alert routed to it at each evaluation (offer()) and
    # does its own timing (Alertmanager's API); the others get grouped notifications.
    direct: ClassVar[bool] = False

    @classmethod
    def from_config(cls, config: ReceiverConfig, *, evaluation_interval: float = 15.0,
                    **kwargs: Any) -> Receiver:
        """Build from config; `evaluation_interval` is for kinds that time alerts themselves."""
        return cls(config, **kwargs)

    def offer(self, alerts: Sequence[NotifyAlert], now: float,
              session: Callable[[], aiohttp.ClientSession]) -> None:
        """Direct receivers only: the current firing and resolved alerts routed here."""
        raise NotImplementedError

    def adopt(self, old: Receiver) -> None:
        """Reload: take over what the replaced receiver of the same name knew (direct kinds)."""

    async def close(self) -> None:
        """Shutdown hook for receivers that run tasks of their own."""

    def render(self, notification: Notification) -> Mapping[str, Any]:
        """The JSON document for this receiver kind."""
        raise NotImplementedError

    def body(self, notification: Notification) -> bytes:
        return orjson.dumps(self.render(notification))

    def headers(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "metricsd-alerting",
                   **self.config.headers}
        if self.config.secret:
            headers[self.config.signature_header] = sign(self.config.secret, body)
        return headers

    def _wait(self, state: RetryCallState) -> float:
        """The shared policy (metricsd.retry): backoff, or a longer Retry-After."""
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, DeliveryError) else None
        return self.backoff.delay(state.attempt_number - 1, retry_after, self._rng)

    async def attempt(self, session: aiohttp.ClientSession, body: bytes,
                      headers: Mapping[str, str]) -> int:
        """One POST under the per-attempt timeout; DeliveryError says whether to retry."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        try:
            async with session.post(self.config.url, data=body, headers=headers,
                                    timeout=timeout, allow_redirects=False) as resp:
                await resp.read()
                status = resp.status
                if 200 <= status < 300:
                    return status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if status == 429 or status >= 500:
                    raise DeliveryError(f"HTTP {status}", True,
                                        retry_after if status in (429, 503) else None, status)
                raise DeliveryError(f"HTTP {status} (not retried)", False, None, status)
        except TimeoutError:
            raise DeliveryError(f"timed out after {self.config.timeout:g}s", True) from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", True) from None

    async def send(self, notification: Notification,
                   session: aiohttp.ClientSession) -> Delivery:
        """Deliver with retries; never raises for delivery problems."""
        body = self.body(notification)
        headers = self.headers(body)
        attempts = 0

        async def once() -> int:
            nonlocal attempts
            attempts += 1
            try:
                status = await self.attempt(session, body, headers)
            except DeliveryError as exc:
                self._attempt_failed(exc)
                raise
            self._attempt_ok()
            return status

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, DeliveryError) and e.retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            status: int = await retrying(once)
        except DeliveryError as exc:
            return Delivery(False, attempts, exc.reason, exc.status)
        return Delivery(True, attempts, None, status)

    def _attempt_failed(self, exc: DeliveryError) -> None:
        self._failed_attempts += 1
        self.stats.attempts[(self.name, "retry" if exc.retryable else "error")] += 1
        if self.up:
            log.warning("receiver %s is failing: %s (logged once until it recovers)",
                        self.name, exc.reason)
            self.up = False
            self.stats.receiver_up[self.name] = False

    def _attempt_ok(self) -> None:
        self.stats.attempts[(self.name, "success")] += 1
        if not self.up:
            log.info("receiver %s delivers again after %d failed attempt(s)", self.name,
                     self._failed_attempts)
            self.up = True
            self.stats.receiver_up[self.name] = True
        self._failed_attempts = 0


R = TypeVar("R", bound=type[Receiver])
# kind (the `format` of a receiver in the config) -> class, filled by @register.
RECEIVER_KINDS: dict[str, type[Receiver]] = {}


def register(cls: R) -> R:
    """Class decorator: make `format: <cls.kind>` in a receiver's config use this class."""
    if not cls.kind or cls.kind in RECEIVER_KINDS:
        raise RuntimeError(f"receiver kind {cls.kind!r} is empty or registered twice")
    RECEIVER_KINDS[cls.kind] = cls
    return cls
