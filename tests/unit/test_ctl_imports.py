"""shiptrackctl starts fast: its module and command tree load no HTTP, async, database or UI library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("httpx", "anyio", "aiosqlite", "apprise", "textual", "hypercorn", "loguru", "rich", "starlette", "msgspec")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_importing_ctl_loads_nothing_heavy() -> None:
    """`import shiptrackd.ctl` loads none of httpx, anyio, aiosqlite, apprise, textual, hypercorn or loguru."""
    assert _loaded_after("import shiptrackd.ctl") == []


def test_building_the_command_tree_loads_nothing_heavy() -> None:
    """Building the whole parser (what --help does), every command group included, stays import-light."""
    assert _loaded_after("import shiptrackd.ctl as c; c.build_parser()") == []


def test_help_exits_zero() -> None:
    """`shiptrackctl --help` prints the command list and exits 0."""
    script = Path(sys.executable).with_name("shiptrackctl")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "shiptrackd.ctl"]
    done = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "usage: shiptrackctl" in done.stdout and "sync" in done.stdout and done.stderr == ""
