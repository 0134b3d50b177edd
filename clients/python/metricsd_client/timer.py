"""Time an operation (`ai.generate`, `export.csv`) as a context manager or a decorator.

One object serves `with`, `async with`, `@timer(...)` on a plain function and on a
coroutine function. The outcome follows how the block ended: `ok`, `timeout`
(TimeoutError), `cancelled` (asyncio.CancelledError) or `error` (any other exception);
set `t.outcome` inside the block to say otherwise.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

OUTCOMES = ("ok", "error", "timeout", "cancelled")

P = ParamSpec("P")
R = TypeVar("R")

Record = Callable[[str, float, str], None]


def outcome_of(exc: BaseException | None) -> str:
    """The outcome label of a block that raised `exc` (None: it returned)."""
    if exc is None:
        return "ok"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "error"


class Timer:
    """Measures with `time.perf_counter` and hands (operation, seconds, outcome) to `record`."""

    def __init__(self, operation: str, record: Record) -> None:
        self.operation = operation
        self._record = record
        self._start = 0.0
        self.outcome: str | None = None  # set it inside the block to override
        self.duration: float | None = None  # seconds, once the block has ended

    def __enter__(self) -> Timer:
        self.outcome = None
        self._start = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.duration = time.perf_counter() - self._start
        outcome = self.outcome if self.outcome in OUTCOMES else outcome_of(exc)
        self._record(self.operation, self.duration, outcome)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(kind, exc, tb)

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...

    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function or coroutine function: every call is one operation."""
        operation, record = self.operation, self._record
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with Timer(operation, record):
                    return await func(*args, **kwargs)

            return timed_async

        @functools.wraps(func)
        def timed(*args: P.args, **kwargs: P.kwargs) -> Any:
            with Timer(operation, record):
                return func(*args, **kwargs)

        return cast(Callable[P, Any], timed)
