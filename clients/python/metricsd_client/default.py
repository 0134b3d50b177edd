"""One sender per process for code far from the web framework: `timer`, caches, operations.

`configure()` makes a thread sender the default; otherwise the first middleware sender
created becomes it. Without any, `timer()` blocks still run and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from metricsd_client.base import TimingSender
from metricsd_client.cache import LruCached, TrackedCache
from metricsd_client.timer import Timer

_DEFAULT: list[TimingSender] = []

F = TypeVar("F", bound=LruCached)
C = TypeVar("C")


def configure(url: str, *, service: str, token: str | None = None,
              **options: Any) -> TimingSender:
    """Create a ThreadSender (standard library only) and make it the process's default."""
    from metricsd_client.thread_sender import ThreadSender

    sender = ThreadSender(url, service=service, token=token, **options)
    set_default_sender(sender)
    return sender


def set_default_sender(sender: TimingSender | None) -> None:
    """Use `sender` for the module-level helpers (None: forget it)."""
    _DEFAULT.clear()
    if sender is not None:
        _DEFAULT.append(sender)


def offer_default_sender(sender: TimingSender) -> None:
    """Become the default unless one was chosen already (middlewares call this)."""
    if not _DEFAULT:
        _DEFAULT.append(sender)


def default_sender() -> TimingSender:
    """The process's default sender; RuntimeError when there is none yet."""
    if not _DEFAULT:
        raise RuntimeError("metricsd_client: call configure(url, service=...) first")
    return _DEFAULT[0]


def record_operation(operation: str, duration: float, outcome: str = "ok") -> None:
    """Record an operation measured elsewhere (seconds); dropped when nothing is configured."""
    if _DEFAULT:
        _DEFAULT[0].record_operation(operation, duration, outcome)


def _record_later(operation: str, duration: float, outcome: str) -> None:
    record_operation(operation, duration, outcome)


def timer(operation: str) -> Timer:
    """`with timer("ai.generate"):`, `async with ...`, `@timer("export.csv")`.

    The default sender is looked up when the block ends, so decorating at import time,
    before `configure()`, works.
    """
    return Timer(operation, _record_later)


def track_lru(func: F, name: str | None = None) -> F:
    """Report an lru_cache through the default sender."""
    return default_sender().track_lru(func, name)


def track_cache(cache: C, name: str, *, size_bytes: Callable[[], int] | None = None,
                top_keys: int = 10) -> TrackedCache[C]:
    """Wrap a get/set cache object and report it through the default sender."""
    return default_sender().track_cache(cache, name, size_bytes=size_bytes, top_keys=top_keys)
