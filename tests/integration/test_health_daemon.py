"""
Health and alerts in a real daemon: sandbox faults, simulated time, `shiptrackctl` in subprocesses.

The daemon runs in this process on a FakeClock (its loops stay quiet unless triggered), against the
sandbox on 127.0.0.1; shiptrackctl runs through `anyio.run_process`, since a blocking subprocess
call would stop the loop that has to answer it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from alert_receivers import closed_port, smtp, webhook
from conftest import SANDBOX_KEY, daemon_config

from shiptrackd.alerts.delivery import ChannelSet
from shiptrackd.api.client import ApiClient
from shiptrackd.clock import FakeClock
from shiptrackd.config import Config
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from shiptrackd.wire.answers import Check
from shiptrackd.wire.events import HealthReported

pytestmark = pytest.mark.anyio

_SCRIPT = Path(sys.executable).with_name("shiptrackctl")
CTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shiptrackd.ctl"]
# operations.md §5: the monitoring-plugin line
PLUGIN_LINE = re.compile(r"^SHIPTRACKD (OK|WARNING|CRITICAL|UNKNOWN): .+ \| ('[^']+'|\S+)=\S+( ('[^']+'|\S+)=\S+)*$")


@dataclass
class Done:
    code: int
    out: str
    err: str


async def ctl(sock: Path, *argv: str) -> Done:
    """`shiptrackctl --socket SOCK ARGV...`: exit code, stdout, stderr."""
    with anyio.fail_after(30):
        proc = await anyio.run_process([*CTL, "--socket", str(sock), *argv], check=False, env=dict(os.environ))
    return Done(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


@dataclass
class Live:
    daemon: Daemon
    client: ApiClient
    sandbox: Sandbox
    clock: FakeClock
    socket: Path

    async def sync(self) -> None:
        """A manual sync, waited for to the end."""
        await self.client.sync()
        assert self.daemon.engine is not None
        await self.daemon.engine.wait_idle()

    async def check(self, name: str, **query: Any) -> Check:
        report = await self.client.health(fresh=True, **query)
        return next(c for c in report.checks if c.name == name)


@asynccontextmanager
async def live_daemon(
    state_dir: Path, sandbox: Sandbox, reload_env: Mapping[str, str] | None = None, **env: str
) -> AsyncIterator[Live]:
    """A daemon on a FakeClock; `reload_env` is the configuration a reload reads."""
    clock = FakeClock()
    config = daemon_config(state_dir, sandbox.base_url, **env)

    def load_config() -> Config:
        return daemon_config(state_dir, sandbox.base_url, **(reload_env or env))

    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, clock=clock, load_config=load_config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            yield Live(daemon, client, sandbox, clock, config.daemon.socket)
        daemon.stop()


@pytest.fixture
async def live(short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[Live]:
    async with live_daemon(short_tmp, sandbox) as running:
        yield running


async def add(live: Live, count: int, prefix: str = "1ZINTRANSIT") -> None:
    records = [{"carrier_code": "ups", "tracking_number": f"{prefix}{i:04}"} for i in range(count)]
    assert len((await live.client.add_shipments(records)).added) == count


async def test_healthy_daemon_in_every_format_exits_0(live: Live) -> None:
    """After a good sync every check is ok: text, JSON and plugin output all say so, exit 0."""
    await add(live, 3)
    await live.sync()
    report = await live.client.health(fresh=True)
    assert report.level == "ok", report.summary
    assert [c.name for c in report.checks] == [
        "api_connectivity",
        "recent_sync",
        "stale_shipments",
        "error_rate",
        "loops",
        "store",
        "deliveries",
    ]
    text = await ctl(live.socket, "health")
    assert text.code == 0 and text.out.startswith("shiptrackd health: OK") and "api_connectivity  ok" in text.out
    plugin = await ctl(live.socket, "health", "--format=nagios")
    assert plugin.code == 0 and PLUGIN_LINE.match(plugin.out.strip()), plugin.out
    assert plugin.out.startswith("SHIPTRACKD OK: all 7 checks ok; last successful sync 0s ago |")
    assert "'stale_shipments'=0;10;100;0" in plugin.out and "'active_shipments'=3;;;0" in plugin.out
    doc = await ctl(live.socket, "health", "--json")
    assert doc.code == 0 and json.loads(doc.out)["level"] == "ok"


async def test_bad_key_makes_the_api_check_critical(live: Live) -> None:
    """A key the API rejects (sandbox fault) is a critical api_connectivity check and exit 2."""
    live.sandbox.configure(api_key="TEST_some_other_key")
    check = await live.check("api_connectivity")
    assert check.level == "critical" and "the API rejected the key (HTTP 401)" in check.message
    plugin = await ctl(live.socket, "health", "--format=nagios")
    assert plugin.code == 2 and plugin.out.startswith("SHIPTRACKD CRITICAL: api_connectivity: the API rejected")


async def test_sync_stopped_goes_warning_then_critical(live: Live) -> None:
    """With no sync for 16 min recent_sync warns (exit 1), after 61 min it is critical (exit 2)."""
    await add(live, 2)
    await live.sync()
    await live.clock.advance(minutes=16)
    warned = await ctl(live.socket, "health", "--fresh", "--format=nagios")
    assert warned.code == 1, warned.out
    assert warned.out.startswith("SHIPTRACKD WARNING: recent_sync: last successful sync 16m ago")
    assert "'last_sync_age'=960s;900;3600;0" in warned.out
    await live.clock.advance(minutes=45)
    critical = await ctl(live.socket, "health", "--fresh")
    assert critical.code == 2 and "recent_sync       critical  last successful sync 1h1m ago" in critical.out


async def test_stale_shipments_are_listed_and_the_threshold_can_be_overridden(live: Live) -> None:
    """Shipments not updated for 36 h are stale: listed by --check-stale, judged against --alert-threshold."""
    await add(live, 12)
    await live.clock.advance(hours=37)
    check = await live.check("stale_shipments")
    assert check.level == "warning" and check.message.startswith("12 of 12 active shipments")
    assert (await live.check("stale_shipments", alert_threshold=20)).level == "ok"
    assert (await live.check("stale_shipments", alert_threshold=4)).level == "warning"
    listed = await ctl(live.socket, "health", "--check-stale", "--json", "--alert-threshold=50")
    doc = json.loads(listed.out)
    assert len(doc["stale_shipments"]) == 12 and doc["stale_shipments"][0]["tracking_number"] == "1ZINTRANSIT0000"
    assert next(c for c in doc["checks"] if c["name"] == "stale_shipments")["level"] == "ok"
    assert listed.code == 2  # recent_sync: no sync in 37 hours
    text = await ctl(live.socket, "health", "--check-stale")
    assert "stale shipments (oldest first, 12 shown):" in text.out and "1ZINTRANSIT0011" in text.out


async def test_exit_codes_when_the_daemon_is_down_or_the_arguments_are_bad(short_tmp: Path) -> None:
    """No daemon: a CRITICAL line, exit 2 (JSON error on stdout with --json); bad arguments: an UNKNOWN line, exit 3."""
    missing = short_tmp / "none.sock"
    down = await ctl(missing, "health")
    assert (
        down.code == 2 and down.out == f"SHIPTRACKD CRITICAL: cannot reach shiptrackd at {missing} (socket missing)\n"
    )
    stale = short_tmp / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # a socket file nobody listens on: a crashed daemon's leftover
    refused = await ctl(stale, "health", "--format=nagios")
    assert refused.code == 2 and "connection refused" in refused.out and refused.out.count("\n") == 1
    as_json = await ctl(missing, "health", "--json")
    assert as_json.code == 2 and json.loads(as_json.out)["error"]["level"] == "critical"
    assert f"cannot reach shiptrackd at {missing}" in as_json.err
    for bad, says in (
        (["--format=xml"], "invalid choice: 'xml'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--alert-threshold=-1"], "must be 0 or more"),
        (["--socket"], "expected one argument"),
    ):
        done = await ctl(missing, "health", *bad)
        assert done.code == 3, bad
        [line] = done.out.splitlines()
        assert line.startswith("SHIPTRACKD UNKNOWN: bad arguments: ") and says in line, line
        assert "usage: shiptrackctl health" in done.err


def _as_nobody() -> list[str] | None:
    """A command prefix that runs a program as `nobody` (root only), or None if none works here."""
    import shutil

    for tool, prefix in (
        ("setpriv", ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]),
        ("runuser", ["runuser", "-u", "nobody", "--"]),
    ):
        if shutil.which(tool):
            probe = subprocess.run([*prefix, *CTL, "--version"], capture_output=True, timeout=30)
            if probe.returncode == 0:
                return prefix
    return None


async def test_permission_denied_is_unknown_with_the_real_cause(short_tmp: Path) -> None:
    """A socket the check's user may not open: one UNKNOWN line naming the socket and the group, exit 3."""
    sock = short_tmp / "locked.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen()
    os.chmod(sock, 0)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root ignores the mode: run the client as nobody, who cannot
        os.chmod(short_tmp, 0o755)
        found = _as_nobody()
        if found is None:
            pytest.skip("running as root and cannot run the client as nobody (no setpriv/runuser that works)")
        prefix = found
    try:
        for fmt in ("--format=nagios", "--format=text"):
            argv = [*prefix, *CTL, "--socket", str(sock), "health", fmt]
            with anyio.fail_after(30):
                proc = await anyio.run_process(argv, check=False, env=dict(os.environ), cwd="/")
            out = proc.stdout.decode()
            assert proc.returncode == 3, out + proc.stderr.decode()
            cause = f"permission denied on {sock}; add yourself to group 'shiptrack' (then log in again)"
            assert out == f"SHIPTRACKD UNKNOWN: {cause}\n"
    finally:
        listener.close()


def test_health_help_documents_exit_3_for_permission_denied() -> None:
    """`shiptrackctl health --help` says exit 3 covers permission denied on the socket."""
    done = subprocess.run([*CTL, "health", "--help"], capture_output=True, text=True, timeout=30)
    text = " ".join(done.stdout.split())
    assert done.returncode == 0 and "3 unknown: permission denied on the socket" in text


async def test_alerts_end_to_end_through_the_daemon(short_tmp: Path, sandbox: Sandbox) -> None:
    """Bad key: `alert` notifies the webhook and mailbox (a dead channel fails alone); recovery sends RESOLVED."""
    dead = f"json://127.0.0.1:{closed_port()}/dead"
    async with webhook() as hook, smtp() as mail:
        urls = json.dumps([hook.url, "critical=" + mail.url, dead])
        env = {"SHIPTRACK_ALERTS__URLS": urls, "SHIPTRACK_ALERTS__FOR_REPORTS": "1"}
        env |= {"SHIPTRACK_ALERTS__RESOLVE_AFTER": "1", "SHIPTRACK_ALERTS__HOST": "vm-test"}
        async with live_daemon(short_tmp, sandbox, None, **env) as live:
            assert live.daemon.alerting is not None
            live.daemon.alerting.channels = await ChannelSet.build(live.daemon.config.alerts.urls, throttle=False)
            live.sandbox.configure(api_key="TEST_revoked_key")

            fired = await ctl(live.socket, "alert")
            assert fired.code == 1, fired.out + fired.err  # the dead channel failed
            assert "notification #1: api_connectivity firing" in fired.out
            [posted] = await hook.wait_for(1)
            assert posted["json"]["title"] == "[CRITICAL] shiptrackd on vm-test: api_connectivity"
            assert "CRITICAL api_connectivity: the API rejected the key (HTTP 401)" in posted["json"]["message"]
            [email] = await mail.wait_for(1)
            assert email.subject == posted["json"]["title"] and "HTTP 401" in email.text
            deliveries = {d.channel: d for d in (await live.client.alerts()).notifications[0].deliveries}
            assert deliveries[dead].status == "failed" and deliveries[dead].attempts == 3
            assert {deliveries[k].status for k in ("console", hook.url)} == {"sent"}

            live.sandbox.configure(api_key=SANDBOX_KEY)
            events = live.client.events(since=live.daemon.bus.seq)
            await live.client.loop_action("health", "trigger")  # the health loop, then the alerts loop
            with anyio.fail_after(10):
                async for event in events:
                    if isinstance(event, HealthReported):
                        assert event.report.level == "ok"
                        break
            await hook.wait_for(2)
            resolved = hook.items[1]["json"]
            assert resolved["type"] == "success" and resolved["title"].startswith("[RESOLVED] shiptrackd on vm-test")
            await mail.wait_for(2)  # the resolved notice goes where the critical one went
            assert mail.items[1].subject == resolved["title"]

            listed = await ctl(live.socket, "alerts")
            assert listed.code == 0 and re.search(r"2 +\S+Z +resolved +resolved +api_connectivity +3/4", listed.out)
            tested = await ctl(live.socket, "alert", "--test")
            assert tested.code == 1 and "failed" in tested.out and dead in tested.out


async def test_silences_from_the_command_line(live: Live) -> None:
    """`silence add/list/remove`: stored with its comment, a bad check refused, removal is final."""
    added = await ctl(live.socket, "silence", "add", "stale_shipments", "--for", "2h", "--comment", "carrier outage")
    assert added.code == 0 and added.out.startswith("silence 1: stale_shipments muted until")
    listed = json.loads((await ctl(live.socket, "silence", "list", "--json")).out)
    assert [(s["id"], s["check_name"], s["comment"], s["active"]) for s in listed["silences"]] == [
        (1, "stale_shipments", "carrier outage", True)
    ]
    bad = await ctl(live.socket, "silence", "add", "nosuch", "--for", "1h")
    assert bad.code == 1 and "unknown check 'nosuch'" in bad.err
    assert (await ctl(live.socket, "silence", "remove", "1")).code == 0
    assert (await ctl(live.socket, "silence", "remove", "1")).code == 1
    assert json.loads((await ctl(live.socket, "silence", "list", "--json")).out) == {"silences": []}


async def test_reload_replaces_the_alert_channels(short_tmp: Path, sandbox: Sandbox) -> None:
    """`reload` with new [alerts] urls: the next test notice goes to the new webhook, not the old one."""
    async with webhook() as old, webhook() as new:
        before = {"SHIPTRACK_ALERTS__URLS": json.dumps([old.url])}
        after = {"SHIPTRACK_ALERTS__URLS": json.dumps(["warning=" + new.url])}
        async with live_daemon(short_tmp, sandbox, reload_env=after, **before) as live:
            assert "alerts" in (await live.client.reload()).changed
            result = await live.client.alert_test()
            assert [d.channel for d in result.deliveries] == ["console", "warning=" + new.url]
            await new.wait_for(1)
            assert old.items == []
