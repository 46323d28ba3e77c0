"""
Shared fixtures: asyncio only, no developer setup leaking in, no real waits in retries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
import stamina

if TYPE_CHECKING:  # the daemon's modules load inside the fixtures, so collecting a unit test stays light
    import httpx

    from shiptrackd.api.client import ApiClient
    from shiptrackd.config import Config
    from shiptrackd.daemon import Daemon
    from shiptrackd.sandbox import Sandbox
    from shiptrackd.store import Store


@pytest.fixture
def anyio_backend() -> str:
    # aiosqlite, Apprise and Textual are asyncio-only (reference/libraries.md §0).
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point XDG dirs at tmp_path and drop every SHIPTRACK_*/seed variable from the caller's shell."""
    for name in list(os.environ):
        if name.startswith(("SHIPTRACK_", "SHIPENGINE_", "ALERT_", "TRACKING_API_")) or name in (
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "CREDENTIALS_DIRECTORY",
            "JOURNAL_STREAM",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg-run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    # A host's real /etc/shiptrackd/shiptrackd.toml must not leak into tests either.
    monkeypatch.setattr("shiptrackd.config.SYSTEM_CONFIG_PATH", tmp_path / "no-system-config.toml")
    # Nor a host's installed daemon's socket into a client's default.
    monkeypatch.setattr("shiptrackd.paths.SYSTEM_SOCKET", tmp_path / "no-system-run" / "control.sock")
    yield


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    """Retries keep their count but never sleep (stamina's testing mode)."""
    stamina.set_testing(True, attempts=3, cap=True)
    yield
    stamina.set_testing(False)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Every log line of the test as it happens, loguru's and the stdlib's (hypercorn, asyncio), with tracebacks."""
    from loguru import logger

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.levelname} {record.name} {self.format(record)}")

    handler = Collect(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{level} {message}\n{exception}")
    yield lines
    logger.remove(sink)
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory for AF_UNIX sockets, whose paths max out near 100 bytes."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="st-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- a running daemon on the sandbox ------------------------------------------------------

NEVER = "0 0 1 1 *"  # loops on this cron stay quiet during a test unless triggered


@dataclass
class Running:
    daemon: Daemon
    client: ApiClient
    sandbox: Sandbox
    config: Config


def quiet_daemon_env(state_dir: Path, base_url: str, **extra: str) -> dict[str, str]:
    """SHIPTRACK_* settings for a test daemon: quiet loops, fast provider, state and socket in *state_dir*."""
    return {
        "SHIPTRACK_DAEMON__STATE_DIR": str(state_dir),
        "SHIPTRACK_DAEMON__SOCKET": str(state_dir / "ctl.sock"),
        "SHIPTRACK_DAEMON__SHUTDOWN_GRACE": "5s",
        "SHIPTRACK_PROVIDER__BASE_URL": base_url,
        "SHIPTRACK_PROVIDER__API_KEY": SANDBOX_KEY,
        "SHIPTRACK_PROVIDER__RATE_LIMIT": "none",
        "SHIPTRACK_PROVIDER__TIMEOUT": "2s",
        "SHIPTRACK_SYNC__SCHEDULE": NEVER,
        "SHIPTRACK_SYNC__FORCE_SCHEDULE": NEVER,
        "SHIPTRACK_HEALTH__SCHEDULE": NEVER,
        "SHIPTRACK_STORE__RETENTION_SCHEDULE": NEVER,
        **extra,
    }


def daemon_config(state_dir: Path, base_url: str, **env: str) -> Config:
    """A real configuration through the real loader, from quiet_daemon_env()."""
    from shiptrackd.config import load

    return load(None, env=quiet_daemon_env(state_dir, base_url, **env))


SANDBOX_KEY = "TEST_sandbox_key"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """The ShipEngine-compatible sandbox on 127.0.0.1, simulated time frozen (tests move it)."""
    from shiptrackd.sandbox import Sandbox

    async with Sandbox(api_key=SANDBOX_KEY, time_scale=0).serve() as sb:
        yield sb


@pytest.fixture
async def running(short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[Running]:
    """A real daemon (in this process, on its real socket and SQLite file) and a connected client."""
    async for made in run_daemon(short_tmp, sandbox):
        yield made


@pytest.fixture(params=["sqlite", "postgresql"])
async def running_any(request: pytest.FixtureRequest, short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[Running]:
    """The `running` daemon on its SQLite file, and again on a real PostgreSQL database (emptied first)."""
    env = {}
    if request.param == "postgresql":
        from pg_fixtures import truncate_all

        url = request.getfixturevalue("pg_url")
        truncate_all(url)
        env["SHIPTRACK_STORE__URL"] = url
    async for made in run_daemon(short_tmp, sandbox, **env):
        yield made


@asynccontextmanager
async def raw_http(socket_path: Path, timeout_s: float = 10.0) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP on a daemon's socket, for what ApiClient never sends or would decode: raw bodies, bad requests."""
    import httpx

    transport = httpx.AsyncHTTPTransport(uds=str(socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://shiptrackd", timeout=timeout_s) as http:
        yield http


async def run_daemon(short_tmp: Path, sandbox: Sandbox, **env: str) -> AsyncIterator[Running]:
    from shiptrackd.api.client import ApiClient
    from shiptrackd.daemon import Daemon

    config = daemon_config(short_tmp, sandbox.base_url, **env)
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            yield Running(daemon, client, sandbox, config)
        daemon.stop()


# --- the store on both backends (tests/pg_fixtures.py) --------------------------------------------

from pg_fixtures import BACKENDS, open_backend, pg_server, pg_url, pytest_runtest_makereport  # noqa: E402, F401


@pytest.fixture(params=BACKENDS)
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The Store on a real SQLite file and on a real PostgreSQL database (skipped without a server)."""
    async for store in open_backend(request, tmp_path):
        yield store
