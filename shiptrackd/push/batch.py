"""
Group commit: pushes that arrive while a write is in flight go to the store together, in the next one.

One transaction per push cost each push a writer-thread hop, a BEGIN and a COMMIT, and the event
loop waited out the writer's time at every hop (bench/bench_push.py). Here the first push to find
the store idle writes at once; those that come meanwhile queue, and when that write is done the
oldest of them writes the whole queue (up to `max_batch`) in one transaction. No timer, so a lone
push waits for nothing. Each caller gets its own outcome only after its batch committed: the
write function reports a push that failed alone, and a whole-batch failure reaches every caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import anyio

I = TypeVar("I")  # noqa: E741  (the item a caller submits)
R = TypeVar("R")  # what the write made of it

MAX_BATCH = 64


class _Waiter(Generic[I, R]):
    __slots__ = ("done", "item", "lead", "outcome", "taken")

    def __init__(self, item: I) -> None:
        self.item = item
        self.done = anyio.Event()
        self.lead = False  # woken to write the next batch, not with an outcome
        self.taken = False  # in a batch being written
        self.outcome: R | BaseException | None = None


class GroupCommit(Generic[I, R]):
    """`await submit(item)` returns *item*'s outcome once the batch it went in has committed."""

    def __init__(
        self, write: Callable[[Sequence[I]], Awaitable[Sequence[R | Exception]]], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._write = write
        self.max_batch = max_batch
        self._queue: deque[_Waiter[I, R]] = deque()
        self._busy = False
        self.batches = 0  # writes made, for tests and the benchmark's curiosity
        self.items = 0

    async def submit(self, item: I) -> R:
        waiter: _Waiter[I, R] = _Waiter(item)
        self._queue.append(waiter)
        if self._busy:
            try:
                await waiter.done.wait()
            except BaseException:  # cancelled while queued: leave the queue, and pass the lead on if it had it
                if not waiter.taken:
                    self._queue.remove(waiter)
                if waiter.lead:
                    self._hand_on()
                raise
            if not waiter.lead:
                return _unwrap(waiter)
        self._busy = True
        batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        for each in batch:
            each.taken = True
        try:
            # Shielded: once taken, a batch is written and every caller in it told, even if this one is cancelled.
            with anyio.CancelScope(shield=True):
                try:
                    outcomes: Sequence[R | BaseException] = await self._write([w.item for w in batch])
                except Exception as exc:  # the whole batch failed: nothing of it was written
                    outcomes = [exc] * len(batch)
            if len(outcomes) != len(batch):
                raise RuntimeError(f"group commit: {len(outcomes)} outcomes for {len(batch)} pushes")
        except BaseException as exc:
            outcomes = [exc] * len(batch)
            raise
        finally:
            self.batches += 1
            self.items += len(batch)
            for each, outcome in zip(batch, outcomes, strict=True):
                each.outcome = outcome
                each.done.set()
            self._hand_on()
        return _unwrap(waiter)

    def _hand_on(self) -> None:
        """The write is done: the oldest queued caller writes the next batch, or the store is idle again."""
        if self._queue:
            head = self._queue[0]
            head.lead = True
            head.done.set()
        else:
            self._busy = False


def _unwrap(waiter: _Waiter[I, R]) -> R:
    outcome = waiter.outcome
    if isinstance(outcome, BaseException):
        raise outcome
    assert outcome is not None
    return outcome
