"""Import boundaries: the daemon never loads the console's UI toolkit."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in {modules!r} if sys.modules.get(m) is not None))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_daemon_does_not_import_textual() -> None:
    """`import shiptrackd.daemon` (and the demo) never pulls in Textual."""
    assert _loaded_after("import shiptrackd.daemon, shiptrackd.demo, shiptrackd.__main__", ("textual",)) == []


def test_api_client_imports_no_daemon_machinery() -> None:
    """The shared API client (used by ctl and tui) loads no store, server, scheduler or notifier."""
    heavy = ("aiosqlite", "hypercorn", "starlette", "apprise", "stamina", "textual", "loguru")
    assert _loaded_after("import shiptrackd.api.client", heavy) == []


def test_console_talks_to_the_daemon_only_through_the_api_client() -> None:
    """The TUI loads the API client but none of the daemon's store, sync, server or notifier modules."""
    daemon_side = (
        "shiptrackd.store",
        "shiptrackd.sync",
        "shiptrackd.daemon",
        "shiptrackd.api.server",
        "apprise",
        "aiosqlite",
    )
    assert _loaded_after("import tui.app", daemon_side) == []


def test_a_sqlite_daemon_does_not_load_the_postgresql_driver() -> None:
    """psycopg is loaded only when `[store] url` names a server: importing the daemon costs no ~0.4 s for it."""
    assert _loaded_after("import shiptrackd.daemon, shiptrackd.__main__", ("psycopg", "psycopg_pool")) == []


def test_httpx_does_not_load_its_command_line_client() -> None:
    """httpx's own CLI (click, rich, pygments) stays unloaded in the daemon and in shiptrackctl's client path."""
    cli_toolkit = ("httpx._main", "click", "rich", "pygments")
    assert _loaded_after("import shiptrackd.daemon, shiptrackd.__main__, shiptrackd.api.client", cli_toolkit) == []
