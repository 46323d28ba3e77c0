"""
17TRACK v2.2 against the sandbox's 17TRACK dialect over real HTTP: batches of 40 (one request,
one rate-limit slot each), registration before the first fetch, omitted and stray numbers,
quota, stoptrack on removal, the status map as a table, and the push signature with vectors
computed here from the documented algorithm (sha256_hex(body + "/" + key)).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from conftest import SANDBOX_KEY, daemon_config

from shiptrackd.clock import FakeClock
from shiptrackd.config import Config
from shiptrackd.errors import PushRejectedError, QuotaExhaustedError, ShipmentNotFoundError
from shiptrackd.events import EventBus
from shiptrackd.models import NewShipment, TrackingInfo
from shiptrackd.providers import make_provider
from shiptrackd.providers import seventeentrack_wire as wire
from shiptrackd.providers.base import Parcel, Registration
from shiptrackd.providers.seventeentrack import SeventeenTrackProvider
from shiptrackd.sandbox import Sandbox
from shiptrackd.sandbox.server import Reply, Request, listen, serve
from shiptrackd.sandbox.seventeen import PREFIX
from shiptrackd.store import Store
from shiptrackd.sync.engine import SyncEngine
from shiptrackd.sync.throttle import ApiStats, ProviderThrottle

pytestmark = pytest.mark.anyio

KEY = "TEST_17track_key"


def env(**extra: str) -> dict[str, str]:
    return {"SHIPTRACK_PROVIDER__NAME": "17track", "SHIPTRACK_PROVIDER__API_KEY": KEY, **extra}


@dataclass
class Rig:
    engine: SyncEngine
    store: Store
    throttle: ProviderThrottle
    stats: ApiStats
    config: Config

    async def add(self, *numbers: str, carrier: str = "usps") -> dict[str, str]:
        result = await self.store.shipments.add_many([NewShipment(carrier, n) for n in numbers], FakeClock().now())
        return {a.tracking_number: a.id for a in result.added}


@asynccontextmanager
async def rig(tmp_path: Path, sandbox: Sandbox, **extra: str) -> AsyncIterator[Rig]:
    """A SyncEngine wired like the daemon's with the 17track provider on the sandbox's dialect."""
    sandbox.seventeen.configure(api_key=KEY)
    config = daemon_config(tmp_path, sandbox.base_url + PREFIX, **env(**extra))
    store = await Store.open(tmp_path / "shiptrackd.db")
    stats = ApiStats()
    provider = make_provider(config.provider, observer=stats.observe)
    throttle = ProviderThrottle(provider, config.provider, stats)
    engine = SyncEngine(store, throttle, FakeClock(), EventBus(), config)
    try:
        yield Rig(engine, store, throttle, stats, config)
    finally:
        await provider.aclose()
        await store.close()


async def test_100_due_shipments_take_3_registrations_and_3_fetches(tmp_path: Path, sandbox: Sandbox) -> None:
    """40 numbers a request: 100 new shipments cost 3 register + 3 gettrackinfo requests, one slot each."""
    async with rig(tmp_path, sandbox) as r:
        ids = await r.add(*(f"9400{i:012}" for i in range(100)))
        run = await r.engine.run_once("manual")
        assert run["outcome"] == "ok" and run["updated"] == 100, run
        assert sandbox.seventeen.by_endpoint == {"/register": 3, "/gettrackinfo": 3}
        assert run["api_calls"] == 6 and r.stats.requests == 6
        assert sandbox.seventeen.quota_used == 100
        shipment = await r.store.shipments.get(ids["9400000000000007"])
        assert shipment is not None and shipment.provider == "17track" and shipment.provider_ref == "21051"
        assert shipment.provider_status in wire.STATUSES and shipment.provider_sub_status

        run = await r.engine.run_once("force")  # registered now: only the 3 fetches
        assert sandbox.seventeen.by_endpoint == {"/register": 3, "/gettrackinfo": 6}
        assert run["api_calls"] == 3 and sandbox.seventeen.quota_used == 100


async def test_a_number_17track_forgot_is_registered_again(tmp_path: Path, sandbox: Sandbox) -> None:
    """gettrackinfo's -18019902 for a number we registered: that run fails it, the next registers it again."""
    async with rig(tmp_path, sandbox) as r:
        ids = await r.add("9400000000041", "9400000000042")
        assert (await r.engine.run_once("manual"))["updated"] == 2
        del sandbox.seventeen.registered["9400000000041"]  # deleted at 17TRACK (or a restarted sandbox)
        forgot = await r.engine.run_once("force")
        assert (forgot["updated"] + forgot["unchanged"], forgot["failed"]) == (1, 1)
        cleared = await r.store.shipments.get(ids["9400000000041"])
        assert cleared is not None and (cleared.provider_ref, cleared.last_error_kind) == ("", "not_found")
        again = await r.engine.run_once("targeted", [ids["9400000000041"]])
        assert (again["updated"] + again["unchanged"], again["failed"]) == (1, 0)
        back = await r.store.shipments.get(ids["9400000000041"])
        assert back is not None and back.provider_ref == "21051" and "9400000000041" in sandbox.seventeen.registered


async def test_an_omitted_number_fails_alone_and_a_stray_is_counted(tmp_path: Path, sandbox: Sandbox) -> None:
    async with rig(tmp_path, sandbox) as r:
        ids = await r.add("9400OMIT0001", "9400STRAY0002", "9400000000003", "9400NODETECT4")
        run = await r.engine.run_once("manual")
        assert (run["updated"], run["failed"]) == (2, 2), run
        omitted = await r.store.shipments.get(ids["9400OMIT0001"])
        undetected = await r.store.shipments.get(ids["9400NODETECT4"])
        assert omitted is not None and omitted.last_error_kind == "invalid_response"
        assert "no tracking for 9400OMIT0001" in omitted.last_error
        assert undetected is not None and undetected.last_error_kind == "not_found"
        assert undetected.provider_ref == ""  # never registered: tried again next time
        assert (r.stats.strays, r.stats.omitted) == (1, 1)
        assert sandbox.seventeen.by_endpoint == {"/register": 1, "/gettrackinfo": 1}


async def test_quota_exhausted_stops_registrations_and_polling_goes_on(tmp_path: Path, sandbox: Sandbox) -> None:
    async with rig(tmp_path, sandbox) as r:
        first = await r.add("9400000000101", "9400000000102")
        await r.engine.run_once("manual")
        sandbox.seventeen.configure(quota_total=sandbox.seventeen.quota_used)  # spent from here on
        later = await r.add("9400000000103")
        run = await r.engine.run_once("force")
        assert (run["updated"] + run["unchanged"], run["failed"]) == (2, 1), run
        new = await r.store.shipments.get(later["9400000000103"])
        assert new is not None and new.last_error_kind == "quota_exhausted"
        assert "17track" in r.throttle.quota_exhausted or "quota" in r.throttle.quota_exhausted
        old = await r.store.shipments.get(first["9400000000101"])
        assert old is not None and old.last_error == ""
        quota = await r.throttle.provider.quota()
        assert quota is not None and (quota.total, quota.used, quota.remaining) == (2, 2, 0)


async def test_provider_calls_on_the_wire(tmp_path: Path, sandbox: Sandbox) -> None:
    """register (a duplicate counts as registered), gettrackinfo, stoptrack, getquota; a bad key is 401."""
    sandbox.seventeen.configure(api_key=KEY, quota_total=50, quota_used=0)
    config = daemon_config(tmp_path, sandbox.base_url + PREFIX, **env())
    provider = SeventeenTrackProvider(config.provider)
    try:
        parcels = [Parcel("ups", "1ZINTRANSIT9001"), Parcel("", "LX123456785CN")]
        regs = await provider.register(parcels)
        assert regs == {
            "1ZINTRANSIT9001": Registration("100002", "ups"),
            "LX123456785CN": Registration("21051", "usps"),  # auto-detected by the sandbox
        }
        again = await provider.register(parcels[:1])
        assert isinstance(again["1ZINTRANSIT9001"], Registration)
        answers = await provider.fetch_many([*parcels, Parcel("usps", "9400NEVERREG")])
        info = answers["1ZINTRANSIT9001"]
        assert isinstance(info, TrackingInfo) and info.status_code == "IT" and info.carrier_code == "ups"
        assert info.provider_status == "InTransit" and info.provider_sub_status.startswith("InTransit_")
        assert [e.occurred_at for e in info.events] == sorted(e.occurred_at for e in info.events)
        assert isinstance(answers["9400NEVERREG"], ShipmentNotFoundError)
        await provider.unregister(parcels[:1])
        assert sandbox.seventeen.registered["1ZINTRANSIT9001"].stopped
        quota = await provider.quota()
        assert quota is not None and (quota.total, quota.used, quota.remaining) == (50, 2, 48)
        assert await provider.check_connectivity() >= 0
    finally:
        await provider.aclose()
    sandbox.seventeen.configure(quota_used=50)
    provider = SeventeenTrackProvider(config.provider)
    try:
        spent = await provider.register([Parcel("usps", "9400000000999")])
        assert isinstance(spent["9400000000999"], QuotaExhaustedError)
    finally:
        await provider.aclose()
    assert sandbox.seventeen.by_endpoint["/getquota"] == 2


async def test_a_request_carries_the_documented_wire_format(tmp_path: Path) -> None:
    """POST, `17token`, a JSON array of {number, carrier}: checked by a receiver of our own."""
    seen: list[Request] = []

    async def handler(request: Request) -> Reply:
        seen.append(request)
        accepted = [{"number": i["number"], "carrier": 100002} for i in json.loads(request.body)]
        return Reply(200, json.dumps({"code": 0, "data": {"accepted": accepted, "rejected": []}}).encode())

    sock = listen("127.0.0.1", 0)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}/track/v2.2"
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, handler, sock)
        config = daemon_config(tmp_path, base, **env())
        provider = SeventeenTrackProvider(config.provider)
        try:
            await provider.register([Parcel("ups", "1Z0001"), Parcel("ontrac", "C00002")])
        finally:
            await provider.aclose()
        tg.cancel_scope.cancel()
    (request,) = seen
    assert (request.method, request.path) == ("POST", "/track/v2.2/register")
    assert request.headers["17token"] == KEY and request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == [{"number": "1Z0001", "carrier": 100002}, {"number": "C00002"}]


async def test_removal_stops_tracking_at_17track(short_tmp: Path, sandbox: Sandbox) -> None:
    """shiptrackctl shipments remove -> stoptrack for that number, in the background."""
    from shiptrackd.api.client import ApiClient
    from shiptrackd.daemon import Daemon

    sandbox.seventeen.configure(api_key=KEY)
    config = daemon_config(short_tmp, sandbox.base_url + PREFIX, **env())
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            added = await client.add_shipments([{"carrier_code": "usps", "tracking_number": "9400REMOVE01"}])
            shipment_id = added.added[0].id
            await client.sync()
            with anyio.fail_after(10):
                while "9400REMOVE01" not in sandbox.seventeen.registered:  # noqa: ASYNC110  (no event to wait on)
                    await anyio.sleep(0.02)
                await daemon.engine.wait_idle()
            await client.remove_shipment(shipment_id)
            with anyio.fail_after(10):
                while not sandbox.seventeen.registered["9400REMOVE01"].stopped:  # noqa: ASYNC110  (background stoptrack)
                    await anyio.sleep(0.02)

            # stats: the quota read live, with the provider's figures.
            (figures,) = (await client.stats()).providers
            assert (figures.name, figures.kind, figures.batch_size) == ("17track", "17track", 40)
            quota = figures.quota
            assert quota is not None and (quota.total, quota.used, quota.remaining) == (100_000, 1, 99_999)
            assert "registrations" in (quota.counts or "") and quota.read_at is not None

            # quota spent: a new shipment cannot be registered, the health check is critical and names 17track.
            sandbox.seventeen.configure(quota_total=1)
            await client.add_shipments([{"carrier_code": "usps", "tracking_number": "9400NOQUOTA1"}])
            await client.sync()
            await daemon.engine.wait_idle()
            with anyio.fail_after(10):
                while daemon.engine.quota_exhausted() == "":  # noqa: ASYNC110  (the run is in the background)
                    await anyio.sleep(0.02)
            health = await client.health(fresh=True)
            api = next(c for c in health.checks if c.name == "api_connectivity")
            assert api.level == "critical" and api.message.startswith("17track: quota exhausted"), api
            (figures,) = (await client.stats()).providers
            assert figures.quota is not None and figures.quota.remaining == 0 and figures.quota_exhausted
        daemon.stop()
    assert sandbox.seventeen.by_endpoint["/stoptrack"] == 1


STATUS_TABLE = [
    ("NotFound", "NotFound_Other", "UN", ""),
    ("InfoReceived", "InfoReceived", "NY", "SHIPMENT_CREATED"),
    ("InTransit", "InTransit_PickedUp", "AC", "PICKED_UP"),
    ("InTransit", "InTransit_Departure", "IT", "HUB_SCAN_OUT"),
    ("InTransit", "InTransit_CustomsProcessing", "IT", "CUSTOMS_PROCESSING"),
    ("OutForDelivery", "OutForDelivery_Other", "IT", "OUT_FOR_DELIVERY"),
    ("AvailableForPickup", "AvailableForPickup_Other", "SP", "AWAITING_COLLECTION_FROM_PICKUP_POINT"),
    ("DeliveryFailure", "DeliveryFailure_InvalidAddress", "AT", "ADDRESS_QUERY"),
    ("Delivered", "Delivered_Other", "DE", "DELIVERED"),
    ("Exception", "Exception_Returned", "EX", "UNDELIVERABLE_RETURNED_TO_SENDER"),
    ("Exception", "Exception_Lost", "EX", "PARCEL_LOST"),
    ("Expired", "Expired_Other", "EX", "TRACKING_EXPIRED"),
    ("InTransit", "InTransit_SomethingNew", "IT", "IN_TRANSIT"),  # a new sub-status: its main status decides
    ("Teleported", "Teleported_Other", "UN", ""),  # a status we do not know: unknown, kept, counted
]


@pytest.mark.parametrize(("status", "sub_status", "code", "detail"), STATUS_TABLE)
def test_status_map(status: str, sub_status: str, code: str, detail: str) -> None:
    m = wire.status_map()
    assert m.map(status, sub_status) == (code, detail)
    assert sum(m.unknown.values()) == (0 if status in wire.STATUSES else 1)


def test_every_documented_sub_status_is_mapped() -> None:
    documented = (
        "NotFound_Other NotFound_InvalidCode InTransit_PickedUp InTransit_Departure InTransit_Arrival"
        " InTransit_CustomsProcessing InTransit_CustomsReleased InTransit_CustomsRequiringInformation InTransit_Other"
        " DeliveryFailure_NoBody DeliveryFailure_Security DeliveryFailure_Rejected DeliveryFailure_InvalidAddress"
        " DeliveryFailure_Other Delivered_Other Exception_Returning Exception_Returned Exception_NoBody"
        " Exception_Security Exception_Damage Exception_Rejected Exception_Delayed Exception_Lost"
        " Exception_Destroyed Exception_Cancel Exception_Other"
    ).split()
    assert set(documented) <= set(wire.SUB_STATUSES)


def known_good_sign(body: bytes, key: str) -> str:
    """The documented algorithm, written out independently of the code under test."""
    return hashlib.sha256(body + b"/" + key.encode("utf-8")).hexdigest()


async def test_push_signature_vectors(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, "http://127.0.0.1:9/track/v2.2", **env())
    provider = SeventeenTrackProvider(config.provider)
    body = b'{"event":"TRACKING_STOPPED","data":{"number":"RR123456789CN","carrier":3011}}'
    good = known_good_sign(body, KEY)
    try:
        await provider.verify_push({"sign": good}, body)
        await provider.verify_push({"Sign": good.upper()}, body)  # header name and hex case do not matter
        for headers, raw in (
            ({}, body),
            ({"sign": good}, body + b" "),
            ({"sign": known_good_sign(body, KEY + "x")}, body),
            ({"sign": hashlib.sha256(body + KEY.encode()).hexdigest()}, body),  # no "/": not the algorithm
        ):
            with pytest.raises(PushRejectedError):
                await provider.verify_push(headers, raw)
        (update,) = provider.parse_push(body)
        assert (update.tracking_number, update.carrier_code, update.info, update.event) == (
            "RR123456789CN",
            "china_post",
            None,
            "TRACKING_STOPPED",
        )
        with pytest.raises(PushRejectedError):
            provider.parse_push(b'{"data": {}}')
    finally:
        await provider.aclose()


async def test_the_sandbox_pushes_signed_updates_we_verify_and_parse(tmp_path: Path, sandbox: Sandbox) -> None:
    """The sandbox's push: `sign` over the raw body; a forged one is refused; data parses to our status."""
    received: list[Request] = []
    got = anyio.Event()

    async def receiver(request: Request) -> Reply:
        received.append(request)
        got.set()
        return Reply(200, b"{}")

    sock = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/17track"
    config = daemon_config(tmp_path, sandbox.base_url + PREFIX, **env())
    provider = SeventeenTrackProvider(config.provider)
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, receiver, sock)
        try:
            sandbox.seventeen.configure(api_key=KEY, push_url=url)
            await provider.register([Parcel("usps", "9400DELIVERED77")])
            assert await sandbox.seventeen.push() == 1
            assert await sandbox.seventeen.push() == 0  # nothing moved since
            sandbox.seventeen.configure(push_faults={"badsign": 1.0})
            assert await sandbox.seventeen.push(only_changed=False) == 1
        finally:
            await provider.aclose()
            tg.cancel_scope.cancel()
    good, forged = received
    assert good.path == "/hooks/17track" and good.headers["sign"] == known_good_sign(good.body, KEY)
    await provider.verify_push(good.headers, good.body)
    (update,) = provider.parse_push(good.body)
    assert update.event == "TRACKING_UPDATED" and update.info is not None
    assert (update.tracking_number, update.info.status_code, update.info.provider_status) == (
        "9400DELIVERED77",
        "DE",
        "Delivered",
    )
    with pytest.raises(PushRejectedError):
        await provider.verify_push(forged.headers, forged.body)


def test_sandbox_key_is_not_17tracks() -> None:
    assert SANDBOX_KEY != KEY
