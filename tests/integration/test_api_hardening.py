"""
The control API under hostile input, over the daemon's real Unix socket: huge ids and numbers,
pathological JSON, wrong media types, raw HTTP garbage and clients that hang up. Every answer is a
4xx in the JSON error shape; an internal error that still slips through is logged once per kind.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from conftest import Running

from shiptrackd.api.server import InternalErrors, LogLimiter

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client on the daemon's socket."""
    transport = httpx.AsyncHTTPTransport(uds=str(running.config.daemon.socket))
    async with httpx.AsyncClient(transport=transport, base_url="http://shiptrackd", timeout=10) as client:
        yield client


def assert_error(response: httpx.Response, status: int) -> str:
    """*response* has *status* and the JSON error shape; returns its code."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    return str(error["code"])


HUGE = "9" * 30
HOSTILE = [
    ("GET", f"/v1/runs/{HUGE}", None, None, 404),
    ("GET", f"/v1/runs/{2**63}", None, None, 404),
    ("DELETE", f"/v1/silences/{HUGE}", None, None, 404),
    ("DELETE", f"/v1/silences/{2**63}", None, None, 404),
    ("GET", f"/v1/runs?limit={HUGE}", None, None, 400),
    ("GET", f"/v1/events?since={HUGE}", None, None, 400),
    ("GET", f"/v1/alerts?limit={HUGE}", None, None, 400),
    ("GET", f"/v1/health?alert_threshold={HUGE}", None, None, 400),
    ("POST", "/v1/silences", {"check": "*", "duration": 1e308}, None, 400),
    ("POST", "/v1/silences", {"check": "*", "duration": "99999999999d"}, None, 400),
    ("POST", "/v1/silences", {"check": "*", "duration": float("inf")}, None, 400),
    ("POST", "/v1/silences", None, b'{"check": "*", "duration": ' + b"9" * 400 + b"}", 400),
    ("POST", "/v1/silences", None, b'{"check": "*", "duration": 1e999}', 400),
    ("POST", "/v1/sync", None, b'{"force": ' + b"1" * 5000 + b"}", 400),
    ("POST", "/v1/shipments", None, b"[" * 100_000 + b"]" * 100_000, 400),
    ("POST", "/v1/shipments", None, b'{"tracking_number": ' + b"[" * 900 + b"]" * 900 + b"}", 400),
    ("POST", "/v1/shipments", None, b'{"shipments": "\xff\xfe"}', 400),
    ("POST", "/v1/silences", None, b'{"check": "*", "duration": "2h", "comment": "\\ud800"}', 400),
    ("POST", "/v1/sync", None, b'{"shipments": ["\\udfff"]}', 400),
    ("POST", "/v1/sync", None, b'{"\\ud800": 1}', 400),
    ("POST", "/v1/sync", {"shipments": [f"ship_{i:027x}" for i in range(10_001)], "dry_run": True}, None, 400),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "status"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))]
)
async def test_hostile_input_gets_a_4xx_in_the_error_shape_and_no_traceback(
    running: Running, http: httpx.AsyncClient, logs: list[str], method: str, path: str, body: Any, raw: Any, status: int
) -> None:
    """Huge ids and numbers, endless durations, long integers and deep nesting are a 4xx, never a logged 500."""
    content = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
    response = await http.request(method, path, content=content, headers={"content-type": "application/json"})
    assert_error(response, status)
    assert not [line for line in logs if "Traceback" in line or "internal error" in line]
    assert (await running.client.status()).state == "running"


@pytest.mark.parametrize(
    ("query", "name"),
    [("cursor=nope", "cursor"), ("cursor=ship_zz", "cursor"), ("status=XX", "status"), ("limit=1e3", "limit")],
)
async def test_a_bad_listing_parameter_is_a_400_naming_it(http: httpx.AsyncClient, query: str, name: str) -> None:
    """An invalid cursor or filter is refused naming the parameter, instead of silently restarting at page 1."""
    response = await http.get(f"/v1/shipments?{query}")
    assert assert_error(response, 400) == "invalid_request"
    assert name in response.json()["error"]["message"]


async def test_a_cursor_from_a_page_still_walks_the_listing(running: Running, http: httpx.AsyncClient) -> None:
    """A next_cursor the daemon gave out is accepted and leads to the next page."""
    await running.client.add_shipments([{"carrier_code": "ups", "tracking_number": f"1ZCUR{i}"} for i in range(3)])
    first = (await http.get("/v1/shipments?limit=2")).json()
    second = await http.get("/v1/shipments", params={"limit": 2, "cursor": first["next_cursor"]})
    assert second.status_code == 200 and len(second.json()["shipments"]) == 1


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]
)
async def test_a_body_that_is_not_json_is_a_415(running: Running, http: httpx.AsyncClient, content_type: str) -> None:
    """A body sent with a non-JSON Content-Type is refused with 415 and adds nothing."""
    body = b'{"carrier_code": "ups", "tracking_number": "1Z415"}'
    response = await http.post("/v1/shipments", content=body, headers={"content-type": content_type})
    assert assert_error(response, 415) == "unsupported_media_type"
    assert (await running.client.status()).store.shipments == 0


async def test_json_media_types_and_no_content_type_are_read_as_json(http: httpx.AsyncClient) -> None:
    """application/json with a charset, a +json type, and a body without Content-Type (curl -d) are all JSON."""
    for i, headers in enumerate(
        [{"content-type": "application/json; charset=utf-8"}, {"content-type": "application/vnd.x+json"}, {}]
    ):
        body = json.dumps({"carrier_code": "ups", "tracking_number": f"1ZJSON{i}"}).encode()
        response = await http.post("/v1/shipments", content=body, headers=headers)
        assert response.status_code == 201, response.text


async def test_a_wrong_method_is_a_405_that_says_which_methods_work(http: httpx.AsyncClient) -> None:
    """A 405 keeps the JSON error shape and carries Allow, as HTTP clients and schemathesis expect."""
    response = await http.delete("/v1/status")
    assert assert_error(response, 405) == "method_not_allowed"
    assert "GET" in response.headers["allow"]


async def raw_exchange(running: Running, request: bytes, timeout_s: float = 5.0) -> bytes:
    """Send *request* bytes on a fresh socket connection; everything the daemon answers until it closes."""
    stream = await anyio.connect_unix(running.config.daemon.socket)
    answer = b""
    async with stream:
        await stream.send(request)
        with anyio.fail_after(timeout_s):
            while True:
                try:
                    answer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"\x16\x03\x01 definitely not HTTP\r\n\r\n",
        b"GET /v1/status HTTP/1.1\r\n\r\n",
    ],
    ids=["header-without-colon", "bad-length", "tls-hello", "no-host"],
)
async def test_malformed_http_gets_a_400_with_a_json_body(running: Running, request_bytes: bytes) -> None:
    """Requests the HTTP parser rejects get a 400 in the JSON error shape, not an empty body."""
    answer = await raw_exchange(running, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 4"), answer[:200]
    assert b"application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and error["message"]


async def test_a_client_that_hangs_up_mid_body_leaves_no_traceback(running: Running, logs: list[str]) -> None:
    """A client that disconnects halfway through its body is dropped quietly and the daemon keeps answering."""
    for _ in range(3):
        stream = await anyio.connect_unix(running.config.daemon.socket)
        await stream.send(
            b"POST /v1/shipments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n" + b'[{"carrier_code": "ups", ' * 100
        )
        await stream.aclose()
    assert (await running.client.status()).state == "running"
    assert not [line for line in logs if "Traceback" in line or "ERROR" in line]


async def test_an_import_cut_off_mid_body_adds_nothing_and_the_whole_one_adds_all(running: Running) -> None:
    """Issue 9 item 10: an import is one request and one transaction; a client killed mid-file adds nothing."""
    records = [{"carrier_code": "ups", "tracking_number": f"1ZCUT{n:010d}"} for n in range(2000)]
    body = json.dumps({"shipments": records}).encode()
    head = (
        b"POST /v1/shipments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    stream = await anyio.connect_unix(running.config.daemon.socket)
    await stream.send(head + body[: len(body) * 9 // 10])  # 1,800 whole records sent, then the client dies
    await stream.aclose()
    assert (await running.client.shipments(limit=1)).shipments == []

    added = await running.client.add_shipments(records)  # the same import, whole: every record lands
    assert len(added.added) == 2000 and len((await running.client.shipments(limit=1000)).shipments) == 1000


async def test_an_internal_error_is_a_json_500_logged_once_a_minute_per_kind(
    running: Running, http: httpx.AsyncClient, logs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug behind a route answers 500 in the error shape; ten of them log one traceback, not twenty."""

    async def broken(self: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(type(running.daemon.service), "stats", broken)  # a fault no real input reaches
    for _ in range(10):
        assert assert_error(await http.get("/v1/stats"), 500) == "internal"
    tracebacks = [line for line in logs if "Traceback" in line]
    reports = [line for line in logs if "control API internal error" in line]
    assert len(tracebacks) == 1 and len(reports) == 1, logs
    assert "ZeroDivisionError in GET stats" in reports[0]


def test_the_log_limiter_reports_once_per_period_and_counts_the_rest() -> None:
    """LogLimiter lets one report per kind through per period and says how many it held back."""
    limiter = LogLimiter(every_s=60)
    assert limiter.allow("a") == 0
    assert [limiter.allow("a") for _ in range(3)] == [None, None, None]
    assert limiter.allow("b") == 0
    limiter.every_s = 0
    assert limiter.allow("a") == 3
    assert InternalErrors(None).limiter.every_s == 60
