"""A configuration reload swaps the provider but keeps the account's rate-limit pause and learned pace."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from conftest import daemon_config

from shiptrackd.api.client import ApiClient
from shiptrackd.clock import utcnow
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio


async def test_reload_during_a_retry_after_pause_keeps_the_pause(short_tmp: Path, sandbox: Sandbox) -> None:
    """A reload with a new API key during a 429 pause must not send a request before the pause ends."""
    before = daemon_config(short_tmp, sandbox.base_url)
    after = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_PROVIDER__API_KEY="TEST_rotated_key")
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(before, load_config=lambda: after, handle_signals=False).run)
        assert daemon.engine is not None
        old_throttle = daemon.engine.throttle
        old_throttle.pause(120)  # what a 429 with Retry-After: 120 does
        async with ApiClient(before.daemon.socket) as client:
            answer = await client.reload()
        assert "provider" in answer.changed
        assert daemon.engine.throttle is not old_throttle  # the provider really was swapped
        paused_until = daemon.engine.throttle.paused_until
        assert paused_until is not None and paused_until > utcnow() + timedelta(seconds=100)
        daemon.stop()


async def test_reload_with_a_new_key_keeps_the_learned_pace(short_tmp: Path, sandbox: Sandbox) -> None:
    """A key rotation keeps the rate the 429s taught; a new ceiling in the config starts from it afresh."""
    before = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_PROVIDER__RATE_LIMIT="40/s")
    rotated = daemon_config(
        short_tmp, sandbox.base_url, SHIPTRACK_PROVIDER__RATE_LIMIT="40/s", SHIPTRACK_PROVIDER__API_KEY="TEST_rotated"
    )
    lowered = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_PROVIDER__RATE_LIMIT="30/s")
    configs = iter([rotated, lowered])
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(before, load_config=lambda: next(configs), handle_signals=False).run)
        assert daemon.engine is not None
        daemon.engine.throttle.controller.on_rate_limited(anyio.current_time(), anyio.current_time())  # a 429: 40 -> 20
        async with ApiClient(before.daemon.socket) as client:
            await client.reload()
            assert daemon.engine.throttle.controller.rate == 20.0
            await client.reload()
            assert daemon.engine.throttle.controller.rate == 30.0
        daemon.stop()
