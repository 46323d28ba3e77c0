"""
The time seam: everything that schedules asks a Clock, so tests can run a day in a second.

Rate limiting and HTTP timeouts stay on the event loop's own clock: they are about
real seconds on the wire, not about the schedule.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio

# A wall clock can jump (NTP, a suspended VM); never sleep longer than this in one go.
_MAX_SLEEP_S = 60.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...

    async def sleep_until(self, at: datetime, wake: anyio.Event | None = None) -> bool:
        """Sleep until *at* or until *wake* is set; True when woken early."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return utcnow()

    async def sleep_until(self, at: datetime, wake: anyio.Event | None = None) -> bool:
        while True:
            delay = (at - self.now()).total_seconds()
            if delay <= 0:
                return False
            with anyio.move_on_after(min(delay, _MAX_SLEEP_S)):
                if wake is None:
                    await anyio.sleep_forever()
                else:
                    await wake.wait()
                    return True


@dataclass
class _Sleeper:
    at: datetime
    event: anyio.Event = field(default_factory=anyio.Event)


class FakeClock:
    """
    A clock that only moves when a test says so.

    `advance()` walks through every sleeper's deadline in order, letting the woken
    tasks run between steps, so a loop due every hour runs 24 times in `advance(hours=24)`.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._sleepers: list[_Sleeper] = []

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, at: datetime, wake: anyio.Event | None = None) -> bool:
        if at <= self._now:
            return False
        sleeper = _Sleeper(at)
        self._sleepers.append(sleeper)
        try:
            if wake is None:
                await sleeper.event.wait()
                return False
            async with anyio.create_task_group() as tg:

                async def _on_wake() -> None:
                    await wake.wait()
                    tg.cancel_scope.cancel()

                async def _on_time() -> None:
                    await sleeper.event.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(_on_wake)
                tg.start_soon(_on_time)
            return wake.is_set() and not sleeper.event.is_set()
        finally:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)

    async def advance(self, delta: timedelta | None = None, **kwargs: float) -> None:
        """Move time forward by *delta* (or `timedelta(**kwargs)`), waking sleepers on the way."""
        target = self._now + (delta if delta is not None else timedelta(**kwargs))
        while True:
            await _settle()
            due = [s for s in self._sleepers if s.at <= target]
            if not due:
                break
            first = min(s.at for s in due)
            self._now = max(self._now, first)
            for s in due:
                if s.at <= self._now:
                    self._sleepers.remove(s)
                    s.event.set()
        self._now = target
        await _settle()


async def _settle() -> None:
    """
    Return once every other task is waiting on something.

    anyio.wait_all_tasks_blocked() polls every 100 ms; stepping a day of schedule
    needs hundreds of settles, so poll with zero-length sleeps instead (asyncio only,
    as is everything here).
    """
    this = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for spin in range(10_000):
        await asyncio.sleep(0 if spin < 100 else 0.001)
        # The ignores: asyncio internals, which typeshed leaves out (the loop's ready queue, a task's awaited future).
        if loop._ready:  # type: ignore[attr-defined]  # callbacks queued: cancellations, wake-ups
            continue
        if all(t is this or (t._fut_waiter is not None and not t._fut_waiter.done()) for t in asyncio.all_tasks()):  # type: ignore[attr-defined]
            return
