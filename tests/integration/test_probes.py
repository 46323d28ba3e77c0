"""
Liveness and readiness probes and the health level as an HTTP status, on a real daemon's Unix
socket and on its real TCP `metrics_listen` listener.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from alert_receivers import closed_port
from conftest import daemon_config

from shiptrackd.api.monitoring import LEVEL_HTTP_STATUS
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
async def both(short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[tuple[Daemon, list[httpx.AsyncClient]]]:
    """A real daemon with metrics_listen on loopback, and a client on its socket and one on the TCP listener."""
    port = closed_port()
    config = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_DAEMON__METRICS_LISTEN=f"127.0.0.1:{port}")
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        transport = httpx.AsyncHTTPTransport(uds=str(config.daemon.socket))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://shiptrackd") as on_socket,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as on_tcp,
        ):
            yield daemon, [on_socket, on_tcp]
        daemon.stop()


async def test_livez_and_readyz_answer_ok_on_the_socket_and_over_tcp(both: Any) -> None:
    """A running daemon answers 200 {"status": "ok"} to /livez and /readyz on both listeners."""
    _, clients = both
    for http in clients:
        for path in ("/livez", "/readyz"):
            response = await http.get(path)
            assert (response.status_code, response.json()) == (200, {"status": "ok"}), (http.base_url, path)


@pytest.mark.parametrize("state", ["starting", "stopping"])
async def test_readyz_is_503_while_starting_or_stopping_and_livez_stays_200(both: Any, state: str) -> None:
    """Before the loops run and once shutdown begins (Service.state), /readyz is 503 naming the state; /livez is 200."""
    daemon, clients = both
    assert daemon.service is not None
    daemon.service.state = state  # what Daemon.run sets at start and on stop()
    try:
        for http in clients:
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"status": state})
            alive = await http.get("/livez")
            assert (alive.status_code, alive.json()["status"]) == (200, state)
    finally:
        daemon.service.state = "running"


async def test_readyz_turns_503_during_a_real_shutdown(short_tmp: Path, sandbox: Sandbox) -> None:
    """While a real shutdown waits for an in-flight tracking call, /readyz over TCP answers 503 "stopping"."""
    from shiptrackd.api.client import ApiClient

    port = closed_port()
    sandbox.configure(latency_s=2.0)
    config = daemon_config(
        short_tmp,
        sandbox.base_url,
        SHIPTRACK_DAEMON__METRICS_LISTEN=f"127.0.0.1:{port}",
        SHIPTRACK_PROVIDER__TIMEOUT="10s",
        SHIPTRACK_DAEMON__SHUTDOWN_GRACE="1s",
    )
    async with anyio.create_task_group() as tg, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        assert (await http.get("/readyz")).status_code == 200
        async with ApiClient(config.daemon.socket) as client:
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0001"}])
            await client.sync()
        with anyio.fail_after(5):
            while True:  # until the call is on the wire: shutdown will wait for it
                if sandbox.stats.in_flight >= 1:
                    break
                await anyio.sleep(0.01)
        daemon.stop()
        response = await http.get("/readyz")
        assert (response.status_code, response.json()) == (503, {"status": "stopping"})


async def test_health_with_http_status_maps_the_level_to_the_status_code(short_tmp: Path) -> None:
    """/v1/health?http_status=1 answers by level (here critical: 503, the provider is down); else 200."""
    config = daemon_config(short_tmp, f"http://127.0.0.1:{closed_port()}")  # nothing listens: unreachable
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        transport = httpx.AsyncHTTPTransport(uds=str(config.daemon.socket))
        async with httpx.AsyncClient(transport=transport, base_url="http://shiptrackd", timeout=10) as http:
            plain = await http.get("/v1/health", params={"fresh": "1"})
            level = plain.json()["level"]
            assert plain.status_code == 200 and level != "ok", plain.json()
            mapped = await http.get("/v1/health", params={"http_status": "1"})
            assert (mapped.status_code, mapped.json()["level"]) == (LEVEL_HTTP_STATUS[level], level)
            assert mapped.status_code != 200
            assert (await http.get("/v1/health", params={"http_status": "0"})).status_code == 200
            bad = await http.get("/v1/health", params={"http_status": "maybe"})
            assert bad.status_code == 400 and "http_status" in bad.json()["error"]["message"]
        daemon.stop()


def test_the_level_map_follows_what_http_checkers_read() -> None:
    """ok is 200, warning 429 (Consul's warning, check_http's WARNING), critical and unknown 503."""
    assert LEVEL_HTTP_STATUS == {"ok": 200, "warning": 429, "critical": 503, "unknown": 503}
