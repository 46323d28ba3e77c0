"""
The control API of a running daemon over its real Unix socket: every endpoint, the error shape
for every kind of bad input, the event stream, and a daemon that stays up whatever it is sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from conftest import Running, raw_http

from shiptrackd import __version__
from shiptrackd.api.client import ApiClient
from shiptrackd.api.requests import MAX_BODY_BYTES
from shiptrackd.wire.answers import LoopInfo, LoopTriggered, RunDetail, ShipmentRemoved

T = TypeVar("T")

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the daemon's socket, for requests the typed ApiClient would never send."""
    async with raw_http(running.config.daemon.socket) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """The response is an error of the documented shape; returns its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error"} and set(body["error"]) >= {"code", "message"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


async def poll(read: Callable[[], Awaitable[T]], done: Callable[[T], object], timeout_s: float = 5.0) -> T:
    """Call *read* until *done* holds for its value; fail after the deadline."""
    with anyio.fail_after(timeout_s):
        while True:
            value = await read()
            if done(value):
                return value
            await anyio.sleep(0.02)


async def wait_for_run(client: ApiClient, run_id: int) -> RunDetail:
    return await poll(lambda: client.run(run_id), lambda run: run.outcome != "running", 10)


async def health_loop(client: ApiClient) -> LoopInfo:
    return next(lp for lp in (await client.loops()).loops if lp.name == "health")


async def add(client: ApiClient, *numbers: str) -> list[str]:
    added = await client.add_shipments([{"carrier_code": "ups", "tracking_number": n} for n in numbers])
    return [a.id for a in added.added]


# --- status, loops, shipments, runs ----------------------------------------------------------


async def test_status_reports_version_pid_loops_and_store(running: Running) -> None:
    """GET /v1/status names the version, pid, uptime, every loop with its schedule, and the store's counts."""
    import os

    await add(running.client, "1ZINTRANSIT0101", "1ZINTRANSIT0102")
    status = await running.client.status()
    assert (status.version, status.pid, status.state) == (__version__, os.getpid(), "running")
    assert status.uptime_s >= 0
    loops = {lp.name: lp for lp in status.loops}
    assert {"sync", "force", "health", "alerts"} <= set(loops)
    assert loops["sync"].schedule == "0 0 1 1 *" and loops["sync"].next_run_at
    assert status.store.shipments == 2 and status.store.active == 2
    assert status.store.due_now == 2 and status.store.size_bytes > 0
    assert status.sync is None and status.rate_limit_paused_until is None


async def test_loops_can_be_paused_resumed_and_triggered(running: Running) -> None:
    """POST /v1/loops/{name}/pause|resume|trigger steer a loop; a triggered loop runs its body once."""
    client = running.client
    paused = await client.loop_action("health", "pause")
    assert paused.paused
    # The loop re-plans on its own task: no next run while paused.
    loop = await poll(lambda: health_loop(client), lambda lp: lp.next_run_at is None)
    assert loop.paused
    resumed = await client.loop_action("health", "resume")
    assert not resumed.paused
    await poll(lambda: health_loop(client), lambda lp: lp.next_run_at is not None)
    triggered = await client.loop_action("health", "trigger")
    assert isinstance(triggered, LoopTriggered) and triggered.triggered and not triggered.joined
    loop = await poll(lambda: health_loop(client), lambda lp: lp.runs >= 1)
    assert loop.last_run_at and loop.failures_total == 0


async def test_shipments_are_added_listed_by_page_shown_and_removed(running: Running, http: httpx.AsyncClient) -> None:
    """Shipments: add one (201) or a duplicate (409), page through them by cursor, show one, delete it."""
    client = running.client
    single = await http.post("/v1/shipments", json={"carrier_code": "fedex", "tracking_number": "FX-0001"})
    assert single.status_code == 201 and single.json()["added"][0]["tracking_number"] == "FX-0001"
    duplicate = await http.post("/v1/shipments", json={"carrier_code": "fedex", "tracking_number": "FX-0001"})
    assert "already tracked as" in assert_error(duplicate, 409, "duplicate")
    many = await client.add_shipments(
        [
            {"carrier_code": "ups", "tracking_number": f"1ZINTRANSIT02{i:02}", "reference": f"order {i}"}
            for i in range(5)
        ]
        + [{"carrier_code": "fedex", "tracking_number": "FX-0001"}]
    )
    assert len(many.added) == 5 and [d.index for d in many.duplicates] == [5]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await client.shipments(limit=2, cursor=cursor)
        assert len(page.shipments) <= 2
        seen += [s.id for s in page.shipments]
        if not (cursor := page.next_cursor):
            break
    assert len(seen) == len(set(seen)) == 6 and seen == sorted(seen)
    assert len((await client.shipments(carrier="fedex")).shipments) == 1
    assert len((await client.shipments(status="none")).shipments) == 6
    assert (await client.shipments(search="1ZINTRANSIT0203")).shipments[0].reference == "order 3"

    shown = await client.shipment(seen[0])
    assert shown.id == seen[0] and shown.events == []
    assert (await client.remove_shipment(seen[0])) == ShipmentRemoved(removed=seen[0])
    assert_error(await http.get(f"/v1/shipments/{seen[0]}"), 404, "not_found")
    assert_error(await http.delete(f"/v1/shipments/{seen[0]}"), 404, "not_found")
    assert (await client.status()).store.shipments == 5


async def test_runs_stats_why_and_retrack_after_a_sync(running: Running) -> None:
    """After a sync, runs, run, stats and why describe it; retrack puts a terminal shipment back into the schedule."""
    client = running.client
    delivered, moving = await add(client, "1ZDELIVERED0301", "1ZINTRANSIT0301")
    run = await wait_for_run(client, (await client.sync()).run_id)
    await wait_for_run(client, (await client.sync(shipments=[delivered])).run_id)

    runs = (await client.runs()).runs
    assert [r.id for r in runs][-1] == run.id and all(r.outcome == "ok" for r in runs)
    stats = await client.stats()
    assert stats.api.requests == 3 and stats.runs_24h.runs == 2
    assert stats.shipments.by_status == {"DE": 1, "IT": 1}
    assert stats.forecast.calls_per_hour > 0

    why = await client.why(delivered)
    assert why.state == "terminal" and "retrack" in " ".join(why.explanation)
    scheduled = await client.why(moving)
    assert scheduled.state == "scheduled" and "in transit" in scheduled.reason
    back = await client.retrack(delivered)
    assert back.state == "due" and back.reason == "retrack"
    assert (await client.shipment(delivered)).active


# --- bad input -------------------------------------------------------------------------------

BAD_REQUESTS = [
    ("POST", "/v1/shipments", b'{"carrier_code": "ups", ', 400, "invalid_request"),
    ("POST", "/v1/shipments", b"\xff\xfe not utf-8", 400, "invalid_request"),
    ("POST", "/v1/shipments", b'"just a string"', 400, "invalid_request"),
    ("POST", "/v1/shipments", b"[]", 400, "invalid_request"),
    ("POST", "/v1/shipments", b'{"carrier_code": "ups", "tracking_number": 42}', 400, "invalid_request"),
    ("POST", "/v1/shipments", b'{"carrier_code": "ups", "tracking_number": "a\\nb"}', 400, "invalid_request"),
    ("POST", "/v1/sync", b'{"force": "yes"}', 400, "invalid_request"),
    ("POST", "/v1/sync", b'{"shipments": [1, 2]}', 400, "invalid_request"),
    ("POST", "/v1/sync", b'{"shipments": "ship_1"}', 400, "invalid_request"),
    ("POST", "/v1/sync", b'{"shipments": []}', 400, "invalid_request"),
    ("POST", "/v1/sync", b"[true]", 400, "invalid_request"),
    ("POST", "/v1/sync", b"{nope}", 400, "invalid_request"),
    ("GET", "/v1/shipments?limit=abc", b"", 400, "invalid_request"),
    ("GET", "/v1/shipments?limit=0", b"", 400, "invalid_request"),
    ("GET", "/v1/shipments?active=maybe", b"", 400, "invalid_request"),
    ("GET", "/v1/runs?limit=many", b"", 400, "invalid_request"),
    ("GET", "/v1/events?since=yesterday", b"", 400, "invalid_request"),
    ("GET", "/v1/events?heartbeat=soon", b"", 400, "invalid_request"),
    ("GET", "/v1/runs/999", b"", 404, "not_found"),
    ("GET", "/v1/runs/abc", b"", 404, "not_found"),
    ("GET", "/v1/shipments/ship_nope", b"", 404, "not_found"),
    ("GET", "/v1/shipments/ship_nope/why", b"", 404, "not_found"),
    ("POST", "/v1/shipments/ship_nope/retrack", b"", 404, "not_found"),
    ("POST", "/v1/loops/nope/pause", b"", 404, "not_found"),
    ("POST", "/v1/loops/sync/explode", b"", 400, "invalid_request"),
    ("POST", "/v1/reload", b"", 400, "config_invalid"),  # this in-process daemon has no file to re-read
    ("GET", "/v1/nowhere", b"", 404, "not_found"),
    ("GET", "/", b"", 404, "not_found"),
    ("GET", "/v2/status", b"", 404, "not_found"),
    ("DELETE", "/v1/status", b"", 405, "method_not_allowed"),
    ("PUT", "/v1/shipments", b"{}", 405, "method_not_allowed"),
    ("GET", "/v1/sync", b"", 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_REQUESTS)
async def test_bad_requests_get_a_4xx_in_the_error_shape(
    running: Running, http: httpx.AsyncClient, method: str, path: str, body: bytes, status: int, code: str
) -> None:
    """Malformed JSON, wrong types, unknown ids, paths and methods get a fitting 4xx in the documented shape."""
    response = await http.request(method, path, content=body, headers={"content-type": "application/json"})
    assert_error(response, status, code)
    assert (await running.client.status()).state == "running"


async def test_wrong_types_name_the_field(http: httpx.AsyncClient) -> None:
    """A field of the wrong type is rejected with a message naming that field."""
    message = assert_error(await http.post("/v1/sync", json={"dry_run": 1}), 400, "invalid_request")
    assert "dry_run" in message
    message = assert_error(await http.post("/v1/shipments", json={"carrier_code": "ups"}), 400, "invalid_request")
    assert "tracking_number" in message


async def test_oversize_bodies_are_refused_with_413(running: Running, http: httpx.AsyncClient) -> None:
    """A body over 8 MiB is refused with 413, whether it declares its length or streams it chunked."""
    big = b"[" + b" " * MAX_BODY_BYTES + b"]"
    declared = await http.post("/v1/shipments", content=big, headers={"content-type": "application/json"})
    assert "larger than" in assert_error(declared, 413, "body_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(9):
            yield b" " * (1024 * 1024)

    streamed = await http.post("/v1/shipments", content=chunks())
    assert_error(streamed, 413, "body_too_large")
    assert (await running.client.status()).store.shipments == 0


@pytest.mark.parametrize("header", ["Origin", "Referer"])
async def test_requests_from_web_pages_are_refused(running: Running, http: httpx.AsyncClient, header: str) -> None:
    """A request carrying Origin or Referer (a browser page) gets 403 and changes nothing."""
    response = await http.post(
        "/v1/shipments",
        json={"carrier_code": "ups", "tracking_number": "1ZCSRF"},
        headers={header: "http://evil.example"},
    )
    assert_error(response, 403, "forbidden")
    assert (await running.client.status()).store.shipments == 0


async def test_half_sent_and_garbage_requests_leave_the_daemon_answering(running: Running) -> None:
    """Partial headers, a short body, an idle connection and a garbage request line never disturb the daemon."""
    path = running.config.daemon.socket
    idle = await anyio.connect_unix(path)  # says nothing and stays open throughout

    partial = await anyio.connect_unix(path)
    await partial.send(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Half: ")
    await partial.aclose()

    short_body = await anyio.connect_unix(path)
    await short_body.send(
        b"POST /v1/shipments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"carrier_c'
    )
    await short_body.aclose()

    garbage = await anyio.connect_unix(path)
    await garbage.send(b"\x16\x03\x01 definitely not HTTP\r\n\r\n")
    with anyio.fail_after(5):
        answer = await garbage.receive()
    assert answer.startswith(b"HTTP/1.1 4")
    await garbage.aclose()

    status = await running.client.status()
    assert status.state == "running" and status.store.shipments == 0
    await idle.aclose()


# --- events, openapi, curl ---------------------------------------------------------------------


async def read_events(
    http: httpx.AsyncClient, params: dict[str, int], count: int
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """The first *count* lines of /v1/events, parsed as the JSON they are (the raw shape is under test)."""
    lines: list[dict[str, Any]] = []
    with anyio.fail_after(5):
        async with http.stream("GET", "/v1/events", params=params) as response:
            async for line in response.aiter_lines():
                if line.strip():
                    lines.append(json.loads(line))
                if len(lines) == count:
                    break
    return response, lines


async def test_event_stream_is_ndjson_with_increasing_seq_and_replays_since(
    running: Running, http: httpx.AsyncClient
) -> None:
    """/v1/events is NDJSON with increasing seq; `?since=N` replays exactly the events after N."""
    client = running.client
    await add(client, "1ZINTRANSIT0401", "1ZEXCEPTION0401")
    run = await wait_for_run(client, (await client.sync()).run_id)

    response, events = await read_events(http, {"since": 0}, 4)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] == 1
    assert all({"seq", "type", "at"} <= set(e) for e in events)
    _, everything = await read_events(http, {"since": 0}, running.daemon.bus.seq)
    types = [e["type"] for e in everything]
    assert "shipments.added" in types and "sync.started" in types and "sync.finished" in types
    changed = [e for e in everything if e["type"] == "shipment.status_changed"]
    assert {e["new"] for e in changed} == {"IT", "EX"} and all(e["run_id"] == run.id for e in changed)

    middle = everything[2]["seq"]
    _, replay = await read_events(http, {"since": middle}, 2)
    assert [e["seq"] for e in replay] == [middle + 1, middle + 2]
    assert replay == everything[3:5]


async def test_event_stream_sends_live_events_and_heartbeats_when_idle(
    running: Running, http: httpx.AsyncClient
) -> None:
    """A follower receives new events as they happen and a heartbeat line whenever nothing happens."""
    client = running.client
    with anyio.fail_after(5):
        async with http.stream("GET", "/v1/events", params={"heartbeat": 0.2}) as response:
            lines = response.aiter_lines()
            # Start-up events (loops planning their first run) may still be arriving: wait for a heartbeat
            # that has seen every event published so far.
            while True:
                first = json.loads(await anext(lines))
                if first["type"] == "heartbeat" and first["seq"] == running.daemon.bus.seq:
                    break
            await add(client, "1ZINTRANSIT0501")
            live = json.loads(await anext(lines))
            assert live["type"] == "shipments.added" and live["count"] == 1 and live["seq"] > first["seq"]
            beat = json.loads(await anext(lines))
            assert beat["type"] == "heartbeat" and beat["seq"] == live["seq"]


async def test_openapi_lists_every_v1_path(http: httpx.AsyncClient) -> None:
    """GET /v1/openapi.json is an OpenAPI document listing every /v1 route with its methods."""
    spec = (await http.get("/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.") and spec["info"]["version"] == __version__
    paths = spec["paths"]
    assert all(p.startswith("/v1/") for p in paths)
    assert {"get"} <= set(paths["/v1/status"]) and {"get", "post"} <= set(paths["/v1/shipments"])
    assert {"delete", "get"} <= set(paths["/v1/shipments/{id}"])
    for path in ("/v1/loops/{name}/{action}", "/v1/sync", "/v1/runs/{id}", "/v1/events", "/v1/reload"):
        assert path in paths, path


async def test_curl_over_the_unix_socket_works(running: Running) -> None:
    """`curl --unix-socket PATH http://localhost/v1/status` gets the status; errors keep their shape for curl too."""
    socket_path = str(running.config.daemon.socket)
    ok = await anyio.run_process(["curl", "-sS", "--unix-socket", socket_path, "http://localhost/v1/status"])
    assert json.loads(ok.stdout)["state"] == "running"
    missing = await anyio.run_process(
        ["curl", "-sS", "-w", "\n%{http_code}", "--unix-socket", socket_path, "http://localhost/v1/nope"]
    )
    body, code = missing.stdout.decode().rsplit("\n", 1)
    assert code == "404" and json.loads(body)["error"]["code"] == "not_found"


# --- supervision ---------------------------------------------------------------------------------


async def test_a_crashing_loop_is_counted_and_restarted_while_the_daemon_keeps_serving(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop whose body raises is counted and runs again on the next trigger; the daemon keeps answering."""
    client = running.client
    loop = running.daemon.loops["health"]

    async def boom() -> str:
        raise RuntimeError("health body exploded")

    async def wait_runs(n: int) -> LoopInfo:
        """Wait until the n-th run is over and the loop has planned its next one (it is alive, not dead)."""
        return await poll(lambda: health_loop(client), lambda lp: lp.runs >= n and lp.next_run_at is not None)

    monkeypatch.setattr(loop, "body", boom)
    await client.loop_action("health", "trigger")
    first = await wait_runs(1)
    assert first.failures_in_a_row == 1 and first.failures_total == 1
    assert first.last_outcome == "failed" and "health body exploded" in first.last_error
    assert (await client.status()).state == "running"

    await client.loop_action("health", "trigger")
    second = await wait_runs(2)
    assert second.failures_in_a_row == 2

    monkeypatch.undo()
    await client.loop_action("health", "trigger")
    healed = await wait_runs(3)
    assert healed.failures_in_a_row == 0 and healed.failures_total == 2 and healed.last_error == ""
    assert (await client.status()).state == "running"
