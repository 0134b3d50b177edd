"""PostgreSQL targets: one small asyncpg pool each, a reconnect backoff, the server's version.

Pools are created with min_size=0, so metricsd starts while a target is down: the first
scrape connects, and a failed connect closes the gate for a backoff that doubles up to
three quarters of a scrape interval (so a restarted server is back within two
intervals).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import asyncpg

from metricsd.config import PostgresConfig, TargetConfig

log = logging.getLogger(__name__)

APPLICATION_NAME = "metricsd"
# Appended to every statement metricsd sends, so pg_stat_statements' text of metricsd's
# own queries is recognisable (the statements view leaves them out). At the end, because
# PostgreSQL 18 drops comments in front of a statement from the stored text.
OWN_MARKER = "/* metricsd */"
CLOSE_TIMEOUT_S = 5.0


def mark(query: str) -> str:
    """The query with OWN_MARKER on a line of its own at the end (once)."""
    text = query.rstrip()
    return text if text.endswith(OWN_MARKER) else f"{text}\n{OWN_MARKER}"


class MarkedConnection(asyncpg.Connection):
    """asyncpg connection whose statements all start with OWN_MARKER."""

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await super().execute(mark(query), *args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await super().fetch(mark(query), *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await super().fetchrow(mark(query), *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await super().fetchval(mark(query), *args, **kwargs)


class TargetDown(Exception):
    """The target is inside its reconnect backoff; no connection was attempted."""


@dataclass(frozen=True)
class ServerInfo:
    """What every collector needs to pick its SQL: version and privileges."""

    version_num: int
    block_size: int
    is_superuser: bool
    reads_all_stats: bool
    in_recovery: bool


class Backoff:
    """Exponential reconnect delay shared by a target's collectors, capped at `cap_s`."""

    def __init__(self, base_s: float, cap_s: float, clock: Callable[[], float]) -> None:
        self.base_s = min(base_s, cap_s)
        self.cap_s = cap_s
        self.clock = clock
        self.failures = 0
        self.retry_at = 0.0

    def open(self) -> bool:
        return self.clock() >= self.retry_at

    def failed(self) -> None:
        self.failures += 1
        # The exponent is capped: 2 ** 1024 overflows a float (a target down for minutes,
        # failed by every collector, got there and logged an OverflowError per scrape).
        delay = min(self.cap_s, self.base_s * 2.0 ** min(self.failures - 1, 64))
        self.retry_at = self.clock() + delay

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = 0.0


def session_settings(config: PostgresConfig) -> dict[str, str]:
    """Server settings for metricsd's own sessions: a name to find them, and hard limits."""
    return {
        "application_name": APPLICATION_NAME,
        "statement_timeout": str(max(1, int(config.statement_timeout * 1000))),
        "lock_timeout": str(max(1, int(config.lock_timeout * 1000))),
    }


class PgTarget:
    """One configured server: its pool, backoff, connect latency and server info."""

    def __init__(self, target: TargetConfig, config: PostgresConfig,
                 database: str | None = None) -> None:
        self.name = target.name
        self.config = config
        self.target = target
        # One database of a multi-database target: a pool of its own, one connection, the
        # DSN's server and credentials (docs/postgres.md "Several databases").
        self.database = database
        self.where = target.name if database is None else f"{target.name}/{database}"
        # Connect arguments beside the DSN: only the database differs.
        self._database_arg: dict[str, Any] = {} if database is None else {"database": database}
        self.pool: asyncpg.Pool | None = None
        # Capped below one interval, so a restarted server is retried by the next round.
        self.backoff = Backoff(1.0, max(0.75 * config.scrape_interval, 0.05), time.monotonic)
        self.connect_seconds: float | None = None
        self.info: ServerInfo | None = None
        self.last_error = ""  # why the latest connect failed, for the backoff's message
        self.last_exception: BaseException | None = None  # ... and the exception itself
        self._warned_privileges = False
        self._probe: asyncio.Task[bool] | None = None
        self._probed_at = -float("inf")
        self._probe_result = True

    async def _connect(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        """asyncpg.connect, timed: the latency is metricsd_pg_connect_seconds."""
        started = time.perf_counter()
        conn: asyncpg.Connection = await asyncpg.connect(*args, **kwargs)
        self.connect_seconds = time.perf_counter() - started
        return conn

    async def open(self) -> None:
        """Create the pool without connecting (min_size=0): a down target is fine here."""
        self.pool = await asyncpg.create_pool(
            self.target.dsn,
            min_size=0,
            # A database's pool serves only its tables and indexes views: one connection,
            # so N databases cost N connections, not N * pool_max_size.
            max_size=self.config.pool_max_size if self.database is None else 1,
            max_inactive_connection_lifetime=max(60.0, self.config.scrape_interval * 4),
            timeout=self.config.connect_timeout,
            command_timeout=self.config.scrape_timeout,
            server_settings=session_settings(self.config),
            connect=self._connect,
            reset=_no_reset,
            connection_class=MarkedConnection,
            **self._database_arg,
        )

    async def close(self) -> None:
        """Close the pool; terminate connections a cancelled scrape still holds."""
        probe, self._probe = self._probe, None
        if probe is not None and not probe.done():  # bounded by connect_timeout, but not
            probe.cancel()                          # worth waiting for at shutdown
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        if self.pool is None:
            return
        try:
            await asyncio.wait_for(self.pool.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            self.pool.terminate()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, unless the target is inside its backoff (TargetDown).

        `async with pool.acquire()` keeps it cancel-safe: a scrape cancelled by its timeout
        or by scheduler shutdown still gives the connection back (or asyncpg drops it).
        """
        if self.pool is None:
            raise TargetDown(f"target {self.where} has no pool (not started)")
        if not self.backoff.open():
            wait = max(0.0, self.backoff.retry_at - time.monotonic())
            raise TargetDown(f"target {self.where} is down ({self.last_error}); "
                             f"next connection attempt in {wait:.1f}s")
        acquired = False
        try:
            # No acquire timeout: waiting for a free connection is bounded by the scrape's
            # own timeout, and opening one by `connect_timeout` (a pool connect argument).
            async with self.pool.acquire() as proxy:
                # The pool's proxy forwards every Connection method the views call.
                conn = cast(asyncpg.Connection, proxy)
                acquired = True
                try:
                    if self.info is None:
                        self.info = await self._server_info(conn)
                    self.backoff.succeeded()
                    self.last_exception = None
                    yield conn
                except BaseException as exc:
                    if not isinstance(exc, asyncpg.PostgresError) or _is_connection_loss(exc):
                        # Cut off mid-operation (a timeout, cancellation, a server that went
                        # away): the protocol may be half-way through a message, and a
                        # pooled connection in that state fails the next collector with
                        # InternalClientError (asyncpg#1069). Drop it; the pool opens anew.
                        # A connection the server closed is already detached from its proxy.
                        with contextlib.suppress(asyncpg.InterfaceError):
                            conn.terminate()
                    raise
        except Exception as exc:
            if not acquired or _is_connection_loss(exc):
                self.backoff.failed()
                self.info = None
            if not acquired:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.last_exception = exc
                raise TargetDown(
                    f"cannot connect to target {self.where}: {self.last_error}") from exc
            raise

    async def answers(self) -> bool:
        """Does the server answer `SELECT 1` on a fresh connection within connect_timeout?

        Asked after a collector timed out: a slow view on a busy server is not an outage,
        but a server that accepts nothing and answers nothing (frozen, or a network black
        hole) would otherwise read as up forever, since every pooled query just times out.
        One probe at a time per target; its answer is reused for half a scrape interval.
        """
        if time.monotonic() - self._probed_at < self.config.scrape_interval / 2:
            return self._probe_result
        if self._probe is None:
            self._probe = asyncio.create_task(self._run_probe(), name=f"probe:{self.where}")
        probe = self._probe
        try:
            return await asyncio.shield(probe)
        finally:
            if probe.done() and self._probe is probe:
                self._probe = None

    async def _run_probe(self) -> bool:
        timeout = self.config.connect_timeout
        conn: asyncpg.Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                conn = await asyncpg.connect(
                    self.target.dsn, timeout=timeout,
                    server_settings=session_settings(self.config),
                    connection_class=MarkedConnection, **self._database_arg)
                await conn.fetchval("SELECT 1")
            answered = True
        except asyncpg.PostgresError:
            answered = True  # an error response is an answer (too many clients, auth, ...)
        except (TimeoutError, OSError, asyncpg.InterfaceError) as exc:
            answered = False
            self.last_error = (f"no answer to SELECT 1 on a new connection within {timeout:g}s"
                               if isinstance(exc, TimeoutError) else
                               f"{type(exc).__name__}: {exc}")
        finally:
            if conn is not None:
                conn.terminate()  # never wait on a server that may not answer
        if not answered:
            self.backoff.failed()
            self.info = None
            if self.pool is not None:
                await self.pool.expire_connections()  # the pooled ones are stuck on it
        self._probed_at, self._probe_result = time.monotonic(), answered
        return answered

    async def _server_info(self, conn: asyncpg.Connection) -> ServerInfo:
        row = await conn.fetchrow(
            "SELECT current_setting('server_version_num')::int AS version_num,"
            " current_setting('block_size')::int AS block_size,"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,"
            " pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS reads_all_stats,"
            " pg_is_in_recovery() AS in_recovery"
        )
        if row is None:  # a SELECT without FROM always returns its row
            raise asyncpg.InterfaceError("server information query returned no row")
        info = ServerInfo(
            version_num=int(row["version_num"]),
            block_size=int(row["block_size"]),
            is_superuser=bool(row["is_superuser"]),
            reads_all_stats=bool(row["reads_all_stats"]) or bool(row["is_superuser"]),
            in_recovery=bool(row["in_recovery"]),
        )
        if not info.reads_all_stats and not self._warned_privileges and self.database is None:
            self._warned_privileges = True
            log.warning(
                "postgres target %s: role lacks pg_read_all_stats (GRANT pg_monitor TO <role>);"
                " other roles' query texts and activity are hidden", self.name,
            )
        return info


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip on release (RESET ALL, UNLISTEN, ...).

    metricsd's sessions only run read-only statistics queries: no LISTEN, advisory locks,
    cursors or SET, so there is nothing to reset, and a round trip per collector adds up.
    """


def _is_connection_loss(exc: BaseException) -> bool:
    """The connection itself broke (server stopped or restarted), not just a query."""
    return isinstance(exc, OSError | asyncpg.ConnectionDoesNotExistError
                      | asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError
                      | asyncpg.AdminShutdownError | asyncpg.InterfaceError
                      | asyncpg.InternalClientError)
