"""
The application's door (issue 11, item 6): the /v1 API on TCP behind bearer tokens with scopes.

A real daemon with `[api] listen` on 127.0.0.1; forged, missing and too-small tokens get 401/403
in the JSON error shape (never a 500), with a rate-limited log line; the socket stays open as before.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import quiet_daemon_env
from webhook_receivers import Receiver, outbound_toml

from shiptrackd.api.client import ApiClient
from shiptrackd.config import load
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio

READ, WRITE, ADMIN = "read-token-0123456789abcdef", "write-token-0123456789abcdef", "admin-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def door_toml(port: int, tmp: Path) -> str:
    (tmp / "write.token").write_text(WRITE + "\n")
    admin_hash = hashlib.sha256(ADMIN.encode()).hexdigest()
    return (
        f'[api]\nlisten = "127.0.0.1:{port}"\n'
        f'[[api.tokens]]\nname = "dash"\nscope = "read"\ntoken = "{READ}"\n'
        f'[[api.tokens]]\nname = "shop"\nscope = "write"\ntoken_file = "write.token"\n'
        f'[[api.tokens]]\nname = "ops"\nscope = "admin"\ntoken_sha256 = "{admin_hash}"\n'
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_tokens_and_scopes_guard_the_door(short_tmp: Path, sandbox: Sandbox, logs: list[str]) -> None:
    port = free_port()
    async with Receiver().serve() as rx, anyio.create_task_group() as tg:
        path = short_tmp / "shiptrackd.toml"
        path.write_text(door_toml(port, short_tmp) + outbound_toml("shop", rx.url, events=["shipment.added"]))
        config = load(path, quiet_daemon_env(short_tmp, sandbox.base_url))
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            answers: list[httpx.Response] = []

            async def call(method: str, url: str, token: str | None = None, **kw: Any) -> httpx.Response:
                headers = {**kw.pop("headers", {}), **(bearer(token) if token else {})}
                response = await http.request(method, url, headers=headers, **kw)
                answers.append(response)
                return response

            # No token, a forged one, another scheme, an unknown path: 401, JSON, a challenge.
            for response in (
                await call("GET", "/v1/status"),
                await call("GET", "/v1/status", "forged-token-0123456789abcdef"),
                await call("GET", "/v1/status", headers={"authorization": f"Basic {READ}"}),
                await call("GET", "/v1/nothing-here"),
                await call("GET", "/v1/status", headers={"authorization": "Bearer"}),
            ):
                assert response.status_code == 401
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.headers["www-authenticate"].startswith("Bearer")
            # read: status and shipments; not a write, not an admin action.
            assert (await call("GET", "/v1/status", READ)).status_code == 200
            assert (await call("GET", "/v1/shipments", READ)).status_code == 200
            body = {"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0001"}
            denied = await call("POST", "/v1/shipments", READ, json=body)
            assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
            assert "needs write" in denied.json()["error"]["message"]
            # write: add (the application's way in: its webhook follows), a targeted sync; not a full one.
            added = await call("POST", "/v1/shipments", WRITE, json=body)
            assert added.status_code in (200, 201), added.text
            sid = added.json()["added"][0]["id"]
            [hook] = await rx.wait_for(1)
            assert hook.payload["data"]["shipment_id"] == sid
            assert (await call("POST", "/v1/sync", WRITE, json={"shipments": [sid]})).status_code in (200, 202)
            assert (await call("POST", "/v1/sync", WRITE, json={"force": True})).status_code == 403
            assert (await call("POST", "/v1/sync", WRITE, json={})).status_code == 403
            assert (await call("POST", "/v1/loops/health/pause", WRITE)).status_code == 403
            assert (await call("GET", "/v1/endpoints", WRITE)).status_code == 403
            # admin (known to the daemon only by its hash): everything the socket can do.
            assert (await call("POST", "/v1/loops/health/pause", ADMIN)).status_code == 200
            assert (await call("GET", "/v1/endpoints", ADMIN)).json()["endpoints"][0]["name"] == "shop"
            # The browser refusal stays, even with a good token; the probes need none.
            assert (
                await call("GET", "/v1/status", ADMIN, headers={"origin": "https://evil.example"})
            ).status_code == 403
            assert (await call("GET", "/livez")).status_code == 200
            for _ in range(20):  # a scanner: answered every time, logged once a minute
                await call("GET", "/v1/status", "forged-token-0123456789abcdef")
        async with ApiClient(config.daemon.socket) as client:  # the socket: no token, as before
            assert (await client.status()).state == "running"
        daemon.stop()
    assert all(r.status_code < 500 for r in answers)
    assert all(r.headers["content-type"].startswith("application/json") for r in answers)
    refused = [line for line in logs if "api door refused" in line]
    assert 1 <= len(refused) <= 3, refused
    text = "\n".join(logs)
    assert READ not in text and WRITE not in text and ADMIN not in text
