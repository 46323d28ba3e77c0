"""
Keeping pushes subscribed: every active shipment the pushing account tracks subscribed with it,
every finished one (and any another account tracks) unsubscribed, and polling taking over when the
push channel falls silent.

One pass (`run_once`, the `push` loop's body) subscribes a batch of active shipments not yet
subscribed (added, imported, or there before pushes were on), stops the pushes of expired and
removed ones, and forgets those ShipEngine stopped by itself (DE, EX). Each call goes through the
throttle: the same pace, rate limit and Retry-After pause as polls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from loguru import logger

from ..clock import Clock
from ..errors import ProviderError, RateLimitedError
from ..store import Store
from ..store.push import NOWHERE, Elsewhere
from ..store.rows import Shipment
from ..sync.throttle import ProviderThrottle
from .state import OK, PushState

BATCH = 100  # subscriptions per pass: a first start with 10,000 shipments takes 100 passes


@runtime_checkable
class Subscribing(Protocol):
    """A provider that can be told which parcels to push (ShipEngine's tracking/start and stop)."""

    async def subscribe(self, carrier_code: str, tracking_number: str) -> None: ...

    async def unsubscribe(self, carrier_code: str, tracking_number: str) -> None: ...


class Subscriptions:
    def __init__(
        self,
        *,
        store: Store,
        throttle: Callable[[], ProviderThrottle],
        state: PushState,
        clock: Clock,
        on_silence: Callable[[], object] | None = None,
        elsewhere: Callable[[], Elsewhere] = lambda: NOWHERE,
    ) -> None:
        """
        *throttle* is read on each call (a reload swaps it); *on_silence* runs when polling must take
        over; *elsewhere* says which shipments other accounts track (never subscribed with this one).
        """
        self.store = store
        self.throttle = throttle
        self.elsewhere = elsewhere
        self.state = state
        self.clock = clock
        self.on_silence = on_silence
        self.failures = 0  # subscription calls that failed, since start
        self._silent = False

    async def run_once(self) -> str:
        """One pass; a sentence for the loop's last outcome."""
        await self.store.push.forget_auto_stopped()
        throttle = self.throttle()
        provider = throttle.provider
        subscribed = stopped = failed = 0
        if isinstance(provider, Subscribing):
            # Another account's parcel subscribed here is pushed as this provider sees it: from its
            # subscription on, "not yet in system" and newer than the real history, so it won.
            elsewhere = self.elsewhere()
            for shipment in await self.store.push.to_unsubscribe(BATCH, elsewhere):
                await self._call(throttle, provider.unsubscribe, shipment)
                await self.store.push.mark_unsubscribed([shipment.id])
                stopped += 1
            done: list[str] = []
            for shipment in await self.store.push.to_subscribe(BATCH, elsewhere):
                if await self._call(throttle, provider.subscribe, shipment):
                    done.append(shipment.id)
                else:
                    failed += 1
                    if failed >= 3:
                        break  # the provider refuses: try again next pass, not 100 times now
            subscribed = await self.store.push.mark_subscribed(done, self.clock.now()) if done else 0
        self.state.subscribed = await self.store.push.count_subscribed()
        pulled = await self.check_silence()
        parts = [f"{subscribed} subscribed", f"{stopped} stopped", f"{self.state.subscribed} active subscriptions"]
        if failed:
            parts.append(f"{failed} failed")
        if pulled:
            parts.append(f"push channel silent: {pulled} shipments back to polling")
        return ", ".join(parts)

    async def _call(
        self, throttle: ProviderThrottle, fn: Callable[[str, str], Awaitable[None]], shipment: Shipment
    ) -> bool:
        carrier, number = shipment.carrier_code, shipment.tracking_number
        try:
            await throttle.call(lambda: fn(carrier, number))
        except RateLimitedError:
            return False
        except ProviderError as exc:
            self.failures += 1
            logger.bind(loop="push").warning("push subscription for {} failed: {}", shipment.id, exc)
            return False
        return True

    async def check_silence(self) -> int:
        """On the channel falling silent, make every shipment waiting on a safety poll due now; how many."""
        silent = self.state.silence(self.clock.now()) != OK
        pulled = 0
        if silent and not self._silent:
            pulled = await self.store.push.pull_forward(self.clock.now())
            logger.bind(loop="push").warning(
                "no push for a while with {} subscriptions: polling takes over ({} shipments due now)",
                self.state.subscribed,
                pulled,
            )
            if self.on_silence is not None:
                self.on_silence()
        elif not silent and self._silent:
            logger.bind(loop="push").info("pushes are arriving again: safety polls only for subscribed shipments")
        self._silent = silent
        return pulled
