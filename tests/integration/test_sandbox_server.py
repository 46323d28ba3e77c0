"""
The sandbox over real loopback HTTP: ShipEngine's wire behaviour, the knobs, the counters, the CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable

import anyio
import httpx
import pytest

from shiptrackd.sandbox import Sandbox

KEY = "TEST_sandbox"
AUTH = {"API-Key": KEY}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(api_key=KEY, time_scale=0).serve() as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=sandbox.base_url, limits=limits, timeout=5) as client:
        yield client


def track(number: str, carrier_code: str = "ups") -> str:
    return f"/v1/tracking?carrier_code={carrier_code}&tracking_number={number}"


async def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Poll `condition()` until true; a deadline, not a sleep, decides when to give up."""
    with anyio.fail_after(timeout_s):
        # A counter has no event to wait on; polling it under a deadline is the documented habit.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_every_answer_has_a_request_id_echoed_in_errors(client: httpx.AsyncClient) -> None:
    """Success and error answers carry x-shipengine-requestid, and error bodies repeat it."""
    ok = await client.get(track("1Z1"), headers=AUTH)
    bad = await client.get(track("1ZNOTFOUND"), headers=AUTH)
    assert ok.status_code == 200 and len(ok.headers["x-shipengine-requestid"]) == 36
    assert bad.status_code == 404 and bad.json()["request_id"] == bad.headers["x-shipengine-requestid"]
    assert ok.headers["x-shipengine-requestid"] != bad.headers["x-shipengine-requestid"]


@pytest.mark.anyio
@pytest.mark.parametrize("headers", [{}, {"API-Key": "TEST_other"}, {"api-key": KEY.lower()}])
async def test_missing_or_wrong_key_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """A missing or wrong API-Key gets 401 with error_type security and error_code unauthorized."""
    response = await client.get(track("1Z1"), headers=headers)
    assert response.status_code == 401
    error = response.json()["errors"][0]
    assert (error["error_source"], error["error_type"], error["error_code"]) == (
        "shipengine",
        "security",
        "unauthorized",
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "status", "error_code", "field"),
    [
        ("/v1/tracking?carrier_code=ups", 400, "field_value_required", "tracking_number"),
        ("/v1/tracking?tracking_number=1Z1&carrier_code=", 400, "field_value_required", "carrier_code"),
        ("/v1/tracking?carrier_code=pigeon&tracking_number=1Z1", 400, "invalid_field_value", "carrier_code"),
        ("/v1/labels/se-123/track", 404, "invalid_identifier", "label_id"),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient, path: str, status: int, error_code: str, field: str
) -> None:
    """Bad queries get ShipEngine's validation body naming the field."""
    response = await client.get(path, headers=AUTH)
    assert response.status_code == status
    error = response.json()["errors"][0]
    assert (error["error_code"], error["field_name"]) == (error_code, field)


@pytest.mark.anyio
async def test_unknown_route_is_a_tolerance_case(client: httpx.AsyncClient) -> None:
    """An unknown route answers 404 with the off-enum not_found code and extra keys, like the SDK mock."""
    error = (await client.get("/v1/nothing", headers=AUTH)).json()["errors"][0]
    assert (error["error_code"], error["method"], error["path"]) == ("not_found", "GET", "/v1/nothing")


@pytest.mark.anyio
async def test_rate_limit_answers_429_with_retry_after(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    """Past the token bucket the sandbox answers 429 with an integer Retry-After and the ShipEngine body."""
    sandbox.configure(rate_limit="5/min")
    responses = [await client.get(track(f"1Z{i}"), headers=AUTH) for i in range(8)]
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 3
    limited = responses[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 12
    assert limited.json()["errors"][0]["error_code"] == "rate_limit_exceeded"
    assert "x-ratelimit-limit" not in limited.headers  # ShipEngine documents none
    assert sandbox.stats.by_status == Counter({200: 5, 429: 3})
    sandbox.configure(rate_limit=None)
    assert (await client.get(track("1Z9"), headers=AUTH)).status_code == 200


@pytest.mark.anyio
async def test_peak_in_flight_counts_concurrent_requests(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    """With latency, concurrent requests overlap and peak_in_flight equals their number."""
    sandbox.configure(latency_s=0.2)

    async def get(number: str) -> None:
        assert (await client.get(track(number), headers=AUTH)).status_code == 200

    started = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(get, f"1ZP{i}")
    assert anyio.current_time() - started < 1.0  # in parallel, not 40 x 0.2 s
    stats = sandbox.stats
    assert (stats.peak_in_flight, stats.in_flight, stats.total) == (40, 0, 40)
    assert len(stats.request_times) == 40 and stats.achieved_rate() > 40


@pytest.mark.anyio
async def test_reset_is_a_real_tcp_reset(sandbox: Sandbox) -> None:
    """RESET closes the socket with an RST, which a client sees as a broken stream rather than EOF."""
    request = f"GET {track('1ZRESET')} HTTP/1.1\r\nHost: x\r\nAPI-Key: {KEY}\r\n\r\n".encode()
    port = int(sandbox.base_url.rsplit(":", 1)[1])
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        with pytest.raises(anyio.BrokenResourceError) as caught:
            await stream.receive()
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    assert sandbox.stats.faults["reset"] == 1


@pytest.mark.anyio
async def test_hang_stays_silent_until_the_client_leaves(sandbox: Sandbox) -> None:
    """HANG never answers, stays in flight while the client waits, and ends when the client closes."""
    request = f"GET {track('1ZHANG')} HTTP/1.1\r\nHost: x\r\nAPI-Key: {KEY}\r\n\r\n".encode()
    port = int(sandbox.base_url.rsplit(":", 1)[1])
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        with anyio.move_on_after(0.3) as waited:
            await stream.receive()
        assert waited.cancelled_caught and sandbox.stats.in_flight == 1
    await wait_until(lambda: sandbox.stats.in_flight == 0)


@pytest.mark.anyio
async def test_global_fault_rates_are_seeded(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """A global fault rate injects that fault, and the same seed replays the same sequence."""
    sandbox.configure(faults={"500": 0.3, "badschema": 0.2}, seed=42)
    first = [(await client.get(track(f"1ZR{i}"), headers=AUTH)).status_code for i in range(60)]
    sandbox.configure(seed=42)
    second = [(await client.get(track(f"1ZR{i}"), headers=AUTH)).status_code for i in range(60)]
    assert first == second and 5 < first.count(500) < 35
    assert sandbox.stats.faults["badschema"] > 0
    sandbox.configure(faults={})
    assert {(await client.get(track(f"1ZR{i}"), headers=AUTH)).status_code for i in range(20)} == {200}


@pytest.mark.anyio
async def test_control_endpoints(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """The /_sandbox routes read stats, change knobs, move time and reset counters without a key."""
    await client.get(track("1ZLCNORMAL7"), headers=AUTH)
    stats = (await client.get("/_sandbox/stats", params={"by_number": 1})).json()
    assert (stats["total"], stats["by_status"], stats["by_number"]) == (1, {"200": 1}, {"1ZLCNORMAL7": 1})

    before = sandbox.now()
    now = (await client.post("/_sandbox/advance", params={"hours": 100})).json()["now"]
    assert (sandbox.now() - before).total_seconds() == 100 * 3600 and now.endswith("Z")
    assert (await client.get(track("1ZLCNORMAL7"), headers=AUTH)).json()["status_code"] == "DE"

    config = (await client.post("/_sandbox/config", json={"latency_s": "5ms", "rate_limit": "50/s"})).json()
    assert (config["latency_s"], config["rate_limit"], config["api_key_set"]) == (0.005, "50/s", True)
    bad = await client.post("/_sandbox/config", json={"faults": {"teapot": 1}})
    assert bad.status_code == 400 and "teapot" in bad.json()["error"]["message"]
    assert (await client.post("/_sandbox/advance", params={"hours": "soon"})).status_code == 400

    assert (await client.post("/_sandbox/reset")).json()["total"] == 0
    assert len((await client.get("/_sandbox/shipments", params={"n": 10})).json()) == 10
    assert sandbox.stats.total == 0  # control calls are never counted


@pytest.mark.anyio
async def test_time_scale_moves_lifecycles_in_real_time() -> None:
    """With a large time_scale a shipment is delivered within a second of real time, no advance() needed."""
    async with Sandbox(api_key=None, time_scale=500_000).serve() as sb, httpx.AsyncClient(base_url=sb.base_url) as c:
        statuses: list[str] = []

        def delivered() -> bool:
            return bool(statuses) and statuses[-1] == "DE"

        with anyio.fail_after(3):
            while not delivered():
                statuses.append((await c.get(track("1ZLCNORMAL8"))).json()["status_code"])
                await anyio.sleep(0.01)
    assert statuses[0] == "NY"


@pytest.mark.anyio
async def test_keep_alive_connections_serve_many_requests(sandbox: Sandbox) -> None:
    """One keep-alive connection carries many requests in a row."""
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=sandbox.base_url, limits=limits) as client:
        for i in range(50):
            assert (await client.get(track(f"1ZK{i}"), headers=AUTH)).status_code == 200
    assert sandbox.stats.by_status[200] == 50


@pytest.mark.anyio
async def test_errors_inside_serve_propagate_unwrapped() -> None:
    """An exception in the `serve()` block reaches the caller as itself, not inside an ExceptionGroup."""
    with pytest.raises(KeyError, match="boom"):
        async with Sandbox().serve():
            raise KeyError("boom")


@pytest.mark.anyio
async def test_command_line_runs_until_interrupted() -> None:
    """`python -m shiptrackd.sandbox` prints its base URL, serves with its flags and exits 0 on SIGINT."""
    command = [sys.executable, "-m", "shiptrackd.sandbox", "--port", "0", "--api-key", "any", "--rate-limit", "2/min"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    async with await anyio.open_process(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as process:
        assert process.stdout is not None
        with anyio.fail_after(10):
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        base_url = line.decode().split()[-1]
        async with httpx.AsyncClient(base_url=base_url) as client:
            statuses = [(await client.get(track("1Z1"))).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            assert await process.wait() == 0
