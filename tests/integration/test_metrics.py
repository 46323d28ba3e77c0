"""GET /metrics: Prometheus text on the control socket and on `metrics_listen`, read back by prometheus_client."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import httpx
import pytest
from alert_receivers import closed_port
from conftest import Running, daemon_config
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from shiptrackd.api.client import ApiClient
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio


def families(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, Metric], name: str, suffix: str = "", **labels: str) -> float:
    """The value of the one sample of family *name* (sample name ending in *suffix*) carrying *labels*."""
    matches = [
        s.value
        for s in fams[name].samples
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (name, labels, fams[name].samples)
    return matches[0]


async def test_metrics_on_the_socket_parse_and_follow_prometheus_naming(running: Running) -> None:
    """After a sync, a health report and a test alert, every figure is there, named by Prometheus conventions."""
    client, daemon = running.client, running.daemon
    added = await client.add_shipments(
        [{"carrier_code": "ups", "tracking_number": f"1ZDELIVERED{i:03}"} for i in range(4)]
    )
    await client.sync()
    assert daemon.engine is not None
    await daemon.engine.wait_idle()
    await client.health(fresh=True)
    await client.alert_test()
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(running.config.daemon.socket))) as http:
        response = await http.get("http://shiptrackd/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    fams = families(response.text)

    # Ours carry the prefix; prometheus_client's process collector uses the standard process_* names.
    assert all(name.startswith(("shiptrackd_", "process_")) for name in fams), sorted(fams)
    for fam in fams.values():
        if fam.type == "counter":
            assert all(s.name.endswith("_total") for s in fam.samples), fam.name
        if "duration" in fam.name or fam.name.endswith("_timestamp"):
            assert fam.name.endswith("_seconds") or fam.name.endswith("_timestamp_seconds"), fam.name
    ids = {a.id for a in added.added}
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
    assert "shiptrackd_health_check_value" not in fams  # one series per figure and unit instead
    assert value(fams, "shiptrackd_health_last_sync_age_seconds") >= 0
    assert value(fams, "shiptrackd_health_stale_shipments") == 0
    assert value(fams, "shiptrackd_health_error_ratio") == 0
    assert value(fams, "shiptrackd_health_store_free_bytes") > 0


async def test_process_metrics_come_from_the_process_collector(running: Running) -> None:
    """CPU, RSS, open fds and start time are exported under the standard process_* names."""
    fams = families(await scrape(running))
    assert value(fams, "process_resident_memory_bytes") > 10e6
    assert value(fams, "process_open_fds") > 3
    assert value(fams, "process_cpu_seconds", "_total") > 0  # a counter: family name without _total
    assert value(fams, "process_start_time_seconds") > 1.7e9


async def test_series_report_zero_before_anything_happened(running: Running) -> None:
    """On a fresh daemon (no run, no report, no delivery) every figure is present and 0, not missing."""
    fams = families(await scrape(running))
    assert value(fams, "shiptrackd_sync_runs", trigger="schedule", outcome="failed") == 0
    assert value(fams, "shiptrackd_shipments", status="IT", active="true") == 0
    assert value(fams, "shiptrackd_provider_errors", kind="rate_limited") == 0
    assert value(fams, "shiptrackd_alerts_sent", channel="console", outcome="failed") == 0
    assert value(fams, "shiptrackd_last_successful_sync_timestamp_seconds") == 0
    assert value(fams, "shiptrackd_health_status") == 3  # no report yet: unknown
    assert value(fams, "shiptrackd_health_check_state", check="store", state="unknown") == 1
    for name in ("last_sync_age_seconds", "stale_shipments", "error_ratio", "store_free_bytes"):
        assert value(fams, f"shiptrackd_health_{name}") == 0
    assert value(fams, "shiptrackd_heartbeat_enabled") == 0
    assert value(fams, "shiptrackd_heartbeat_pings", kind="fail", outcome="ok") == 0


async def scrape(running: Running) -> str:
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(running.config.daemon.socket))) as http:
        response = await http.get("http://shiptrackd/metrics")
    assert response.status_code == 200
    return response.text


async def test_metrics_listen_serves_only_metrics_over_tcp(short_tmp: Path, sandbox: Sandbox) -> None:
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
            assert (await client.status()).state == "running"
        daemon.stop()
