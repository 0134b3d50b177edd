"""timer(): one object for with, async with and decorators; outcomes from how a block ended."""

from __future__ import annotations

import asyncio
import time

import pytest
from metricsd_client import OUTCOMES, Timer, record_operation, set_default_sender, timer
from metricsd_client.base import TimingSender

Recorded = list[tuple[str, float, str]]


def recorder() -> tuple[Recorded, Timer]:
    seen: Recorded = []
    return seen, Timer("ai.generate", lambda op, d, o: seen.append((op, d, o)))


def test_context_manager_measures_the_block() -> None:
    seen, t = recorder()
    with t:
        time.sleep(0.02)
    ((operation, duration, outcome),) = seen
    assert (operation, outcome) == ("ai.generate", "ok")
    assert 0.02 <= duration < 1.0
    assert t.duration == duration


@pytest.mark.parametrize(("exc", "outcome"), [
    (ValueError("x"), "error"), (TimeoutError(), "timeout"),
    (asyncio.CancelledError(), "cancelled"), (KeyboardInterrupt(), "error"),
])
def test_outcome_follows_the_exception(exc: BaseException, outcome: str) -> None:
    seen, t = recorder()
    with pytest.raises(type(exc)), t:
        raise exc
    assert seen[0][2] == outcome


def test_outcome_can_be_set_inside_the_block() -> None:
    seen, t = recorder()
    with t as running:
        running.outcome = "timeout"
    with pytest.raises(ValueError), t as running:
        running.outcome = "cancelled"
        raise ValueError
    with t as running:
        running.outcome = "not-an-outcome"  # ignored: only the four outcomes exist
    assert [o for _, _, o in seen] == ["timeout", "cancelled", "ok"]
    assert set(OUTCOMES) == {"ok", "error", "timeout", "cancelled"}


def test_decorates_sync_functions_and_keeps_their_result() -> None:
    seen, t = recorder()

    @t
    def work(a: int, b: int = 2) -> int:
        """Doc."""
        return a + b

    assert work(1, b=5) == 6 and work(2) == 4
    assert work.__doc__ == "Doc." and work.__name__ == "work"
    assert [o for _, _, o in seen] == ["ok", "ok"]


async def test_async_with_and_async_decorator() -> None:
    seen, t = recorder()
    async with t:
        await asyncio.sleep(0.01)

    @t
    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise TimeoutError

    @t
    async def slow() -> str:
        await asyncio.sleep(10)
        return "never"

    with pytest.raises(TimeoutError):
        await fails()
    task = asyncio.ensure_future(slow())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [o for _, _, o in seen] == ["ok", "timeout", "cancelled"]
    assert all(d >= 0.01 for _, d, _ in seen)


async def test_concurrent_uses_of_one_decorated_coroutine_are_separate() -> None:
    seen, t = recorder()

    @t
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    await asyncio.gather(sleep(0.05), sleep(0.01))
    durations = sorted(d for _, d, _ in seen)
    assert len(durations) == 2 and durations[0] < 0.05 <= durations[1]


def test_module_timer_uses_the_default_sender_found_when_the_block_ends() -> None:
    @timer("export.csv")  # decorated before any sender exists
    def export() -> None:
        pass

    set_default_sender(None)
    export()  # no sender: nothing recorded, nothing raised
    sender = TimingSender("http://127.0.0.1:9", service="app")
    set_default_sender(sender)
    try:
        export()
        record_operation("ws.delivery", 0.150, "bogus")  # unknown outcome -> error
        queued = list(sender._operations)
    finally:
        set_default_sender(None)
    assert [(op, outcome) for op, outcome, _, _ in queued] == [
        ("export.csv", "ok"), ("ws.delivery", "error")]
    assert queued[1][2] == 0.150
