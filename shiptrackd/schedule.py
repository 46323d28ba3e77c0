"""
Timer loops: when each loop is due (pure), and the supervisor that runs its body.

A loop never overlaps itself; a trigger during a run is coalesced into it. A body
that raises is logged, counted and retried with backoff; it never ends the daemon.
Each loop remembers its last run in the store, so a restart catches a missed run
up once (like systemd's Persistent=) instead of re-running everything or skipping.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
from anyio.abc import TaskStatus
from loguru import logger

from .clock import Clock
from .config import Schedule, next_fire

FAILURE_BACKOFF_S = 5.0
FAILURE_BACKOFF_MAX_S = 300.0


def jitter_bound_s(schedule: Schedule) -> float:
    """Up to 10% of an interval, at most 30 s; cron runs get up to 30 s."""
    if schedule.interval_s is not None:
        return min(30.0, schedule.interval_s * 0.1)
    return 30.0


def next_due(
    schedule: Schedule,
    now: datetime,
    last_run_at: datetime | None,
    failures: int = 0,
    jitter_s: float = 0.0,
) -> datetime:
    """
    When a loop should run next.

    1. Never ran: an interval loop runs now, a cron loop waits for its next fire.
    2. Ran before: the schedule's next fire after the last run; if that passed while
       the daemon was down, run once now (catch-up), not once per missed slot.
    3. After failures, retry sooner with exponential backoff, but never later than the schedule.
    """
    if last_run_at is None:
        due = now if schedule.interval_s is not None else next_fire(schedule, now)
    else:
        due = max(next_fire(schedule, last_run_at), now)
    due += timedelta(seconds=jitter_s)
    if failures and last_run_at is not None:
        backoff = min(FAILURE_BACKOFF_S * 2 ** (failures - 1), FAILURE_BACKOFF_MAX_S)
        due = min(due, max(now, last_run_at + timedelta(seconds=backoff)))
    return due


@dataclass
class Loop:
    """One named timer loop and its run-time state."""

    name: str
    schedule: Schedule
    body: Callable[[], Awaitable[str | None]]  # returns a short outcome for status, e.g. "synced 12"
    clock: Clock
    on_change: Callable[[Loop], Awaitable[None]] | None = None  # persists state, publishes events
    rng: random.Random = field(default_factory=random.Random)
    paused: bool = False
    running: bool = False
    last_run_at: datetime | None = None
    last_outcome: str = ""
    last_error: str = ""
    next_run_at: datetime | None = None
    failures: int = 0  # in a row
    total_failures: int = 0
    runs: int = 0
    _wake: anyio.Event = field(default_factory=anyio.Event)
    _triggered: bool = False
    _stopping: bool = False

    def trigger(self) -> bool:
        """Run now; False when already running (the trigger joins that run)."""
        if self.running:
            return False
        self._triggered = True
        self._wake.set()
        return True

    def pause(self) -> None:
        self.paused = True
        self.next_run_at = None  # now, not when the loop task next wakes: the API answers with this
        self._wake.set()

    def resume(self) -> None:
        self.paused = False
        self._wake.set()

    def reschedule(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self._wake.set()

    def stop(self) -> None:
        """Stop scheduling; a body already running is left to finish."""
        self._stopping = True
        self._wake.set()

    def compute_next(self, now: datetime) -> datetime | None:
        if self._triggered:
            return now
        if self.paused:
            return None
        jitter = self.rng.uniform(0, jitter_bound_s(self.schedule))
        return next_due(self.schedule, now, self.last_run_at, self.failures, jitter)

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "schedule": self.schedule.text,
            "paused": self.paused,
            "running": self.running,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
            "last_outcome": self.last_outcome,
            "last_error": self.last_error,
            "next_run_at": self.next_run_at.isoformat() if self.next_run_at else None,
            "failures_in_a_row": self.failures,
            "failures_total": self.total_failures,
            "runs": self.runs,
        }

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the body on schedule until stopped."""
        log = logger.bind(loop=self.name)
        task_status.started()
        while not self._stopping:
            self._wake = anyio.Event()  # before planning, so a trigger during _changed() is not lost
            self.next_run_at = self.compute_next(self.clock.now())
            await self._changed()
            if self.next_run_at is None:
                await self._wake.wait()
                continue
            if await self.clock.sleep_until(self.next_run_at, wake=self._wake) and not self._triggered:
                continue  # woken to re-plan (pause, resume, reload, stop)
            if self._stopping:
                break
            self._triggered = False
            await self._run_body(log)

    async def _run_body(self, log: Any) -> None:
        self.running = True
        self.next_run_at = None
        await self._changed()
        started = self.clock.now()
        try:
            outcome = await self.body()
        except Exception as exc:  # not BaseException: cancellation must pass through
            self.failures += 1
            self.total_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.last_outcome = "failed"
            log.opt(exception=True).error("loop {} failed ({} in a row)", self.name, self.failures)
        else:
            self.failures = 0
            self.last_error = ""
            self.last_outcome = outcome or "ok"
        finally:
            self.running = False
            self.runs += 1
            self.last_run_at = started
        await self._changed()

    async def _changed(self) -> None:
        if self.on_change is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await self.on_change(self)
                except Exception:
                    logger.opt(exception=True).warning("loop {} state could not be saved", self.name)
