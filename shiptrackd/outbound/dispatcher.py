"""
The outbound dispatcher: claims due outbox rows, signs them (Standard Webhooks), sends them, records each attempt.

One task, supervised by the daemon's task group, with its own HTTP pool (never the provider's:
a slow receiver must not take connections the sync needs). Each turn is one store write that
records what finished and claims what is due (store/outbox.py keeps per endpoint and shipment
order); a commit that enqueues rows wakes it at once, a finished delivery wakes it for the next.
Signing is the `standardwebhooks` package's, so a receiver verifying with it agrees byte for byte.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from loguru import logger
from standardwebhooks import Webhook

from .. import __version__
from ..clock import Clock
from ..config import Config, OutboundEndpoint
from ..config.endpoints import notice_tag
from ..log import register_secret
from ..providers.transport import AiohttpTransport
from ..store import Route, Settlement, Store
from ..store.rows import ClaimedRow, EndpointState
from .notices import PREFIX as NOTICE_PREFIX
from .notices import NoticeSender, route_for
from .payload import ping_body
from .policy import Attempt, settle

COALESCE_S = 0.005  # a finished delivery waits this long for others, so one write settles many
ANSWER_PREVIEW = 500  # characters of a receiver's answer that `endpoints test` shows


def routes_for(endpoints: Sequence[OutboundEndpoint]) -> tuple[Route, ...]:
    """The outbox's routing table: every enabled endpoint, with its event and filter sets."""
    return tuple(
        Route(ep.name, frozenset(ep.events), frozenset(ep.statuses), frozenset(ep.carriers))
        for ep in endpoints
        if ep.enabled
    )


def signed_headers(signer: Webhook, message_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt: the id is the row's, the timestamp this attempt's."""
    return {
        "content-type": "application/json",
        "user-agent": f"shiptrackd/{__version__}",
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signer.sign(message_id, at, body),
    }


class Dispatcher:
    """`await tg.start(dispatcher.run)`; `configure(config)` follows reloads."""

    def __init__(
        self, store: Store, clock: Clock, config: Config, *, on_disable: Callable[[str, str], None] | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_disable = on_disable
        self.owner = ""  # the cluster member id its claims carry (the daemon sets it)
        self.attempts: Counter[str] = Counter()  # by outcome, since start (metrics)
        self.delivered = 0
        self.in_flight = 0
        self._done: list[Settlement] = []
        self._wake = anyio.Event()
        self._states: dict[str, EndpointState] = {}
        self._client: httpx.AsyncClient | None = None
        self._notices = NoticeSender()
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Take the endpoints and settings of *config*; the outbox routes new changes by them from now on."""
        self.config = config
        self.endpoints = {ep.name: ep for ep in config.outbound if ep.enabled}
        self.signers = {name: Webhook(ep.secret.get()) for name, ep in self.endpoints.items()}
        self.notices = {NOTICE_PREFIX + n.name: n for n in config.notices}
        self._notices.configure(config.alerts.config)  # `tag:` recipients: the file is read again after a reload
        for url in (s.get() for n in config.notices for s in n.to if notice_tag(s.get()) is None):
            register_secret(url)  # a notice's Apprise URL holds credentials like an alert channel's
        self.store.outbox.routes = routes_for(config.outbound) + tuple(route_for(n) for n in config.notices)
        self.store.outbox.on_enqueue = self.wake
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def _state(self, endpoint: str) -> EndpointState:
        """What is known of *endpoint* (nothing yet: a fresh state)."""
        return self._states.get(endpoint) or EndpointState(name=endpoint)

    def disabled(self) -> dict[str, str]:
        """Endpoints the dispatcher disabled (410, or failing past disable_after): name -> reason."""
        return {n: s.disabled_reason for n, s in self._states.items() if s.disabled_at}

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # One daemon per SQLite file: what is 'sending' was left by its last stop. On a shared store the
        # membership hands back only dead members' rows (cluster/membership.py), never a live one's.
        reset = await self.store.outbox.reset_sending() if self.store.backend == "sqlite" else 0
        if reset:
            logger.warning("outbound: {} deliveries left in flight by an unclean stop will be sent again", reset)
        self._states = await self.store.outbox.endpoint_states()
        transport = AiohttpTransport(self.config.outbound_dispatch.concurrency)
        async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
            self._client = client
            try:
                async with anyio.create_task_group() as tg:
                    task_status.started()
                    await self._turns(tg)
            finally:
                self._client = None
                with anyio.move_on_after(5, shield=True):  # what finished is recorded, not sent again
                    done, self._done = self._done, []
                    await self.store.outbox.cycle(done, self.clock.now(), 0, [])

    async def _turns(self, tg: TaskGroup) -> None:
        while True:
            self._wake = anyio.Event()
            settings = self.config.outbound_dispatch
            done, self._done = self._done, []
            await self._account(done)  # first: an endpoint disabled by this turn's answers gets no more rows
            active = [n for n in self.endpoints if not self._state(n).disabled_at]
            free = settings.concurrency - self.in_flight
            endpoints = [*active, *self.notices]
            rows = await self.store.outbox.cycle(done, self.clock.now(), free, endpoints, self.owner)
            notices: dict[str, list[ClaimedRow]] = {}
            for row in rows:
                self.in_flight += 1
                if row.endpoint in self.notices:
                    notices.setdefault(row.endpoint, []).append(row)
                else:
                    tg.start_soon(self._deliver, row)
            for name, group in notices.items():  # one task per notice: a burst can become one digest
                tg.start_soon(self._notify, name, group)
            if len(rows) == free and free > 0:
                continue  # maybe more is due: claim again as soon as a slot frees
            with anyio.move_on_after(settings.poll_s):
                await self._wake.wait()
            if self.in_flight:
                await anyio.sleep(COALESCE_S)

    async def _account(self, done: Sequence[Settlement]) -> None:
        """Count outcomes; keep each endpoint's failure clock; disable on 410 or failing past disable_after."""
        for s in done:
            self.attempts[s.outcome] += 1
            if s.outcome == "deferred":  # a notice held by quiet hours: not a failure
                continue
            state = self._state(s.endpoint)
            if s.outcome == "delivered":
                self.delivered += 1
                self._states[s.endpoint] = msgspec.structs.replace(state, failing_since=None)
                continue
            since_at = state.failing_since or s.at
            self._states[s.endpoint] = msgspec.structs.replace(state, failing_since=since_at)
            ep = self.endpoints.get(s.endpoint)
            if state.disabled_at or ep is None:
                continue
            if s.outcome == "gone":
                await self._disable(s.endpoint, "the receiver answered 410 Gone", s.at)
            elif s.at - since_at > timedelta(seconds=ep.disable_after):
                await self._disable(s.endpoint, f"failing since {since_at.isoformat()}: {s.error}", s.at)

    async def _disable(self, endpoint: str, reason: str, now: datetime) -> None:
        await self.store.outbox.disable(endpoint, reason, now)
        self._states[endpoint] = msgspec.structs.replace(self._state(endpoint), disabled_at=now, disabled_reason=reason)
        logger.bind(endpoint=endpoint).error("outbound endpoint {} disabled: {}", endpoint, reason)
        if self.on_disable is not None:
            self.on_disable(endpoint, reason)

    async def enable(self, endpoint: str) -> bool:
        enabled = await self.store.outbox.enable(endpoint)
        state = self._state(endpoint)
        self._states[endpoint] = msgspec.structs.replace(
            state, disabled_at=None, disabled_reason="", failing_since=None
        )
        self.wake()
        return enabled

    async def _deliver(self, row: ClaimedRow) -> None:
        try:
            ep = self.endpoints.get(row.endpoint)
            at = self.clock.now()
            attempt_no = row.attempts + 1
            if ep is None:  # removed or disabled by a reload while claimed: no attempt, it waits
                attempt = Attempt(row.id, row.endpoint, attempt_no, at, 0.0, error="endpoint not configured")
                self._done.append(settle(attempt, (0.0,) * (attempt_no + 1), max_retry_after_s=0))
                return
            status, error, retry_after, latency_ms, _answer = await self._send(
                ep, self.signers[ep.name], row.message_id, at, row.body
            )
            attempt = Attempt(row.id, ep.name, attempt_no, at, latency_ms, status, error, retry_after)
            settings = self.config.outbound_dispatch
            self._done.append(settle(attempt, ep.retry_schedule, max_retry_after_s=settings.max_retry_after_s))
        finally:
            self.in_flight -= 1
            self._wake.set()

    async def _notify(self, name: str, rows: list[ClaimedRow]) -> None:
        try:
            # Awaited first: `self._done.extend(await ...)` would bind the list a turn may swap out meanwhile,
            # and a send longer than a turn (Apprise's first load takes seconds) was then never settled.
            settlements = await self._notices.send(self.notices[name], rows, self.clock.now())
            self._done.extend(settlements)
        finally:
            self.in_flight -= len(rows)
            self._wake.set()

    async def _send(
        self, ep: OutboundEndpoint, signer: Webhook, message_id: str, at: datetime, body: str
    ) -> tuple[int | None, str, str | None, float, str]:
        """One POST: (status, error, Retry-After, latency ms, the answer's first characters); never raises."""
        client = self._client
        assert client is not None
        headers = signed_headers(signer, message_id, at, body)
        started = time.perf_counter()
        status: int | None = None
        error, retry_after, answer = "", None, ""
        try:
            with anyio.fail_after(ep.timeout_s + 1):  # a receiver dribbling bytes still ends
                response = await client.post(ep.url, content=body.encode(), headers=headers, timeout=ep.timeout_s)
            status, retry_after = response.status_code, response.headers.get("retry-after")
            answer = response.text[:ANSWER_PREVIEW]
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {ep.timeout_s:g}s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        return status, error, retry_after, (time.perf_counter() - started) * 1000, answer

    async def test(self, name: str) -> dict[str, Any]:
        """Send a signed `ping` to endpoint *name* now (not through the outbox) and report the answer."""
        ep = next((e for e in self.config.outbound if e.name == name), None)
        if ep is None:
            raise KeyError(name)
        if self._client is None:
            raise RuntimeError("the dispatcher is not running")
        at = self.clock.now()
        message_id = f"msg_ping_{int(at.timestamp() * 1000)}"
        signer = self.signers.get(name) or Webhook(ep.secret.get())
        status, error, _ra, latency_ms, answer = await self._send(ep, signer, message_id, at, ping_body(name, at))
        ok = status is not None and 200 <= status < 300
        return {
            "endpoint": name,
            "ok": ok,
            "status": status,
            "error": error,
            "latency_ms": round(latency_ms, 1),
            "answer": answer,
            "message_id": message_id,
        }
