"""
The provider interface's shared parts: the status map (unknown words kept, counted, never an
error) and the throttle's batch calls (one rate-limit slot per request, a number the answer
left out failed alone, a stray number ignored and counted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anyio.lowlevel
import pytest

from shiptrackd.config import ProviderConfig, RateLimit
from shiptrackd.errors import InvalidResponseError, ProviderError, PushRejectedError, ShipmentNotFoundError
from shiptrackd.models import TrackingInfo
from shiptrackd.providers.base import Limits, Parcel, Provider, ProviderBase, StatusMap
from shiptrackd.sync.throttle import ApiStats, ProviderThrottle

pytestmark = pytest.mark.anyio


def test_a_status_map_maps_sub_status_first_then_status_and_counts_the_unknown() -> None:
    m = StatusMap({"InTransit": ("IT", ""), "Exception": ("EX", "")}, {"Exception_Returned": ("EX", "RETURNED")})
    assert m.map("InTransit") == ("IT", "")
    assert m.map("InTransit", "InTransit_PickedUp") == ("IT", "")
    assert m.map("Exception", "Exception_Returned") == ("EX", "RETURNED")
    assert m.map("Teleported", "Teleported_Mars") == ("UN", "")
    assert m.map("Teleported", "Teleported_Mars") == ("UN", "")
    assert m.unknown == {"Teleported/Teleported_Mars": 2}


def test_a_status_map_refuses_a_code_that_is_not_ours() -> None:
    with pytest.raises(ValueError, match="ZZ"):
        StatusMap({"Gone": ("ZZ", "")})


class BatchProvider(ProviderBase):
    """Answers a batch for every number asked but the ones in `omit`, plus a stray one."""

    name = "batcher"
    kind = "batcher"
    limits = Limits(batch_size=3)
    status_map = StatusMap({"IT": ("IT", "")})

    def __init__(self, omit: set[str]) -> None:
        self.omit = omit
        self.requests: list[list[str]] = []

    async def fetch_many(self, parcels: Sequence[Parcel]) -> Mapping[str, TrackingInfo | ProviderError]:
        self.requests.append([p.tracking_number for p in parcels])
        await anyio.lowlevel.checkpoint()
        asked = [p.tracking_number for p in parcels if p.tracking_number not in self.omit]
        out: dict[str, TrackingInfo | ProviderError] = {n: TrackingInfo(n, "IT") for n in asked}
        out["STRAY"] = TrackingInfo("STRAY", "IT")
        out["BAD"] = ShipmentNotFoundError("no such number")
        return out

    async def check_connectivity(self) -> float:
        return 0.0

    async def aclose(self) -> None:
        pass


async def test_a_batch_is_one_request_under_the_limit_and_the_answer_is_completed() -> None:
    provider = BatchProvider(omit={"B"})
    assert isinstance(provider, Provider)
    stats = ApiStats()
    throttle = ProviderThrottle(provider, ProviderConfig(rate_limit=RateLimit(1000, 1.0)), stats)
    assert throttle.batch_size == 3
    answer = await throttle.fetch_many([Parcel("x", "A"), Parcel("x", "B"), Parcel("x", "BAD")])
    assert provider.requests == [["A", "B", "BAD"]]
    assert set(answer) == {"A", "B", "BAD"}  # the stray is not passed on
    assert isinstance(answer["A"], TrackingInfo)
    assert isinstance(answer["B"], InvalidResponseError) and "no tracking for B" in str(answer["B"])
    assert isinstance(answer["BAD"], ShipmentNotFoundError)
    assert (stats.strays, stats.omitted) == (1, 1)
    assert throttle.controller.snapshot()["cuts"] == 0


async def test_a_provider_without_pushes_rejects_them() -> None:
    provider = BatchProvider(omit=set())
    with pytest.raises(PushRejectedError):
        await provider.verify_push({}, b"{}")
    with pytest.raises(PushRejectedError):
        provider.parse_push(b"{}")
    assert await provider.quota() is None
