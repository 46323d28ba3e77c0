"""`shiptrackctl endpoints` and `deliveries` against a real daemon and a real receiver (issue 11, item 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import quiet_daemon_env, raw_http
from webhook_receivers import Received, Receiver, outbound_toml

from shiptrackd.config import load
from shiptrackd.ctl.main import main
from shiptrackd.daemon import Daemon
from shiptrackd.models import NewShipment
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio


async def test_endpoints_and_deliveries_commands(
    short_tmp: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    status = 500

    def answer(r: Received) -> tuple[int, dict[str, str]]:
        return (status, {})

    async with Receiver(answer=answer).serve() as rx, anyio.create_task_group() as tg:
        path = short_tmp / "shiptrackd.toml"
        path.write_text(outbound_toml("shop", rx.url, retry_schedule=["0s"], events=["shipment.added"]))
        config = load(path, quiet_daemon_env(short_tmp, sandbox.base_url))
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        sock = str(config.daemon.socket)

        async def ctl_text(*argv: str) -> tuple[int, str]:
            code = await anyio.to_thread.run_sync(main, ["--socket", sock, "--json", *argv])
            return code, capsys.readouterr().out

        async def ctl(*argv: str) -> tuple[int, Any]:
            code, out = await ctl_text(*argv)
            return code, json.loads(out) if out.strip() else None

        async def daemon_says(url: str) -> str:
            """The daemon's own answer, printed as --json prints a document: what ctl must show unchanged."""
            async with raw_http(config.daemon.socket) as http:
                doc = (await http.get(url)).json()
            return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

        async def deliveries(state: str) -> list[dict[str, Any]]:
            with anyio.fail_after(10):
                while True:
                    code, doc = await ctl("deliveries", "list", "--state", state)
                    found: list[dict[str, Any]] = doc["deliveries"]
                    if found:
                        return found
                    await anyio.sleep(0.05)

        assert daemon.store is not None
        await daemon.store.shipments.add_many([NewShipment("ups", "1ZINTRANSIT0001")], daemon.clock.now())
        [dead] = await deliveries("dead")  # the one-attempt schedule: the 500 killed it
        assert dead["attempts"] == 1 and dead["last_status"] == 500
        code, doc = await ctl("endpoints", "list")
        assert code == 0 and doc["endpoints"][0]["name"] == "shop" and doc["endpoints"][0]["dead"] == 1
        code, shown = await ctl("deliveries", "show", str(dead["id"]))
        assert [a["http_status"] for a in shown["attempt_log"]] == [500]
        # --json is public contract: ctl's typed answers print exactly the document the daemon sent
        for argv, url in [
            (("endpoints", "list"), "/v1/endpoints"),
            (("deliveries", "list"), "/v1/deliveries?limit=50"),
            (("deliveries", "show", str(dead["id"])), f"/v1/deliveries/{dead['id']}"),
        ]:
            assert await ctl_text(*argv) == (0, await daemon_says(url)), argv
        # A reason as the dispatcher's disable_after writes it, longer than the list's column: the table
        # cuts it and says so, --json carries it whole (there is no per-endpoint view to show it).
        reason = f"failing since {daemon.clock.now().isoformat()}: 1 of 2 targets failed: json://desk:****@h/x"
        await daemon.store.outbox.disable("shop", reason, daemon.clock.now())
        code = await anyio.to_thread.run_sync(main, ["--socket", sock, "endpoints", "list"])
        table = capsys.readouterr().out
        assert code == 0 and reason not in table and reason[:59] + "…" in table
        assert table.splitlines()[-1] == "(LAST ERROR cut at 60 characters: --json or --wide shows it whole)"
        code, doc = await ctl("endpoints", "list")
        assert doc["endpoints"][0]["disabled_reason"] == reason
        code, enabled = await ctl("endpoints", "enable", "shop")
        assert code == 0 and enabled["was_disabled"]
        code, tested = await ctl("endpoints", "test", "shop")
        assert code == 1 and tested["status"] == 500  # the receiver still fails: the exit code says so
        status = 200
        code, tested = await ctl("endpoints", "test", "shop")
        assert code == 0 and tested["ok"] and rx.requests[-1].payload["type"] == "ping"
        code, retried = await ctl("deliveries", "retry", "--dead")
        assert code == 0 and retried["retried"] == 1
        [delivered] = await deliveries("delivered")
        assert delivered["message_id"] == dead["message_id"]  # the same webhook-id as the first try
        code, replayed = await ctl("deliveries", "replay", "--endpoint", "shop", "--since", "1h")
        assert code == 0 and replayed["replayed"] == 1
        got = await rx.wait_for(3)  # the ping, the retried delivery, the replay (a new id, the same body)
        assert got[-1].body == got[-2].body and got[-1].headers["webhook-id"] != got[-2].headers["webhook-id"]
        code, _ = await ctl("endpoints", "test", "nope")
        assert code == 1
        transport = httpx.AsyncHTTPTransport(uds=sock)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            metrics = (await http.get("/metrics")).text
        daemon.stop()
    assert 'shiptrackd_outbound_attempts_total{outcome="failed"} 1.0' in metrics
    assert 'shiptrackd_outbound_attempts_total{outcome="delivered"}' in metrics
    assert 'shiptrackd_outbound_dead{endpoint="shop"} 0.0' in metrics
