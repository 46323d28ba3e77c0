"""
The daemon as systemd sees it, run as a real subprocess: sd_notify (READY, WATCHDOG, RELOADING,
STOPPING) on a fake NOTIFY_SOCKET, signals, exit codes, the control socket's file and mode, and
secrets kept out of every output.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import anyio
import httpx
import pytest
from anyio.abc import Process
from conftest import NEVER, SANDBOX_KEY, Running, quiet_daemon_env, raw_http

from shiptrackd.api.client import ApiClient, ApiError
from shiptrackd.errors import DaemonUnavailableError
from shiptrackd.models import TrackingInfo
from shiptrackd.sandbox import Sandbox
from shiptrackd.wire.answers import RunDetail, Status

pytestmark = pytest.mark.anyio

SHIPTRACKD = [sys.executable, "-m", "shiptrackd"]
T = TypeVar("T")


def daemon_env(state_dir: Path, base_url: str = "http://127.0.0.1:9", **extra: str) -> dict[str, str]:
    """The environment of a daemon subprocess: quiet loops, fast provider, state and socket in *state_dir*."""
    return {**os.environ, **quiet_daemon_env(state_dir, base_url, **extra)}


@dataclass
class DaemonProcess:
    process: Process
    socket: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def wait_ready(self, timeout_s: float = 15.0) -> Status:
        """Poll GET /v1/status through the socket until it says running; fail at once if the process died."""
        async with ApiClient(self.socket, timeout_s=2) as client:
            with anyio.fail_after(timeout_s):
                while True:
                    if not self.running:
                        raise AssertionError(f"shiptrackd exited {self.process.returncode}:\n{self.output()}")
                    try:
                        status = await client.status()
                        if status.state == "running":  # the socket answers a moment before the loops start
                            return status
                    except DaemonUnavailableError:
                        pass
                    await anyio.sleep(0.05)

    async def wait(self, timeout_s: float = 10.0) -> int:
        with anyio.fail_after(timeout_s):
            return await self.process.wait()

    async def stop(self, signum: signal.Signals = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        self.process.send_signal(signum)
        return await self.wait(timeout_s)


async def poll(read: Callable[[], Awaitable[T]], done: Callable[[T], object], timeout_s: float = 10.0) -> T:
    """Call *read* until *done* holds for its value; fail after the deadline."""
    with anyio.fail_after(timeout_s):
        while True:
            value = await read()
            if done(value):
                return value
            await anyio.sleep(0.02)


async def wait_for_run(client: ApiClient, run_id: int) -> RunDetail:
    return await poll(lambda: client.run(run_id), lambda run: run.outcome != "running")


def _open_log(path: Path) -> BinaryIO:
    return open(path, "wb")  # handed to the child, closed right after the spawn


@asynccontextmanager
async def daemon_process(
    env: dict[str, str], log: Path, *args: str, socket: Path | None = None
) -> AsyncIterator[DaemonProcess]:
    """`shiptrackd` as a subprocess, its output in *log*; killed on the way out if still running."""
    with _open_log(log) as out:
        process = await anyio.open_process([*SHIPTRACKD, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield DaemonProcess(process, socket or Path(env.get("SHIPTRACK_DAEMON__SOCKET", "")), log)
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


@dataclass
class NotifySocket:
    """A fake $NOTIFY_SOCKET: a bound datagram socket collecting what the daemon tells systemd."""

    path: Path
    sock: socket.socket
    messages: list[list[str]] = field(default_factory=list)

    async def receive(self) -> list[str]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                await anyio.wait_readable(self.sock)
                continue
            fields = data.decode().split("\n")
            self.messages.append(fields)
            return fields

    async def until(self, predicate: Callable[[list[str]], bool], timeout_s: float = 15.0) -> list[str]:
        """Collect datagrams until one matches; return that one."""
        with anyio.fail_after(timeout_s):
            while True:
                fields = await self.receive()
                if predicate(fields):
                    return fields

    def pending(self) -> list[list[str]]:
        """Whatever has arrived and not been read yet, without waiting."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(65536).decode().split("\n"))
            except BlockingIOError:
                self.messages += out
                return out


@pytest.fixture
def notify(short_tmp: Path) -> Iterator[NotifySocket]:
    path = short_tmp / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield NotifySocket(path, sock)
    sock.close()


def is_ready(fields: list[str]) -> bool:
    return "READY=1" in fields


def write_config(path: Path, state_dir: Path, sync_schedule: str = NEVER, extra: str = "") -> None:
    path.write_text(
        f"""
[daemon]
state_dir = "{state_dir}"
socket = "{state_dir / "ctl.sock"}"
shutdown_grace = "5s"

[provider]
base_url = "http://127.0.0.1:9"
api_key = "{SANDBOX_KEY}"

[sync]
schedule = "{sync_schedule}"
force_schedule = "{NEVER}"

[health]
schedule = "{NEVER}"
{extra}
"""
    )


def files_holding(directory: Path, secret: bytes) -> list[Path]:
    """The files directly in *directory* whose bytes contain *secret*."""
    return [path for path in directory.iterdir() if path.is_file() and secret in path.read_bytes()]


def integrity(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        result: str = conn.execute("PRAGMA integrity_check").fetchone()[0]
        return result


# --- sd_notify -------------------------------------------------------------------------------


async def test_ready_watchdog_and_stopping_reach_systemd_in_order(
    short_tmp: Path, tmp_path: Path, notify: NotifySocket
) -> None:
    """READY=1 comes only once the socket answers, WATCHDOG=1 every half period, STOPPING=1 first on SIGTERM."""
    env = daemon_env(short_tmp, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="400000")
    async with daemon_process(env, tmp_path / "log") as daemon:
        ready = await notify.until(is_ready)
        # Connect the instant READY arrives: the control socket must already be accepting.
        transport = httpx.AsyncHTTPTransport(uds=str(daemon.socket))
        async with httpx.AsyncClient(transport=transport, base_url="http://shiptrackd") as http:
            response = await http.get("/v1/status")
        assert response.status_code == 200 and response.json()["state"] == "running"
        assert any(f.startswith("STATUS=Running") for f in ready)

        with anyio.move_on_after(0.6):  # a measuring window, not a wait for something to happen
            while True:
                await notify.receive()
        after_ready = notify.messages[notify.messages.index(ready) + 1 :]
        assert sum(1 for m in after_ready if m == ["WATCHDOG=1"]) >= 2

        assert await daemon.stop() == 0
        notify.pending()
        stopping = [i for i, m in enumerate(notify.messages) if "STOPPING=1" in m]
        assert stopping and stopping[0] > notify.messages.index(ready)
        assert not daemon.socket.exists()
        assert integrity(short_tmp / "shiptrackd.db") == "ok"


async def test_sighup_with_a_broken_config_keeps_the_old_one_and_a_good_one_applies(
    short_tmp: Path, tmp_path: Path, notify: NotifySocket
) -> None:
    """SIGHUP sends RELOADING=1 and MONOTONIC_USEC together, then READY=1; a bad file is refused, a good one applied."""
    config = tmp_path / "shiptrackd.toml"
    write_config(config, short_tmp, sync_schedule="1h")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path)}
    async with daemon_process(env, tmp_path / "log", "--config", str(config), socket=short_tmp / "ctl.sock") as daemon:
        await notify.until(is_ready)

        config.write_text(config.read_text() + "\n[sync]\nschedule = 'bad'\n")  # a duplicate table: invalid TOML
        daemon.process.send_signal(signal.SIGHUP)
        reloading = await notify.until(lambda f: "RELOADING=1" in f)
        assert len(reloading) == 2 and reloading[1].startswith("MONOTONIC_USEC=")
        assert int(reloading[1].split("=", 1)[1]) > 0
        rejected = await notify.until(is_ready)
        assert any("rejected" in f for f in rejected if f.startswith("STATUS="))
        async with ApiClient(daemon.socket) as client:
            assert daemon.running
            loops = {lp.name: lp for lp in (await client.loops()).loops}
            assert loops["sync"].schedule == "1h"

            write_config(config, short_tmp, sync_schedule="30m")
            daemon.process.send_signal(signal.SIGHUP)
            await notify.until(lambda f: "RELOADING=1" in f)
            accepted = await notify.until(is_ready)
            assert not any("rejected" in f for f in accepted)
            loops = {lp.name: lp for lp in (await client.loops()).loops}
            assert loops["sync"].schedule == "30m"

        assert await daemon.stop() == 0
        assert "reload rejected" in daemon.output()


async def test_reload_over_the_api_refuses_a_bad_file_with_400_and_keeps_running(
    short_tmp: Path, tmp_path: Path
) -> None:
    """POST /v1/reload with a broken file answers 400 with the reason, and the daemon keeps serving."""
    config = tmp_path / "shiptrackd.toml"
    write_config(config, short_tmp, sync_schedule="1h")
    async with daemon_process(
        dict(os.environ), tmp_path / "log", "--config", str(config), socket=short_tmp / "ctl.sock"
    ) as daemon:
        await daemon.wait_ready()
        write_config(config, short_tmp, sync_schedule="every tuesday")
        async with ApiClient(daemon.socket) as client:
            with pytest.raises(ApiError) as refused:
                await client.reload()
            error = refused.value
            assert error.http_status == 400
            assert error.code == "config_invalid" and "sync.schedule" in error.message
            assert (await client.status()).state == "running"
            write_config(config, short_tmp, sync_schedule="2h")
            reloaded = await client.reload()
            assert reloaded.reloaded and "sync" in reloaded.changed
        assert await daemon.stop() == 0


# --- configuration errors and secrets ----------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ("[provider]\nconcurrecy = 4\n", {}, "concurrency"),  # unknown key, with the near one suggested
        ("[sync]\nschedule = \n", {}, "line 2"),  # TOML syntax error with its line
        ("", {"SHIPTRACK_PROVIDER__TIMEOUT": "soon"}, "provider.timeout"),  # bad duration from the environment
    ],
    ids=["unknown-key", "toml-syntax", "bad-duration"],
)
async def test_bad_config_exits_78_before_ready(
    tmp_path: Path, notify: NotifySocket, toml: str, env: dict[str, str], expected: str
) -> None:
    """A bad configuration stops start-up with exit 78 and one clear message, and READY=1 is never sent."""
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = await anyio.run_process(
        [*SHIPTRACKD, "--config", str(config)],
        env={**os.environ, "NOTIFY_SOCKET": str(notify.path), **env},
        check=False,
    )
    assert result.returncode == 78
    assert expected in result.stderr.decode()
    assert result.stderr.decode().count("\n") <= 2  # one message, not a traceback
    assert notify.pending() == []


async def test_check_config_prints_masked_settings_and_exits_0_or_78(tmp_path: Path) -> None:
    """`--check-config` prints the effective settings with the key masked (exit 0), and exits 78 on a bad file."""
    secret = "TEST_k3y_Zq81vXwB0098"
    env = {**os.environ, "SHIPTRACK_PROVIDER__API_KEY": secret, "SHIPTRACK_SYNC__BATCH_SIZE": "37"}
    good = await anyio.run_process([*SHIPTRACKD, "--check-config"], env=env, check=False)
    assert good.returncode == 0
    out = good.stdout.decode()
    assert "batch_size = 37" in out and 'api_key = "***"' in out
    assert secret not in out and secret not in good.stderr.decode()

    bad = tmp_path / "bad.toml"
    bad.write_text("[sync]\nbatch_size = 'many'\n")
    failed = await anyio.run_process([*SHIPTRACKD, "--check-config", "--config", str(bad)], env=env, check=False)
    assert failed.returncode == 78
    assert "sync.batch_size" in failed.stderr.decode()
    assert secret not in failed.stdout.decode() + failed.stderr.decode()


async def test_the_api_key_never_appears_in_status_logs_or_the_store(
    short_tmp: Path, tmp_path: Path, sandbox: Sandbox
) -> None:
    """A distinctive key, even echoed back by the provider, shows up in no API answer, log line or store file."""
    secret = "TEST_s3cr3t_Wq7Pz0Lm4"
    sandbox.configure(api_key=secret)
    env = daemon_env(
        short_tmp, sandbox.base_url, SHIPTRACK_PROVIDER__API_KEY=secret, SHIPTRACK_DAEMON__LOG_LEVEL="DEBUG"
    )
    async with daemon_process(env, tmp_path / "log") as daemon:
        await daemon.wait_ready()
        async with ApiClient(daemon.socket) as client:
            added = await client.add_shipments(
                [{"carrier_code": "ups", "tracking_number": n} for n in ("1ZLEAKKEY0001", "1ZINTRANSIT0001")]
            )
            run_id = (await client.sync()).run_id
            run = await wait_for_run(client, run_id)
            assert run.updated == 1 and run.failed == 1
            leaked = await client.shipment(added.added[0].id)
            assert leaked.last_error_kind == "rejected" and "***" in leaked.last_error
        async with raw_http(daemon.socket) as http:  # the answers as sent, not as decoded
            answers = [
                await http.get(path)
                for path in (
                    "/v1/status",
                    "/v1/stats",
                    "/v1/runs",
                    "/v1/shipments",
                    f"/v1/runs/{run_id}",
                    f"/v1/shipments/{leaked.id}",
                )
            ]
        assert await daemon.stop() == 0
    for response in answers:
        assert response.status_code == 200
        assert secret not in response.text, response.url
    log = daemon.output()
    assert "sync done" in log and "DEBUG" in log  # the log is there, and verbose
    assert secret not in log
    assert files_holding(short_tmp, secret.encode()) == []


# --- the control socket file --------------------------------------------------------------------


async def test_a_stale_socket_file_is_replaced_and_the_new_one_is_0660(short_tmp: Path, tmp_path: Path) -> None:
    """A socket file left by a crash (nobody listening) is replaced; the new socket has mode 0660."""
    path = short_tmp / "ctl.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: exactly what kill -9 leaves behind
    os.chmod(path, 0o755)
    async with daemon_process(daemon_env(short_tmp), tmp_path / "log") as daemon:
        status = await daemon.wait_ready()  # it answers: a listening socket took the stale file's place
        assert status.state == "running"
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert await daemon.stop() == 0
    assert not path.exists()


async def test_a_second_daemon_on_a_live_socket_refuses_and_disturbs_nothing(
    running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second shiptrackd on the same socket and store exits 1 saying why; the first keeps serving its run."""
    client, engine = running.client, running.daemon.engine
    assert engine is not None
    await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0009"}])
    gate = anyio.Event()
    real_fetch = engine.throttle.fetch

    async def held_fetch(carrier_code: str, tracking_number: str) -> TrackingInfo:
        await gate.wait()  # hold the run open while the second daemon tries to start
        return await real_fetch(carrier_code, tracking_number)

    monkeypatch.setattr(engine.throttle, "fetch", held_fetch)
    run_id = (await client.sync()).run_id
    socket_path = running.config.daemon.socket
    inode = socket_path.stat().st_ino

    env = daemon_env(running.config.daemon.state_dir, running.sandbox.base_url)
    async with daemon_process(env, tmp_path / "second.log") as second:
        assert await second.wait() == 1
    message = second.output()
    # The state-dir lock is checked before the socket: it names the holder (this test process).
    assert f"pid {os.getpid()}" in message and str(running.config.daemon.state_dir) in message
    assert "Traceback" not in message

    assert socket_path.stat().st_ino == inode
    assert (await client.status()).state == "running"
    assert (await client.run(run_id)).outcome == "running"  # the live run was not declared orphaned
    gate.set()
    run = await wait_for_run(client, run_id)
    assert run.outcome == "ok" and run.updated == 1


async def test_a_regular_file_at_the_socket_path_is_refused_and_kept(short_tmp: Path, tmp_path: Path) -> None:
    """A regular file where the socket should go is not ours to delete: exit 1 with a clear message."""
    path = short_tmp / "ctl.sock"
    path.write_text("not a socket\n")
    async with daemon_process(daemon_env(short_tmp), tmp_path / "log") as daemon:
        assert await daemon.wait() == 1
    assert "is not a socket" in daemon.output() and "Traceback" not in daemon.output()
    assert path.read_text() == "not a socket\n"
