"""
The console's test fake against a real daemon: for every route the console reads, the
fake's answer must have the shape the daemon's has (same keys, same kinds of values,
timestamps where the daemon sends timestamps), so the snapshot tests draw what a real
daemon would make the console draw. And the Alerts panel is drawn from a real `/v1/alerts`.

The real daemon has [webhooks] on and one [[outbound]] endpoint (the sandbox, on a path it
answers 404: a delivery that fails, is recorded and goes dead), so push and delivery answers
carry data rather than nulls.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from conftest import quiet_daemon_env
from textual.widgets import DataTable
from tui_fake_data import EVENTS
from tui_fakes import FakeClient

from shiptrackd.api.client import ApiClient
from shiptrackd.config import load
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from tui.app import ShiptrackApp
from tui.screens.deliveries import DeliveriesScreen
from tui.widgets.panels import AlertsPanel
from tui.widgets.webhook_panels import DeliveriesPanel, PushPanel

pytestmark = pytest.mark.anyio

# Objects whose keys are data (a status code, a carrier, an error kind, a push outcome, a provider), not field names.
MAPS = {"by_status", "by_carrier", "errors_24h", "by_error", "details", "kinds", "last_hour", "totals", "pushes"}
MAPS |= {"hook_urls"}

# One endpoint that fails on its one attempt: the sandbox has no such path.
OUTBOUND = """
[[outbound]]
name = "shop"
url = "{url}/no-such-receiver"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
events = ["shipment.added"]
retry_schedule = ["0s"]
"""


def kind(value: Any) -> str:
    """The JSON kind of a value; a string that reads as an RFC 3339 time is a 'time'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        if len(value) >= 19 and value[10:11] == "T":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                return "time"
            except ValueError:
                pass
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def differences(fake: Any, real: Any, path: str = "$") -> list[str]:
    """Where *fake* does not have *real*'s shape. A null on either side matches anything (an unset field)."""
    fk, rk = kind(fake), kind(real)
    if "null" in (fk, rk):
        return []
    if fk != rk:
        return [f"{path}: the fake sends {fk} ({fake!r:.60}), the daemon {rk} ({real!r:.60})"]
    if fk == "list":
        if fake and not real:
            return [f"{path}: the daemon sent an empty list, so the fake's items are unchecked"]
        # each of the fake's items against the daemon's item it matches best (a test notice has no checks)
        return [
            d
            for i, item in enumerate(fake)
            for d in min((differences(item, theirs, f"{path}[{i}]") for theirs in real), key=len)
        ]
    if fk != "object":
        return []
    if path.rsplit(".", 1)[-1] in MAPS:
        sample = next(iter(real.values()), None)
        return [d for key, value in fake.items() for d in differences(value, sample, f"{path}.{key}")]
    out = [f"{path}: the fake sends {key!r}, the daemon does not" for key in fake.keys() - real.keys()]
    out += [f"{path}: the daemon sends {key!r}, the fake does not" for key in real.keys() - fake.keys()]
    return out + [d for key in fake.keys() & real.keys() for d in differences(fake[key], real[key], f"{path}.{key}")]


def test_differences_catch_what_the_old_fake_got_wrong() -> None:
    """The comparison itself: renamed keys, a string for a list of objects, a non-time for a time."""
    real = {"at": "2025-03-14T12:00:00Z", "checks": [{"check": "x", "level": "ok"}], "n": 1}
    assert differences(real, real) == []
    assert differences({"checked_at": "2025-03-14T12:00:00Z", "checks": [{"check": "x", "level": "ok"}], "n": 2}, real)
    assert differences({"at": "2025-03-14T12:00:00Z", "checks": ["x"], "n": 1}, real)
    assert differences({"at": "5 min ago", "checks": [{"check": "x", "level": "ok"}], "n": 1}, real)
    assert differences({"at": None, "checks": [], "n": None}, real) == []


@dataclass
class Real:
    client: ApiClient
    daemon: Daemon
    events: list[dict[str, Any]]
    shipment_id: str


@pytest.fixture
async def real(short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[Real]:
    """A real daemon on the sandbox with something in every answer: shipments, a run, a fired alert, a test notice."""
    toml = short_tmp / "shiptrackd.toml"
    toml.write_text(OUTBOUND.format(url=sandbox.base_url))
    port = free_port()  # the public URL must name the listener's port before the daemon binds it
    env = quiet_daemon_env(
        short_tmp,
        sandbox.base_url,
        SHIPTRACK_ALERTS__FOR_REPORTS="1",
        SHIPTRACK_WEBHOOKS__LISTEN=f"127.0.0.1:{port}",
        SHIPTRACK_WEBHOOKS__PUBLIC_URL=f"http://127.0.0.1:{port}",
        SHIPTRACK_WEBHOOKS__JWKS_URL=f"{sandbox.base_url}/jwks",
    )
    config = load(toml, env=env)
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            added = await client.add_shipments(
                [{"carrier_code": "ups", "tracking_number": f"1ZCONTRACT{i}", "reference": f"R{i}"} for i in range(3)]
            )
            await client.sync()
            assert daemon.engine is not None
            await daemon.engine.wait_idle()  # status changes by a sync (with a run_id) before any push
            await client.webhooks_setup()  # then the sandbox pushes each subscribed shipment's history
            with anyio.fail_after(10):  # a push verified (JWKS read) and merged
                while (await client.webhooks()).last_push_at is None:  # noqa: ASYNC110  (no event says so)
                    await anyio.sleep(0.02)
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZCONTRACTDUE"}])  # due now
            sandbox.configure(api_key="TEST_rotated")  # api_connectivity turns critical: an alert fires
            await client.alert_evaluate(wait_s=10)
            await client.alert_test(wait_s=10)
            await client.loop_action("alerts", "pause")
            with anyio.fail_after(10):  # the added shipments' deliveries, attempted once and dead
                while not (await client.deliveries(state="dead")).deliveries:  # noqa: ASYNC110  (as above)
                    await anyio.sleep(0.02)
            yield Real(client, daemon, await replay(client), added.added[0].id)
        daemon.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def replay(client: ApiClient) -> list[dict[str, Any]]:
    """Every event the daemon has published so far (its ring replays them from seq 0)."""
    last = (await client.status()).event_seq
    events: list[dict[str, Any]] = []
    stream = client.raw_events(since=0, heartbeat_s=60)
    with anyio.fail_after(10):
        async for line in stream:
            events.append(json.loads(line))
            if events[-1]["seq"] >= last:
                break
    await stream.aclose()
    return events


async def test_the_fake_answers_every_route_as_the_daemon_does(real: Real) -> None:
    """Every route the console reads (status, runs, stats, health, alerts, shipments, why, sync, loops, add,
    test alert, webhooks, endpoints, deliveries): the fake answers with the daemon's shapes."""
    fake, client = FakeClient(total=50), real.client
    fake_id = (await fake.shipments(limit=1)).shipments[0].id
    progress = next(e for e in real.events if e["type"] == "sync.progress")
    pairs: dict[str, tuple[Any, Any]] = {
        "status": (await fake.status(), {**json_of(await client.status()), "sync": strip(progress)}),
        "runs": (await fake.runs(10), await client.runs(10)),
        "stats": (await fake.stats(), await client.stats()),
        "health": (await fake.health(), await client.health()),
        "health?fresh": (await fake.health(fresh=True), await client.health(fresh=True)),
        "alerts": (await fake.alerts(), await client.alerts()),
        "shipments": (await fake.shipments(limit=5), await client.shipments(limit=5)),
        "shipment": (await fake.shipment(fake_id), await client.shipment(real.shipment_id)),
        "why": (await fake.why(fake_id), await client.why(real.shipment_id)),
        "sync?dry_run": (await fake.sync_plan(), await client.sync_plan()),
        "sync": (await fake.sync(), await client.sync()),
        "loops": (await fake.loops(), await client.loops()),
        "loop_action": (await fake.loop_action("sync", "pause"), await client.loop_action("sync", "pause")),
        "alert_test": (await fake.alert_test(), await client.alert_test(wait_s=10)),
        "webhooks": (await fake.webhooks(), await client.webhooks()),
        "endpoints": (await fake.endpoints(), await client.endpoints()),
        "deliveries": (await fake.deliveries(), await client.deliveries()),
        "add_shipments": (
            await fake.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZNEW"}]),
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZNEW"}]),
        ),
    }
    found = {route: differences(json_of(ours), json_of(theirs)) for route, (ours, theirs) in pairs.items()}
    wrong = {route: d for route, d in found.items() if d}
    assert not wrong, "\n".join(f"{route}: {d}" for route, ds in wrong.items() for d in ds)


async def test_the_fakes_events_are_the_daemons_events(real: Real) -> None:
    """Every event type the fake streams (bar the deliberately unknown one) has the daemon's shape."""
    checked = 0
    for event in EVENTS:
        if event["type"] in ("something.new", "heartbeat"):
            continue
        theirs = [e for e in real.events if e["type"] == event["type"]]
        assert theirs, f"the daemon sent no {event['type']} event to compare with"
        # the daemon's event it matches best: a status change by a sync has a run_id, one by a push has none
        assert min((differences(event, e) for e in theirs), key=len) == []
        checked += 1
    assert checked >= 2


async def test_alerts_panel_draws_a_real_daemons_alerts(real: Real) -> None:
    """The dashboard's Alerts panel names the checks of a real notification, never a dict's repr."""
    socket = real.client.socket_path
    app = ShiptrackApp(lambda: ApiClient(socket), heartbeat_s=60.0, refresh_s=3600.0)
    async with app.run_test(size=(200, 40)) as pilot:
        with anyio.fail_after(10):
            while not (app.state.connected and app.state.alerts):
                await pilot.pause(0.02)
        await pilot.pause()
        text = str(app.screen.query_one(AlertsPanel).render())
    assert "api_connectivity" in text and "test" in text
    assert "{" not in text and "'check'" not in text
    assert "critical" in text.lower() and "sent 1/1" in text


async def test_webhook_views_draw_a_real_daemons_answers(real: Real) -> None:
    """Push health, the deliveries line and the deliveries view (4) from a real daemon's push and outbound state."""
    socket = real.client.socket_path
    app = ShiptrackApp(lambda: ApiClient(socket), heartbeat_s=60.0, refresh_s=3600.0)
    async with app.run_test(size=(160, 40)) as pilot:
        with anyio.fail_after(10):
            while not (app.state.webhooks and app.state.endpoints):
                await pilot.pause(0.02)
        await pilot.pause()
        push = " ".join(str(app.screen.query_one(PushPanel).render()).split())
        assert "3 subscribed" in push and "accepted" in push  # the sandbox pushed each shipment's history
        out = " ".join(str(app.screen.query_one(DeliveriesPanel).render()).split())
        # the sandbox refuses the delivery (404 on the path, 401 once the key is rotated): each attempt failed
        assert "critical 1 endpoint" in out and "shop failing nothing sent yet HTTP 40" in out
        await pilot.press("4")
        with anyio.fail_after(10):
            while not (isinstance(app.screen, DeliveriesScreen) and app.screen.deliveries):
                await pilot.pause(0.02)
        await pilot.pause()
        table = app.screen.query_one("#endpoint-table", DataTable)
        [shop] = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert shop[:2] == ["shop", "failing"] and int(shop[4]) >= 4 and shop[6].startswith("HTTP 40")
        listing = app.screen.query_one("#delivery-table", DataTable)
        rows = [[str(c) for c in listing.get_row_at(i)] for i in range(listing.row_count)]
        assert len(rows) >= 4 and {r[4] for r in rows} == {"dead"} and {r[6][:2] for r in rows} == {"40"}


def json_of(answer: Any) -> Any:
    """An answer (a wire type) as JSON values, every field named, a defaulted one too.

    Not msgspec.to_builtins: under omit_defaults it leaves out a field whose value *is* the default
    object, so a fake's "given" (the default itself) vanished where the daemon's decoded "given" stayed.
    """
    if isinstance(answer, msgspec.Struct):
        return {name: json_of(getattr(answer, name)) for name in answer.__struct_fields__}
    if isinstance(answer, list):
        return [json_of(item) for item in answer]
    if isinstance(answer, dict):
        return {key: json_of(value) for key, value in answer.items()}
    return msgspec.to_builtins(answer)


def strip(event: dict[str, Any]) -> dict[str, Any]:
    """An event's data without the envelope (seq, type, at)."""
    return {k: v for k, v in event.items() if k not in ("seq", "type", "at")}
