"""
The push feature as the daemon holds it: state, receiver, subscriptions, and what the control API
asks of it (`webhooks status`, `webhooks setup`, unsubscribing a removed shipment).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from loguru import logger

from ..clock import Clock, utcnow
from ..config import Config
from ..config.accounts import accounts
from ..errors import ConflictError, ProviderError, ShiptrackError
from ..events import EventBus
from ..providers.base import Provider
from ..providers.shipengine_push import ShipEnginePush
from ..store import Store
from ..store.push import Elsewhere
from ..store.rows import Shipment
from ..sync.throttle import ProviderThrottle
from .adapter import interface_pushes
from .jwks import JwksCache
from .receiver import PushProvider, PushReceiver
from .state import PushState
from .subscriptions import Subscribing, Subscriptions


@runtime_checkable
class WebhookRegistering(Protocol):
    """A provider whose webhook URL is set through its API (ShipEngine's `/v1/environment/webhooks`)."""

    name: str

    async def ensure_webhook(self, url: str) -> dict[str, Any]: ...


class WebhookSetupError(ShiptrackError):
    code = "webhook_setup_failed"
    http_status = 502


def push_providers(
    config: Config, now: Callable[[], datetime], account: Callable[[str], Provider] | None = None
) -> tuple[dict[str, PushProvider], JwksCache]:
    """The push dialects this daemon receives, by the path they are served at (`/hooks/<name>`).

    ShipEngine's is its own (JWKS, RSA); every other account's provider checks and reads its own
    pushes (providers/base.py) and is served at `/hooks/<account name>`, and at `/hooks/<kind>` when
    it is the only account of its kind. *account* gives an account's current provider by name.
    """
    jwks = JwksCache(config.webhooks.jwks_url)
    providers: dict[str, PushProvider] = {
        "shipengine": ShipEnginePush(jwks, tolerance_s=config.webhooks.tolerance_s, now=now)
    }
    if account is not None:
        others = {e.name: e.kind for e in accounts(config) if e.kind != "shipengine"}

        def current(name: str) -> Callable[[], Provider]:
            return lambda: account(name)

        for path, push in interface_pushes({name: current(name) for name in others}, others).items():
            providers.setdefault(path, push)
    return providers, jwks


class Accounts(Protocol):
    """The provider accounts as pushes ask about them (SyncEngine): only an account's own parcels are pushed."""

    throttle: ProviderThrottle  # the default account: subscriptions go to it

    def account(self, name: str) -> ProviderThrottle: ...

    def lane_for(self, shipment: Shipment) -> ProviderThrottle: ...

    def elsewhere(self) -> Elsewhere: ...


class Push:
    """Built by the daemon when `[webhooks] listen` is set."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        clock: Clock,
        bus: EventBus,
        accounts: Accounts,
    ) -> None:
        cad = config.sync.cadence
        self.config = config
        self.store = store
        self.clock = clock
        self.throttle: Callable[[], ProviderThrottle] = lambda: accounts.throttle  # a reload swaps it
        self.state = PushState(clock.now(), cad.silence_after, cad.silence_critical_after)
        # The signed timestamp is compared with the wall clock, not the schedule's Clock: like HTTP
        # timeouts, it is about real seconds on the wire (a test's FakeClock may be days ahead).
        providers, self.jwks = push_providers(config, utcnow, lambda name: accounts.account(name).provider)
        self.receiver = PushReceiver(
            providers=providers,
            store=store,
            clock=clock,
            bus=bus,
            config=config,
            state=self.state,
            account_of=lambda shipment: accounts.lane_for(shipment).provider,
        )
        self.subscriptions = Subscriptions(
            store=store, throttle=self.throttle, state=self.state, clock=clock, elsewhere=accounts.elsewhere
        )
        self.address: str | None = None  # HOST:PORT the listener is bound to

    async def load(self) -> None:
        """What the store remembers: the last push (so silence survives a restart) and the subscriptions."""
        self.state.last_push_at = await self.store.push.last_push_at()
        self.state.subscribed = await self.store.push.count_subscribed()

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self.receiver.config = config
        self.state.warning_s = config.sync.cadence.silence_after
        self.state.critical_s = config.sync.cadence.silence_critical_after

    async def aclose(self) -> None:
        await self.jwks.aclose()

    def hook_url(self, provider: str) -> str:
        public = self.config.webhooks.public_url
        if not public:
            raise ConflictError("set [webhooks] public_url (where your proxy exposes the listener) first")
        return f"{public.rstrip('/')}/hooks/{provider}"

    async def setup(self) -> dict[str, Any]:
        """Register (or update) the provider's `track` webhook to `<public_url>/hooks/<provider>`."""
        throttle = self.throttle()
        provider = throttle.provider
        if not isinstance(provider, WebhookRegistering):
            raise ConflictError(f"provider {throttle.provider.name} has no webhook registration API")
        url = self.hook_url(provider.name)
        try:
            result = await throttle.call(lambda: provider.ensure_webhook(url))
        except ProviderError as exc:
            raise WebhookSetupError(f"registering the webhook failed: {exc}") from exc
        self.state.registered_url = url
        logger.bind(loop="push").info("webhook {} at {} ({})", result.get("action"), url, result.get("webhook_id"))
        return {**result, "provider": provider.name}

    async def forget(self, shipment: Shipment) -> None:
        """A removed shipment: stop its pushes first (best effort; a failure is logged, the removal goes on)."""
        provider = self.throttle().provider
        if shipment.subscribed_at is None or not isinstance(provider, Subscribing):
            return
        try:
            await self.throttle().call(lambda: provider.unsubscribe(shipment.carrier_code, shipment.tracking_number))
        except ProviderError as exc:
            logger.bind(loop="push").warning("stopping the pushes of {} failed: {}", shipment.id, exc)

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "enabled": True,
            "listen": self.address,
            "public_url": self.config.webhooks.public_url or None,
            "hook_urls": {name: f"/hooks/{name}" for name in sorted(self.receiver.providers)},
            "jwks": {"url": self.jwks.url, "keys": sorted(self.jwks.keys), "last_error": self.jwks.last_error or None},
            "subscription_failures": self.subscriptions.failures,
            **self.state.snapshot(now),
        }


def disabled_status() -> dict[str, Any]:
    return {"enabled": False, "message": "webhooks are off: set [webhooks] listen (and public_url) to receive pushes"}
