"""
The sandbox's outgoing webhooks: a queue of signed POSTs, sent with retries, with push faults.

The provider dialects decide *what* to push (a status or checkpoint changed) and how it is
signed; this module only delivers. A dialect registers a `scan` callback; the sender runs it
whenever it is woken (a tracker was created, simulated time advanced) and at least once a
`scan_interval_s`, then sends what it queued. Retries on a non-2xx or a connection failure
are compressed (`retry_delays_s`), as reference/webhooks.md suggests for tests.

Push faults (`faults`, {kind: probability}, drawn with the sandbox's seeded RNG):
``bad_signature`` signs with a wrong secret, ``duplicate`` delivers the same event twice,
``drop`` loses it (never sent, as a real provider sometimes does).
"""

from __future__ import annotations

import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

logger = logging.getLogger("shiptrackd.sandbox")

PUSH_FAULTS = ("bad_signature", "duplicate", "drop")


@dataclass(frozen=True)
class Push:
    """One webhook to deliver: where, the raw body, and its headers signed right and wrong."""

    provider: str
    event_id: str
    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    forged_headers: tuple[tuple[str, str], ...]  # the same, signed with a wrong secret


@dataclass
class PushStats:
    """What the sandbox pushed: tests wait on these instead of sleeping."""

    queued: int = 0
    attempts: int = 0
    delivered: int = 0  # answered 2xx
    rejected: int = 0  # gave up after the last retry
    by_status: Counter[int] = field(default_factory=Counter)  # answers by HTTP status (0 = no answer)
    faults: Counter[str] = field(default_factory=Counter)
    delivered_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "rejected": self.rejected,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "faults": dict(sorted(self.faults.items())),
        }


class Pusher:
    """Delivers the dialects' webhooks; `await tg.start(pusher.run)` inside the sandbox's task group."""

    def __init__(self, rng: random.Random, *, scan_interval_s: float = 1.0) -> None:
        self.stats = PushStats()
        self.faults: dict[str, float] = {}
        self.retry_delays_s: tuple[float, ...] = (0.05, 0.2)
        self.scan_interval_s = scan_interval_s
        self._rng = rng
        self._queue: deque[Push] = deque()
        self._scans: list[Callable[[], list[Push]]] = []
        self._woken = False
        self._wake: anyio.Event | None = None  # made in run(): an anyio Event needs a running loop
        self._busy = False  # scanning or sending

    def configure_faults(self, rates: Mapping[str, Any]) -> None:
        """Set push fault rates; unknown kinds or bad numbers raise ValueError, changing nothing."""
        checked: dict[str, float] = {}
        for kind, rate in rates.items():
            if kind not in PUSH_FAULTS:
                raise ValueError(f"push fault {kind!r} is not one of {', '.join(PUSH_FAULTS)}")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ValueError(f"push fault {kind}: expected a probability in [0, 1], got {rate!r}")
            checked[kind] = float(rate)
        self.faults = checked

    def add_scan(self, scan: Callable[[], list[Push]]) -> None:
        self._scans.append(scan)

    def wake(self) -> None:
        """Scan and send now (called when a tracker is created or simulated time moves)."""
        self._woken = True
        if self._wake is not None:
            self._wake.set()

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing being sent."""
        return not self._woken and not self._busy

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        client: httpx.AsyncClient | None = None  # made at the first push: an SSL context costs ~0.3 s
        task_status.started()
        try:
            while True:
                if not self._woken:
                    self._wake = anyio.Event()
                    with anyio.move_on_after(self.scan_interval_s):
                        await self._wake.wait()
                self._woken, self._busy = False, True
                try:
                    for scan in self._scans:
                        for push in scan():
                            self._enqueue(push)
                    while self._queue:
                        client = client or httpx.AsyncClient(timeout=5.0)
                        await self._deliver(client, self._queue.popleft())
                finally:
                    self._busy = False
        finally:
            if client is not None:
                with anyio.CancelScope(shield=True):
                    await client.aclose()

    def _enqueue(self, push: Push) -> None:
        kind = self._draw()
        if kind:
            self.stats.faults[kind] += 1
        if kind == "drop":
            return
        self.stats.queued += 1
        if kind == "bad_signature":
            push = Push(push.provider, push.event_id, push.url, push.body, push.forged_headers, push.forged_headers)
        self._queue.append(push)
        if kind == "duplicate":
            self.stats.queued += 1
            self._queue.append(push)

    def _draw(self) -> str | None:
        if not self.faults:
            return None
        roll = self._rng.random()
        for kind, rate in self.faults.items():
            if roll < rate:
                return kind
            roll -= rate
        return None

    async def _deliver(self, client: httpx.AsyncClient, push: Push) -> None:
        delays = (*self.retry_delays_s, None)
        for delay in delays:
            self.stats.attempts += 1
            status = 0
            try:
                answer = await client.post(push.url, content=push.body, headers=list(push.headers))
                status = answer.status_code
            except httpx.HTTPError as exc:
                logger.info("sandbox push to %s failed: %s", push.url, exc)
            self.stats.by_status[status] += 1
            if 200 <= status < 300:
                self.stats.delivered += 1
                self.stats.delivered_ids.append(push.event_id)
                return
            if delay is None:
                break
            await anyio.sleep(delay)
        self.stats.rejected += 1
