"""
`shiptrackd --demo`: the real daemon against the in-process sandbox, with sample
shipments in every state, so a newcomer sees syncing, status changes and handled
errors within a minute, with no key and no network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from loguru import logger

from .clock import utcnow
from .config import Config, RateLimit, Secret
from .daemon import STORE_FILE
from .models import NewShipment
from .sandbox import Sandbox, sample_shipments
from .store import Store

DEMO_KEY = "TEST_demo_key"
# Simulated carrier time runs an hour a second: a parcel is delivered within a couple of minutes.
TIME_SCALE = 3600.0


def pointed_at(config: Config, base_url: str) -> Config:
    """The configuration with the provider aimed at the sandbox."""
    # 10/s against the sandbox's 20/s: fast enough to watch, and the daemon never causes a 429 itself.
    provider = dataclasses.replace(
        config.provider, base_url=base_url, api_key=Secret(DEMO_KEY), rate_limit=RateLimit(10, 1.0), timeout_s=5.0
    )
    return dataclasses.replace(config, provider=provider)


@asynccontextmanager
async def demo_environment(config: Config) -> AsyncIterator[tuple[Config, Callable[[Config], Config]]]:
    """Start the sandbox, seed the store once, and yield the config aimed at it plus the same re-aiming for reloads."""
    sandbox = Sandbox(api_key=DEMO_KEY, latency_s=0.05, time_scale=TIME_SCALE, rate_limit="20/s")
    async with sandbox.serve() as sb:
        demo_config = pointed_at(config, sb.base_url)
        store = await Store.open(config.daemon.state_dir / STORE_FILE)
        try:
            samples = [NewShipment(**s) for s in sample_shipments(50)]
            added = await store.shipments.add_many(samples, utcnow())
        finally:
            await store.close()
        logger.info(
            "demo: sandbox carrier API at {}, {} sample shipments added ({} already there); state in {}",
            sb.base_url,
            len(added.added),
            len(added.duplicates),
            config.daemon.state_dir,
        )
        logger.info(
            "demo: try `shiptrackctl --socket {} status` or `shiptrack-tui --socket {}`", *[config.daemon.socket] * 2
        )
        yield demo_config, lambda reloaded: pointed_at(reloaded, sb.base_url)
