"""A 429 from an endpoint with its own declared limit (Limits.endpoints) waits that endpoint alone, not the account."""

from __future__ import annotations

import anyio
import pytest
from test_throttle import OK, ScriptedProvider, make

from shiptrackd.errors import RateLimitedError
from shiptrackd.providers.base import Limits
from shiptrackd.units import RateLimit

pytestmark = pytest.mark.anyio


class PerEndpointProvider(ScriptedProvider):
    limits = Limits(rate=RateLimit(5, 1.0), endpoints={"POST /couriers/detect": RateLimit(3, 1.0)})


async def test_an_endpoints_own_429_does_not_pause_the_account() -> None:
    limited = RateLimitedError("detect: 429", retry_after_s=30.0, endpoint="POST /couriers/detect")
    throttle = make(PerEndpointProvider(limited, OK))
    with anyio.fail_after(2):  # not the 30 s an account-wide pause would cost
        assert await throttle.fetch("", "1Z") == OK
    assert throttle.paused_until is None and throttle.stats.rate_limited == 1


async def test_a_429_for_the_account_or_an_undeclared_endpoint_pauses_it() -> None:
    for endpoint in ("", "GET /elsewhere"):
        limited = RateLimitedError("429", retry_after_s=30.0, endpoint=endpoint)
        throttle = make(PerEndpointProvider(limited, OK))
        with anyio.move_on_after(0.3):
            await throttle.fetch("", "1Z")
        assert throttle.paused_until is not None, endpoint
