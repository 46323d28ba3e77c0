"""
The dead man's switch: a real daemon pings a real ping service on 127.0.0.1 that judges it the way
healthchecks.io does (up while pings arrive within period + grace, down on a /fail ping or a miss).

The daemon runs on a FakeClock, so "a minute later" is `clock.advance(minutes=1)`; the pings
themselves are real HTTP requests, waited for with a deadline.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import daemon_config
from prometheus_client.parser import text_string_to_metric_families

from shiptrackd.alerts.heartbeat import fail_url
from shiptrackd.api.client import ApiClient
from shiptrackd.clock import FakeClock
from shiptrackd.ctl.render import Output
from shiptrackd.ctl.status import render_status
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from shiptrackd.schedule import Loop

pytestmark = pytest.mark.anyio

TOKEN = "0f3c6c1e-4b7a-4d2e-9c1a-5e6f7a8b9c0d"  # the ping URL's secret part
PERIOD, GRACE = timedelta(minutes=1), timedelta(minutes=1)
STEP = timedelta(seconds=66)  # the interval plus the loop's jitter (at most 10% of it)


@dataclass
class PingService:
    """A healthchecks.io-like check: `state(now)` is new, up, or down (a /fail ping, or no ping for period+grace)."""

    clock: FakeClock
    port: int = 0
    hang: bool = False  # accept, then never answer: a ping service that is down in the worst way
    pings: list[tuple[str, datetime]] = field(default_factory=list)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ping/{TOKEN}"

    def state(self, now: datetime) -> str:
        if not self.pings:
            return "new"
        path, at = self.pings[-1]
        return "down" if path.endswith("/fail") or now - at > PERIOD + GRACE else "up"

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[tuple[str, datetime]]:
        with anyio.fail_after(timeout_s):
            while len(self.pings) < count:
                await self._changed.wait()
        return self.pings

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if self.hang:
                await anyio.sleep_forever()
            path = head.decode("latin-1").split(" ", 2)[1]
            self.pings.append((path, self.clock.now()))
            self._changed.set()
            self._changed = anyio.Event()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
            await writer.drain()
        finally:
            writer.close()


@asynccontextmanager
async def ping_service(clock: FakeClock, hang: bool = False) -> AsyncIterator[PingService]:
    service = PingService(clock, hang=hang)
    server = await asyncio.start_server(service.handle, "127.0.0.1", 0)
    service.port = server.sockets[0].getsockname()[1]
    try:
        yield service
    finally:
        server.close()


@asynccontextmanager
async def daemon_with_heartbeat(
    short_tmp: Path, sandbox: Sandbox, clock: FakeClock, url: str, **env: str
) -> AsyncIterator[tuple[Daemon, ApiClient]]:
    settings = {"SHIPTRACK_ALERTS__HEARTBEAT_URL": url, "SHIPTRACK_ALERTS__HEARTBEAT_INTERVAL": "1m", **env}
    config = daemon_config(short_tmp, sandbox.base_url, **settings)
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, clock=clock, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            yield daemon, client
        daemon.stop()


async def until(daemon: Daemon, done: Callable[[Loop], bool], timeout_s: float = 10.0) -> None:
    """Wait (on the daemon's loop.changed events, with a deadline) until *done* holds for the heartbeat loop."""
    loop = daemon.loops["heartbeat"]
    with anyio.fail_after(timeout_s):
        async for _event in daemon.bus.subscribe(since=0):  # replays history: a change just before is seen too
            if done(loop):
                return


async def asleep(daemon: Daemon) -> None:
    """Until the heartbeat loop has planned its next ping, so advancing the clock reaches it."""
    await until(daemon, lambda loop: not loop.running and loop.next_run_at is not None)


async def metrics(socket: Path) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(socket))) as http:
        text = (await http.get("http://shiptrackd/metrics")).text
    assert TOKEN not in text
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict[str, Any], name: str, **labels: str) -> float:
    [found] = [s.value for s in fams[name].samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return float(found)


async def test_pings_every_interval_and_the_service_notices_when_they_stop(short_tmp: Path, sandbox: Sandbox) -> None:
    """A healthy daemon pings once a minute (as `shiptrackctl status` shows); once it stops, the service says down."""
    clock = FakeClock()
    async with ping_service(clock) as service:
        async with daemon_with_heartbeat(short_tmp, sandbox, clock, service.url) as (daemon, client):
            for count in range(1, 4):
                await asleep(daemon)
                await clock.advance(STEP)
                await service.wait_for(count)
                assert service.state(clock.now()) == "up"
            status = await client.status()
            fams = await metrics(daemon.config.daemon.socket)
        assert [path for path, _ in service.pings] == [f"/ping/{TOKEN}"] * 3
        heartbeat = status.heartbeat
        assert heartbeat is not None and heartbeat.last is not None
        assert heartbeat.last.kind == "success" and heartbeat.last.ok and heartbeat.last.level == "ok"
        assert TOKEN not in str(heartbeat) and heartbeat.url.startswith(f"http://127.0.0.1:{service.port}/ping/")
        assert sample(fams, "shiptrackd_heartbeat_pings", kind="success", outcome="ok") == 3
        shown = io.StringIO()
        render_status(Output(stdout=shown, stderr=io.StringIO(), env={}), status)
        line = next(line for line in shown.getvalue().splitlines() if "heartbeat" in line)
        assert "every 1m; last: success ping ok (HTTP 200)" in line and TOKEN not in line
        assert sample(fams, "shiptrackd_heartbeat_last_ping_ok") == 1
        # The daemon is gone (a dead host looks the same): nobody pings, and the service notices.
        await clock.advance(STEP)
        assert service.state(clock.now()) == "up"
        await clock.advance(STEP)
        assert service.state(clock.now()) == "down" and len(service.pings) == 3


async def test_critical_health_pings_the_fail_url(short_tmp: Path, sandbox: Sandbox) -> None:
    """While health is critical (the API rejects the key) the ping goes to <url>/fail, and the service says down."""
    clock = FakeClock()
    async with ping_service(clock) as service:
        async with daemon_with_heartbeat(
            short_tmp, sandbox, clock, service.url, SHIPTRACK_PROVIDER__API_KEY="TEST_wrong_key"
        ) as (daemon, client):
            await asleep(daemon)
            await clock.advance(STEP)
            [(path, _)] = await service.wait_for(1)
            status = await client.status()
            fams = await metrics(daemon.config.daemon.socket)
    assert path == f"/ping/{TOKEN}/fail" and service.state(clock.now()) == "down"
    assert status.heartbeat is not None and status.heartbeat.last is not None
    assert status.heartbeat.last.kind == "fail" and status.heartbeat.last.level == "critical"
    assert TOKEN not in str(status)
    assert sample(fams, "shiptrackd_heartbeat_pings", kind="fail", outcome="ok") == 1


async def test_a_hung_ping_service_blocks_no_other_loop(short_tmp: Path, sandbox: Sandbox) -> None:
    """A ping service that never answers costs one timeout: a sync runs meanwhile, and the miss is recorded."""
    clock = FakeClock()
    async with ping_service(clock, hang=True) as service:
        async with daemon_with_heartbeat(
            short_tmp, sandbox, clock, service.url, SHIPTRACK_ALERTS__HEARTBEAT_TIMEOUT="1s"
        ) as (daemon, client):
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZDELIVERED001"}])
            await client.loop_action("heartbeat", "trigger")
            await until(daemon, lambda loop: loop.running)
            run = await client.sync()  # while the ping hangs
            assert daemon.engine is not None
            await daemon.engine.wait_idle()
            assert daemon.loops["heartbeat"].running, "the sync finished while the ping was still waiting"
            await until(daemon, lambda loop: not loop.running)
            status = await client.status()
    assert run.run_id and not run.joined
    assert status.heartbeat is not None
    last = status.heartbeat.last
    assert last is not None and (last.ok, last.error) == (False, "no answer within 1s")
    [loop] = [lp for lp in status.loops if lp.name == "heartbeat"]
    assert loop.failures_in_a_row == 0  # recorded by the heartbeat, never raised into the supervisor
    assert TOKEN not in str(status)


async def test_an_unreachable_ping_service_is_recorded_with_the_url_masked(short_tmp: Path, sandbox: Sandbox) -> None:
    """Connection refused is a failed ping in status, with the error and URL free of the token."""
    from alert_receivers import closed_port

    clock = FakeClock()
    url = f"http://127.0.0.1:{closed_port()}/ping/{TOKEN}"
    async with daemon_with_heartbeat(short_tmp, sandbox, clock, url) as (daemon, client):
        await asleep(daemon)
        await clock.advance(STEP)
        await until(daemon, lambda loop: loop.runs == 1 and not loop.running)
        status = await client.status()
    assert status.heartbeat is not None and status.heartbeat.last is not None
    assert status.heartbeat.last.ok is False and "Connect" in status.heartbeat.last.error
    assert TOKEN not in str(status)


def test_fail_url_defaults_to_the_healthchecks_form_and_keeps_the_query() -> None:
    """`<url>/fail` by default (before any query string); a configured fail URL wins."""
    from shiptrackd.config import load

    def config(**alerts: str) -> Any:
        env = {f"SHIPTRACK_ALERTS__{key.upper()}": value for key, value in alerts.items()}
        return load(None, env={"SHIPTRACK_DAEMON__STATE_DIR": "/tmp/unused", **env}).alerts

    assert fail_url(config(heartbeat_url="https://hc-ping.com/abc/")) == "https://hc-ping.com/abc/fail"
    assert fail_url(config(heartbeat_url="https://cronitor.link/p/k/job?env=prod")) == (
        "https://cronitor.link/p/k/job/fail?env=prod"
    )
    kuma = "https://kuma.example/api/push/Ab12Cd34Ef?status=down&msg=critical"
    assert fail_url(config(heartbeat_url="https://kuma.example/api/push/Ab12Cd34Ef", heartbeat_fail_url=kuma)) == kuma


def test_check_config_masks_the_heartbeat_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--check-config` shows heartbeat_url with its token masked, and rejects a URL that is not http(s)."""
    from shiptrackd.__main__ import main
    from shiptrackd.wire.names import EXIT_CONFIG, EXIT_OK

    monkeypatch.setenv("SHIPTRACK_DAEMON__STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SHIPTRACK_ALERTS__HEARTBEAT_URL", f"https://hc-ping.com/{TOKEN}")
    assert main(["--check-config"]) == EXIT_OK
    out = capsys.readouterr().out
    assert 'heartbeat_url = "https://hc-ping.com/' in out and TOKEN not in out
    monkeypatch.setenv("SHIPTRACK_ALERTS__HEARTBEAT_URL", f"hc-ping.com/{TOKEN}")
    assert main(["--check-config"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "alerts.heartbeat_url" in err and "http:// or https://" in err and TOKEN not in err
