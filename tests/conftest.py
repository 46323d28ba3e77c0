"""
Shared fixtures: asyncio only, no developer setup leaking in, no real waits in retries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina


@pytest.fixture
def anyio_backend() -> str:
    # aiolimiter, aiosqlite, apprise and Textual are asyncio-only (reference/libraries.md §0).
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
    yield


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    """Retries keep their count but never sleep (stamina's testing mode)."""
    stamina.set_testing(True, attempts=3, cap=True)
    yield
    stamina.set_testing(False)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory for AF_UNIX sockets, whose paths max out near 100 bytes."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="st-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
