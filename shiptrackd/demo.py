"""
`shiptrackd --demo`: the real daemon against the in-process sandbox, with sample
shipments in every state, so a newcomer sees syncing, status changes and handled
errors within a minute, with no key and no network.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from loguru import logger

from .clock import utcnow
from .config import Config, RateLimit, Secret
from .daemon import STORE_FILE
from .models import NewShipment
from .sandbox import Sandbox, sample_shipments
from .sandbox.seventeen import PREFIX as SEVENTEEN_PREFIX
from .statedir import create_private
from .store import Store, configured_target

DEMO_KEY = "TEST_demo_key"
DEMO_17TRACK = "17track"  # the second account's name
DEMO_17TRACK_KEY = "TEST_demo_17track"
DETECT_SAMPLE = NewShipment("", "1Z4W7A890000004242", "ORDER-DETECT", provider=DEMO_17TRACK)  # its carrier: found
# Simulated carrier time runs an hour a second: a parcel is delivered within a couple of minutes.
TIME_SCALE = 3600.0
STORY_FILE = "sandbox-story.json"  # beside the store in the demo's state dir
STORY_SAVE_INTERVAL_S = 2.0


def pointed_at(config: Config, base_url: str, hook_port: int = 0) -> Config:
    """The configuration with two provider accounts aimed at the sandbox, and pushes at our listener on *hook_port*.

    Two accounts side by side, as an operator with two aggregators runs them: ShipEngine (the
    default, pushing) and 17TRACK for USPS parcels (40 numbers a request, 3 requests a second).
    """
    # 10/s against the sandbox's 20/s: fast enough to watch, and the daemon never causes a 429 itself.
    provider = dataclasses.replace(
        config.provider, base_url=base_url, api_key=Secret(DEMO_KEY), rate_limit=RateLimit(10, 1.0), timeout_s=5.0
    )
    domestic = dataclasses.replace(provider, name="shipengine", kind="shipengine", carriers=(), default=True)
    intl = dataclasses.replace(
        provider,
        name=DEMO_17TRACK,
        kind="17track",
        base_url=base_url + SEVENTEEN_PREFIX,
        api_key=Secret(DEMO_17TRACK_KEY),
        webhook_secret=Secret(""),
        rate_limit=RateLimit(3, 1.0),
        carriers=("usps",),
        default=False,
    )
    config = dataclasses.replace(config, providers=(domestic, intl))
    if not hook_port:
        return dataclasses.replace(config, provider=provider)
    webhooks = dataclasses.replace(
        config.webhooks,
        listen=f"127.0.0.1:{hook_port}",
        public_url=f"http://127.0.0.1:{hook_port}",
        jwks_url=f"{base_url}/jwks",
    )
    return dataclasses.replace(config, provider=provider, webhooks=webhooks)


def free_port() -> int:
    """A free loopback port for the demo's push listener (the sandbox must know it before the daemon binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_story(sandbox: Sandbox, path: Path) -> str:
    """Resume the sandbox's story from *path* if there is one; a sentence saying what happened, for the log."""
    try:
        story = json.loads(path.read_text(encoding="utf-8"))
        sandbox.resume_story(story)
    except FileNotFoundError:
        return "a new story starts"
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        return f"the saved story in {path} is unreadable ({exc}); a new story starts"
    return f"the story continues at {story['now']} ({len(story['first_seen'])} parcels already seen)"


def save_story(sandbox: Sandbox, path: Path) -> None:
    """Write the sandbox's story to *path* atomically (a crash leaves the old one, never half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(sandbox.story(), fh)
    os.replace(tmp, path)


async def _keep_story(sandbox: Sandbox, path: Path) -> None:
    """Save the story every few seconds, so even a kill -9 loses little of it."""
    while True:
        await anyio.sleep(STORY_SAVE_INTERVAL_S)
        try:
            save_story(sandbox, path)
        except OSError as exc:
            logger.warning("demo: cannot save the sandbox story to {}: {}", path, exc)


@asynccontextmanager
async def demo_environment(config: Config) -> AsyncIterator[tuple[Config, Callable[[Config], Config]]]:
    """Start the sandbox, seed the store once, and yield the config aimed at it plus the same re-aiming for reloads.

    The sandbox's story (its simulated clock and when it first saw each parcel) is kept beside the
    demo's store, so a demo restarted in the same folder continues where it stopped.
    """
    sandbox = Sandbox(api_key=DEMO_KEY, latency_s=0.05, time_scale=TIME_SCALE, rate_limit="20/s")
    sandbox.seventeen.configure(api_key=DEMO_17TRACK_KEY, rate_limit="3/s")
    story_path = config.daemon.state_dir / STORY_FILE
    story_note = load_story(sandbox, story_path)
    # As in Sandbox.serve: the block's own exception is raised after the task group closes, so
    # a ConfigError from the daemon reaches __main__ as itself, not inside an ExceptionGroup.
    error: BaseException | None = None
    async with sandbox.serve() as sb:
        await _seed(config, sb.base_url, story_note)
        # Push first: the sandbox pushes to our listener, as ShipEngine would after `shiptrackctl
        # webhooks setup` (done here once, sandbox side, since the demo knows both ends).
        hook_port = free_port()
        hook = f"http://127.0.0.1:{hook_port}/hooks/shipengine"
        sandbox.push.register_webhook({"event": "track", "url": hook})
        logger.info("demo: the sandbox pushes tracking changes to {} (watch for `push ship_...` lines)", hook)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_keep_story, sandbox, story_path)
            try:
                yield (
                    pointed_at(config, sb.base_url, hook_port),
                    lambda reloaded: pointed_at(reloaded, sb.base_url, hook_port),
                )
            except BaseException as exc:
                error = exc
            finally:
                tg.cancel_scope.cancel()
                save_story(sandbox, story_path)
    if error is not None:
        raise error


async def _seed(config: Config, base_url: str, story_note: str) -> None:
    """Add the sample shipments (once: later runs find them there) and tell the newcomer where to look."""
    target = configured_target(config.store.url, config.daemon.state_dir, STORE_FILE)
    if isinstance(target, Path):
        create_private(target)
    store = await Store.open(target, password=config.store.password.get())
    try:
        samples = [NewShipment(**s) for s in sample_shipments(50)]
        # One added without a carrier, for 17TRACK to detect (once: after that it has one, and its own row).
        found, _ = await store.shipments.list(
            status=None, carrier=None, search=DETECT_SAMPLE.tracking_number, active=None, cursor=None, limit=1
        )
        added = await store.shipments.add_many(samples + ([] if found else [DETECT_SAMPLE]), utcnow())
    finally:
        await store.close()
    logger.info(
        "demo: sandbox carrier API at {}, {} sample shipments added ({} already there); state in {}; {}",
        base_url,
        len(added.added),
        len(added.duplicates),
        config.daemon.state_dir,
        story_note,
    )
    sock = config.daemon.socket
    logger.info("demo: try `shiptrackctl --socket {} status` or `shiptrack-tui --socket {}`", sock, sock)
