"""
One work queue per provider account, so that a paused or slow account never holds up another.

With one queue for every account's workers, a 429 storm on one account filled the queue and
every worker with that account's jobs while they waited out its Retry-After, and the other
account, within its limit, starved: 0.06 of its limit during the storm (bench/bench_two_providers.py).
Here each account has its own workers (its `concurrency`) and its own queue, deep enough for
LEAD_S of its work at its rate, so the feeder reading the store goes on handing the others their
shipments while one account waits. The feeder waits for room in a full queue (backpressure, as
before); only with several accounts, and only while that account is paused by a Retry-After, is
a job for its full queue deferred to a later run instead (still due, not failed; its lease is
released at the run's end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..store.rows import Shipment
from .throttle import ProviderThrottle

ROOM_CHECK_S = 0.25  # how often a feeder waiting for room looks whether the account got paused
LEAD_S = 30.0  # an account's queue holds this long of its work at its rate (well inside a 5-min lease)


@dataclass
class Job:
    """Shipments for one provider account, as many as one of its requests carries."""

    lane: ProviderThrottle
    shipments: list[Shipment] = field(default_factory=list)


class LaneQueues:
    """A bounded queue per account; `put` waits for room unless the account is paused (then: False)."""

    def __init__(self, lanes: Sequence[ProviderThrottle], unpaced_depth: int = 2, *, ahead: int = 0) -> None:
        """
        `unpaced_depth`: the queue of an account without a rate limit, in jobs (its workers' pace is the API's).
        `ahead`: with one account, its queue holds this many shipments (claimed batches), at most
        LEAD_S of its work at its rate: what waits in the queue is leased, and must be fetched
        well inside its lease.
        """
        self._send: dict[int, MemoryObjectSendStream[Job]] = {}
        self.receive: list[tuple[ProviderThrottle, MemoryObjectReceiveStream[Job]]] = []
        distinct = list({id(lane): lane for lane in lanes}.values())
        self.several = len(distinct) > 1
        for lane in distinct:
            if self.several:
                size = depth(lane, unpaced_depth)
            else:
                jobs_ahead = -(-ahead // lane.batch_size)
                size = max(2, 2 * lane.config.concurrency, min(jobs_ahead, depth(lane, jobs_ahead)))
            send, receive = anyio.create_memory_object_stream[Job](size)
            self._send[id(lane)] = send
            self.receive.append((lane, receive))

    async def put(self, job: Job) -> bool:
        """Queue the job for its account's workers; False if it was deferred because the account is paused."""
        send = self._send[id(job.lane)]
        try:
            send.send_nowait(job)
            return True
        except anyio.WouldBlock:
            pass
        if not self.several:  # nobody else to hold up: wait, as one queue always did
            await send.send(job)
            return True
        while job.lane.paused_until is None:
            with anyio.move_on_after(ROOM_CHECK_S):
                await send.send(job)
                return True
        return False

    def close(self) -> None:
        """No more jobs: each account's workers end once its queue is empty."""
        for send in self._send.values():
            send.close()


def depth(lane: ProviderThrottle, unpaced: int) -> int:
    """An account's queue in jobs: LEAD_S of requests at its configured rate, at least two per worker."""
    floor = max(2, 2 * lane.config.concurrency)
    limit = lane.config.rate_limit
    if limit is None:
        return max(floor, unpaced)
    return max(floor, int(limit.per_second * LEAD_S))
