"""GET /metrics: Prometheus text on the control socket and on `metrics_listen`, read back by prometheus_client."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from alert_receivers import closed_port
from conftest import daemon_config
from prometheus_client.parser import text_string_to_metric_families

from shiptrackd.api.client import ApiClient
from shiptrackd.daemon import Daemon

pytestmark = pytest.mark.anyio


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, Any], name: str, suffix: str = "", **labels: str) -> float:
    """The value of the one sample of family *name* (sample name ending in *suffix*) carrying *labels*."""
    matches = [
        s.value
        for s in fams[name].samples
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (name, labels, fams[name].samples)
    return matches[0]


async def test_metrics_on_the_socket_parse_and_follow_prometheus_naming(running: Any) -> None:
    """After a sync, a health report and a test alert, every figure is there, named by Prometheus conventions."""
    client, daemon = running.client, running.daemon
    added = await client.add_shipments(
        [{"carrier_code": "ups", "tracking_number": f"1ZDELIVERED{i:03}"} for i in range(4)]
    )
    await client.sync()
    await daemon.engine.wait_idle()
    await client.health(fresh=True)
    await client.alert_test()
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(running.config.daemon.socket))) as http:
        response = await http.get("http://shiptrackd/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    fams = families(response.text)

    assert all(name.startswith("shiptrackd_") for name in fams)
    for fam in fams.values():
        if fam.type == "counter":
            assert all(s.name.endswith("_total") for s in fam.samples), fam.name
        if "duration" in fam.name or fam.name.endswith("_timestamp"):
            assert fam.name.endswith("_seconds") or fam.name.endswith("_timestamp_seconds"), fam.name
    ids = {a["id"] for a in added["added"]}
    labels = {v for fam in fams.values() for s in fam.samples for v in s.labels.values()}
    assert not labels & ids and not any(re.fullmatch(r"1Z\w+", v) for v in labels)  # no per-shipment labels

    assert value(fams, "shiptrackd_build_info") == 1
    assert value(fams, "shiptrackd_sync_runs", trigger="manual", outcome="ok") == 1
    assert value(fams, "shiptrackd_shipments", status="DE", active="true") == 4
    assert value(fams, "shiptrackd_provider_requests", code="200") >= 5  # 4 fetches + the connectivity probe
    duration = {s.labels.get("le"): s.value for s in fams["shiptrackd_provider_request_duration_seconds"].samples}
    assert duration["+Inf"] >= 5
    assert duration["+Inf"] == value(fams, "shiptrackd_provider_request_duration_seconds", "_count")
    assert value(fams, "shiptrackd_sync_duration_seconds", "_count") == 1
    assert value(fams, "shiptrackd_sync_shipments", result="updated") == 4
    assert value(fams, "shiptrackd_health_status") == 0
    assert value(fams, "shiptrackd_health_check_state", check="api_connectivity", state="ok") == 1
    assert value(fams, "shiptrackd_health_check_state", check="api_connectivity", state="critical") == 0
    assert value(fams, "shiptrackd_alerts_sent", channel="console", outcome="sent") == 1
    assert value(fams, "shiptrackd_loop_failures", loop="sync") == 0
    assert value(fams, "shiptrackd_last_successful_sync_timestamp_seconds") > 1.7e9
    assert "shiptrackd_provider_rate_limited" in fams and "shiptrackd_provider_retries" in fams


async def test_metrics_listen_serves_only_metrics_over_tcp(short_tmp: Path, sandbox: Any) -> None:
    """With [daemon] metrics_listen set, /metrics answers on that loopback address and the control API does not."""
    port = closed_port()
    config = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_DAEMON__METRICS_LISTEN=f"127.0.0.1:{port}")
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            scraped = await http.get("/metrics")
            assert scraped.status_code == 200 and "shiptrackd_build_info" in families(scraped.text)
            assert (await http.get("/v1/status")).status_code == 404
        async with ApiClient(config.daemon.socket) as client:
            assert (await client.status())["state"] == "running"
        daemon.stop()
