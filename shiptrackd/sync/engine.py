"""
The sync engine: one run selects shipments, fetches them with bounded
concurrency through the throttle, and writes results in batches.

A run is a small pipeline, so the API is never idle while SQLite writes:
    selector (batch_size rows at a time from the store)
      -> `concurrency` fetch workers
      -> writer (one transaction per batch, a savepoint per shipment)
Memory stays flat however large the store: at most a couple of batches are held.
One run at a time: a scheduled or forced trigger during a run joins it. The steps live beside it:
selection.py (what a run takes), lanes.py (a queue per account), fetching.py (a job's requests),
progress.py (the live run and its log lines).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import asdict
from datetime import datetime
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from loguru import logger

from ..clock import Clock
from ..config import Config
from ..errors import (
    ConflictError,
    StoreError,
)
from ..events import EventBus
from ..push.state import PushState
from ..store import Store
from ..store.push import Elsewhere
from ..store.rows import Shipment
from ..wire.names import (
    EVENT_SHIPMENT_STATUS_CHANGED,
    EVENT_SYNC_FINISHED,
    EVENT_SYNC_PROGRESS,
    EVENT_SYNC_STARTED,
)
from .fetching import Fetcher, parcel
from .lanes import Job, LaneQueues
from .progress import Result, RunProgress, failure_reason, log_batch, root_cause, run_outcome
from .selection import Selector
from .throttle import ApiStats, ProviderThrottle

FLUSH_AFTER_S = 1.0  # write what has arrived at least this often, so progress shows on slow rate limits
# Group commit: at full speed a write takes what arrived in this long, not batch_size alone. The
# commit writes each touched page once, so fewer, larger transactions cost the writer thread less
# a shipment (0.16 -> 0.12 ms at 32 in flight, bench_throughput); at most GROUP_MAX x batch_size.
GROUP_COMMIT_S = 0.25
GROUP_MAX = 5


class SyncEngine:
    def __init__(
        self,
        store: Store,
        throttle: ProviderThrottle,
        clock: Clock,
        bus: EventBus,
        config: Config,
        *,
        owner: str = "",
    ) -> None:
        self.store = store
        # This daemon's lease id (its cluster member id): the shipments it syncs are claimed under it.
        self.owner = owner or new_owner_id()
        self.throttle = throttle
        self.clock = clock
        self.bus = bus
        self.config = config
        self.others: dict[str, ProviderThrottle] = {}  # [[providers]] beyond the default, by name
        self.routes: dict[str, str] = {}  # carrier code -> account name
        self.current: RunProgress | None = None
        self.auth_failed_at: datetime | None = None  # the last 401/403; cleared by the next good fetch
        self.push: PushState | None = None  # set by the daemon when [webhooks] is on: cadence by push regime
        self._busy = anyio.Semaphore(1)  # not a Lock: a run may be started by one task and run by another
        self._opened = anyio.Event()  # set once the run holding _busy has its run id
        self._idle = anyio.Event()
        self._idle.set()
        self.fetcher = Fetcher(self)
        self.selector = Selector(self)
        self._stopping = False
        self._closing = False  # the run holding _busy has written its record and is about to let go

    # --- starting runs -------------------------------------------------------------------

    async def run_once(self, trigger: str, shipment_ids: Sequence[str] | None = None) -> dict[str, Any]:
        """Run a sync to the end and return its run record; if one is running, join it instead."""
        while True:
            try:
                self._acquire()
                break
            except anyio.WouldBlock:
                if not self._closing and self._joinable(trigger, shipment_ids):
                    return {"id": await self._current_run_id(), "joined": True}
                await self.wait_idle()  # a force or targeted run cannot join a narrower one: run after it
        try:
            progress = await self._open_run(trigger, shipment_ids)
            return await self._run(progress, shipment_ids)
        finally:
            self._release()

    async def start(self, tg: TaskGroup, trigger: str, shipment_ids: Sequence[str] | None = None) -> tuple[int, bool]:
        """
        Start a run in the background for the control API: (run_id, joined).

        A trigger joins the run in progress when that run covers it (anything joins a force
        run, a regular one joins a regular one); otherwise it is refused with ConflictError,
        because joining would not sync what it asks for.
        """
        while True:
            try:
                run_id: int = await tg.start(self._background_run, trigger, shipment_ids)
                return run_id, False
            except anyio.WouldBlock:
                if self._closing:  # its record already says finished: neither join it nor refuse, start anew
                    await self.wait_idle()
                    continue
                if not self._joinable(trigger, shipment_ids):
                    raise ConflictError(self._busy_message()) from None
                return await self._current_run_id(), True

    async def _background_run(
        self, trigger: str, shipment_ids: Sequence[str] | None, *, task_status: TaskStatus[int]
    ) -> None:
        self._acquire()  # WouldBlock reaches start() through tg.start()
        try:
            progress = await self._open_run(trigger, shipment_ids)
            task_status.started(progress.run_id)
            await self._run(progress, shipment_ids)
        except Exception:
            logger.opt(exception=True).error("sync run failed")
        finally:
            self._release()

    def _acquire(self) -> None:
        self._busy.acquire_nowait()
        self._closing = False
        self._opened = anyio.Event()
        self._idle = anyio.Event()

    def _release(self) -> None:
        self._busy.release()
        self._opened.set()
        self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no run is in progress."""
        await self._idle.wait()

    def busy(self) -> bool:
        return self._busy.value == 0

    def request_stop(self, reason: str) -> None:
        """Finish in-flight calls, fetch nothing new, and close the run as interrupted (shutdown)."""
        self._stopping = True
        if self.current is not None:
            self.current.stop_requested = True
            self.current.stop_reason = self.current.stop_reason or reason

    def _joinable(self, trigger: str, shipment_ids: Sequence[str] | None) -> bool:
        """A trigger may join the run in progress only if that run covers what it asks for."""
        if shipment_ids:
            return False
        return trigger != "force" or (self.current is not None and self.current.trigger == "force")

    def _busy_message(self) -> str:
        run = f"run {self.current.run_id}" if self.current else "a run"
        return f"a sync is already running ({run}); retry when it finishes"

    async def _current_run_id(self) -> int:
        with anyio.move_on_after(5):
            await self._opened.wait()
        return self.current.run_id if self.current else 0

    async def _open_run(self, trigger: str, shipment_ids: Sequence[str] | None) -> RunProgress:
        now = self.clock.now()
        if shipment_ids:
            planned = len(set(shipment_ids))
        elif trigger == "force":
            planned = await self.store.shipments.count_active()
        else:
            planned = await self.store.shipments.count_due(now)
        run_id = await self.store.runs.start(trigger, now, self.owner)
        self.current = RunProgress(run_id, trigger, now, planned=planned, stop_requested=self._stopping)
        self._opened.set()
        self.bus.publish(EVENT_SYNC_STARTED, run_id=run_id, trigger=trigger, planned=planned)
        return self.current

    # --- the run -------------------------------------------------------------------------

    async def _run(self, progress: RunProgress, shipment_ids: Sequence[str] | None) -> dict[str, Any]:
        every = list({id(lane.stats): lane.stats for lane in self.lanes()}.values())  # lanes may share one
        before = _totals(every)
        started = time.monotonic()
        outcome = "interrupted"  # what a cancellation (shutdown) leaves
        try:
            await self._pipeline(progress, self.selector.select(progress, shipment_ids))
            outcome = run_outcome(progress)
        except Exception as exc:  # a full disk or a locked store: record the cause, not "cancelled"
            outcome = "failed"
            progress.stop_reason = "; ".join(filter(None, [progress.stop_reason, failure_reason(exc)]))
            cause = root_cause(exc)
            if cause is not exc:  # the loop's last_error says "StoreFullError: disk full: ...", not "ExceptionGroup"
                raise cause from exc
            raise
        finally:
            self._closing = True
            c = progress.counts
            after = _totals(every)
            c.api_calls, c.retries, c.rate_limited = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
            c.skipped = c.selected - progress.done
            if progress.deferred:
                deferred = f"{progress.deferred} deferred by the provider's rate limit (still due, not failed)"
                progress.stop_reason = "; ".join(filter(None, [progress.stop_reason, deferred]))
            if progress.unknown_ids:
                unknown = ", ".join(progress.unknown_ids[:10])
                progress.stop_reason = "; ".join(filter(None, [progress.stop_reason, f"unknown ids: {unknown}"]))
            if outcome == "interrupted" and not progress.stop_reason:
                progress.stop_reason = "cancelled"
            with anyio.CancelScope(shield=True):
                try:
                    await self.store.leases.release(self.owner)  # deferred, skipped or unwritten: free for others
                    await self.store.runs.finish(progress.run_id, c, outcome, progress.stop_reason, self.clock.now())
                    run = await self.store.runs.get(progress.run_id)
                    record: dict[str, Any] = msgspec.structs.asdict(run) if run else {"id": progress.run_id}
                except StoreError as exc:  # the store that broke the run may refuse its record too
                    logger.error(
                        "sync run {} {} ({}); its record could not be written: {}",
                        progress.run_id,
                        outcome,
                        progress.stop_reason,
                        exc,
                    )
                    record = {"id": progress.run_id, "outcome": outcome, "stop_reason": progress.stop_reason}
                record["unknown_ids"] = progress.unknown_ids
                self.current = None
                self.bus.publish(EVENT_SYNC_FINISHED, run=record)
            elapsed_s = round(time.monotonic() - started, 3)
            # The figures as fields too, so a JSON log can be queried (jq 'select(.failed > 0)') without parsing msg.
            log = logger.bind(
                loop="sync", run_id=progress.run_id, trigger=progress.trigger, outcome=outcome, elapsed_s=elapsed_s
            )
            log.bind(**asdict(c)).info(
                "sync done trigger={} selected={} updated={} unchanged={} failed={} skipped={} outcome={} in {:.2f}s",
                progress.trigger,
                c.selected,
                c.updated,
                c.unchanged,
                c.failed,
                c.skipped,
                outcome,
                elapsed_s,
            )
        return record

    async def _pipeline(self, progress: RunProgress, batches: AsyncGenerator[list[Shipment], None]) -> None:
        concurrency = sum(lane.config.concurrency for lane in self.lanes())
        size = self.config.sync.batch_size
        # Each account its own queue and workers (sync/lanes.py); one account's queue holds a whole
        # claimed batch, so the workers have a batch in hand while the next claim waits its turn
        # behind a write.
        queues = LaneQueues(self.lanes(), ahead=2 * size)
        # Room for two written batches of results: the workers go on while a batch is written
        # (with room for only 2 x concurrency they stopped at every write, bench_throughput).
        result_send, result_recv = anyio.create_memory_object_stream[Result](max(concurrency, size) * 2)
        async with anyio.create_task_group() as tg:

            async def feed() -> None:
                try:
                    await self._feed(progress, batches, queues)
                finally:
                    queues.close()

            tg.start_soon(feed)
            async with result_send:
                for lane, work_recv in queues.receive:
                    async with work_recv:
                        for _ in range(lane.config.concurrency):
                            tg.start_soon(self._fetch_worker, progress, work_recv.clone(), result_send.clone())
            tg.start_soon(self._write_results, progress, result_recv)

    def set_accounts(self, others: Mapping[str, ProviderThrottle], routes: Mapping[str, str]) -> None:
        """The accounts beside the default one (`throttle`), by name, and carrier code -> account name."""
        self.others = dict(others)
        self.routes = dict(routes)

    def account(self, name: str) -> ProviderThrottle:
        """The account named *name*: the default one, or one of the others (KeyError if none is)."""
        if name == self.throttle.provider.name:
            return self.throttle
        return self.others[name]

    def elsewhere(self) -> Elsewhere:
        """The shipments the default account does not track (lane_for's rule): it must not be asked to push them."""
        return Elsewhere(tuple(self.others), tuple(c for c, name in self.routes.items() if name in self.others))

    def lane_for(self, shipment: Shipment) -> ProviderThrottle:
        """The account that tracks this shipment: the one it keeps, else its carrier's route, else the default."""
        if not self.others:
            return self.throttle
        name = shipment.provider or self.routes.get(shipment.carrier_code, "")
        if name == self.throttle.provider.name:
            return self.throttle
        return self.others.get(name, self.throttle)

    def lanes(self) -> list[ProviderThrottle]:
        """Every provider account's throttle, the default first (stats, health)."""
        return [self.throttle, *self.others.values()]

    def account_names(self) -> list[str]:
        return [lane.provider.name for lane in self.lanes()]

    def quota_exhausted(self) -> str:
        """ "name: what it said" for the first provider whose quota stopped registrations, else ""."""
        for lane in self.lanes():
            if lane.quota_exhausted:
                return f"{lane.provider.name}: {lane.quota_exhausted}"
        return ""

    async def _feed(
        self,
        progress: RunProgress,
        batches: AsyncGenerator[list[Shipment], None],
        queues: LaneQueues,
    ) -> None:
        """Hand the workers jobs: per provider, as many shipments as one of its requests carries.

        A batching provider's shipments wait here until a whole batch (40 for 17TRACK) is
        gathered, across the store's batches, so every request but the last is full. A job for
        an account paused by a Retry-After whose queue is full is deferred (sync/lanes.py).
        """
        deadline = time.monotonic() + self.config.sync.max_runtime_s
        pending: dict[int, Job] = {}

        async def send(job: Job) -> None:
            if not await queues.put(job):
                progress.deferred += len(job.shipments)

        async with aclosing(batches):
            async for batch in batches:
                if time.monotonic() > deadline:
                    progress.out_of_time = True
                    progress.stop_reason = progress.stop_reason or (
                        f"ran past [sync] max_runtime ({self.config.sync.max_runtime_s:.0f}s): no new batches taken"
                    )
                    break
                progress.counts.selected += len(batch)
                for shipment in batch:
                    if progress.stopping:
                        return
                    lane = self.lane_for(shipment)
                    job = pending.setdefault(id(lane), Job(lane))
                    if any(s.tracking_number == shipment.tracking_number for s in job.shipments):
                        await send(pending.pop(id(lane)))  # one number twice in a request would be ambiguous
                        job = pending.setdefault(id(lane), Job(lane))
                    job.shipments.append(shipment)
                    if len(job.shipments) >= lane.batch_size:
                        await send(pending.pop(id(lane)))
            for job in pending.values():  # the last, partial request of each provider
                if progress.stopping:
                    return
                await send(job)

    async def _fetch_worker(
        self,
        progress: RunProgress,
        work: MemoryObjectReceiveStream[Job],
        results: MemoryObjectSendStream[Result],
    ) -> None:
        async with work, results:
            async for job in work:
                if progress.stopping:
                    continue  # counted as skipped
                done = await self.fetcher.fetch_job(progress, job)
                for result in done:
                    await results.send(result)

    async def _write_results(self, progress: RunProgress, results: MemoryObjectReceiveStream[Result]) -> None:
        """Apply results in batches: batch_size or more once GROUP_COMMIT_S has passed since the last write;
        whatever has arrived after FLUSH_AFTER_S; at once at GROUP_MAX x batch_size."""
        size = self.config.sync.batch_size
        buffer: list[Result] = []
        deadline = 0.0
        written = time.monotonic()
        async with results:
            while True:
                timeout = None
                if buffer:
                    due = min(deadline, written + GROUP_COMMIT_S) if len(buffer) >= size else deadline
                    timeout = max(0.0, due - time.monotonic())
                try:
                    if timeout == 0.0:
                        raise TimeoutError
                    try:  # a result already waiting is taken without a cancel scope (one a result: ~3% of the CPU)
                        item = results.receive_nowait()
                    except anyio.WouldBlock:
                        with anyio.fail_after(timeout):
                            item = await results.receive()
                except TimeoutError:
                    await self._flush(progress, buffer)
                    written = time.monotonic()
                    continue
                except anyio.EndOfStream:
                    break
                if not buffer:
                    deadline = time.monotonic() + FLUSH_AFTER_S
                buffer.append(item)
                if len(buffer) >= GROUP_MAX * size:
                    await self._flush(progress, buffer)
                    written = time.monotonic()
        await self._flush(progress, buffer)

    async def _flush(self, progress: RunProgress, buffer: list[Result]) -> None:
        if not buffer:
            return
        batch = buffer[:]
        buffer.clear()
        applied = await self.store.shipments.apply(progress.run_id, batch, self.clock.now(), owner=self.owner)
        c = progress.counts
        c.updated += applied.updated
        c.unchanged += applied.unchanged
        c.failed += applied.failed + len(applied.write_errors)
        progress.done += len(batch)
        for shipment_id, old, new in applied.changed:
            self.bus.publish(EVENT_SHIPMENT_STATUS_CHANGED, id=shipment_id, old=old, new=new, run_id=progress.run_id)
        log_batch(progress.run_id, batch, applied)
        self.bus.publish(EVENT_SYNC_PROGRESS, **progress.snapshot())

    async def plan(self, trigger: str, shipment_ids: Sequence[str] | None, limit: int = 1000) -> dict[str, Any]:
        """What a run would sync and why, without a single API call or write."""
        return await self.selector.plan(trigger, shipment_ids, limit)

    async def unregister(self, shipment: Shipment) -> None:
        """Tell the shipment's provider to stop tracking it (after its removal); failures only logged."""
        lane = self.lane_for(shipment)
        if not (lane.provider.needs_registration and shipment.provider_ref):
            return
        try:
            await lane.unregister([parcel(shipment)])
        except Exception as exc:
            logger.warning("{}: could not stop tracking {}: {}", lane.provider.name, shipment.tracking_number, exc)
        else:
            logger.info("{}: stopped tracking {}", lane.provider.name, shipment.tracking_number)


def _totals(stats: list[ApiStats]) -> tuple[int, int, int]:
    return (
        sum(s.requests for s in stats),
        sum(s.retries for s in stats),
        sum(s.rate_limited for s in stats),
    )


def new_owner_id() -> str:
    """host:pid:random, unique per daemon start: its lease owner and cluster member id."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
