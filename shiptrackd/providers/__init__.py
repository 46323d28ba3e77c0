"""
Tracking-API providers, picked by `[provider] name` in the config.

Only the daemon imports this package (it pulls in httpx); the CLI never does.
"""

from __future__ import annotations

from collections.abc import Callable

from shiptrackd.config import ProviderConfig
from shiptrackd.errors import ConfigError
from shiptrackd.providers.base import Provider, RequestObserver, null_observer
from shiptrackd.providers.seventeentrack import SeventeenTrackProvider
from shiptrackd.providers.shipengine import ShipEngineProvider

__all__ = ["PROVIDERS", "Provider", "RequestObserver", "ShipEngineProvider", "make_provider", "null_observer"]

# kind -> factory(config, observer=...): one line per provider module.
PROVIDERS: dict[str, Callable[..., Provider]] = {"shipengine": ShipEngineProvider, "17track": SeventeenTrackProvider}


def make_provider(config: ProviderConfig, *, observer: RequestObserver | None = None) -> Provider:
    """Build the provider `config.name` names; an unknown name is a config error listing the known ones."""
    try:
        factory = PROVIDERS[config.name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"provider.name: unknown provider {config.name!r} (known: {known})") from None
    return factory(config, observer=observer)
