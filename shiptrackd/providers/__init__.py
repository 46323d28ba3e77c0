"""
Tracking-API providers, picked by `[provider] name` in the config.

Only the daemon imports this package (it pulls in httpx); the CLI never does.
"""

from __future__ import annotations

from collections.abc import Callable

from shiptrackd.config import ProviderConfig
from shiptrackd.errors import ConfigError
from shiptrackd.providers.aftership import AfterShipProvider
from shiptrackd.providers.base import Provider, RequestObserver, null_observer
from shiptrackd.providers.easypost import EasyPostProvider
from shiptrackd.providers.seventeentrack import SeventeenTrackProvider
from shiptrackd.providers.shipengine import ShipEngineProvider

__all__ = [
    "PROVIDERS",
    "AfterShipProvider",
    "EasyPostProvider",
    "Provider",
    "RequestObserver",
    "ShipEngineProvider",
    "make_provider",
    "null_observer",
]

# kind -> factory(config, observer=...): one line per provider module.
PROVIDERS: dict[str, Callable[..., Provider]] = {
    "shipengine": ShipEngineProvider,
    "17track": SeventeenTrackProvider,
    "easypost": EasyPostProvider,
    "aftership": AfterShipProvider,
}


def make_provider(config: ProviderConfig, *, observer: RequestObserver | None = None) -> Provider:
    """Build the provider of `config.kind` (the single [provider]: `config.name`); an unknown one is a config error."""
    kind = config.kind or config.name
    try:
        factory = PROVIDERS[kind]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"provider {config.name!r}: unknown kind {kind!r} (known: {known})") from None
    return factory(config, observer=observer)
