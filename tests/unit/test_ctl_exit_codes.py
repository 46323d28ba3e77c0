"""shiptrackctl's exit-code rules: run outcomes, and how an unreachable daemon is explained."""

from __future__ import annotations

import errno

import pytest

from shiptrackd.api.client import ApiClient
from shiptrackd.ctl.sync import exit_code
from shiptrackd.wire.events import FinishedRun


@pytest.mark.parametrize(
    ("outcome", "selected", "requested", "strict", "expected"),
    [
        ("ok", 5, None, False, 0),
        ("partial", 5, None, False, 0),
        ("partial", 5, None, True, 1),
        ("failed", 5, None, False, 1),
        ("aborted", 5, None, False, 1),
        ("interrupted", 2, None, False, 1),
        ("ok", 1, ["ship_a", "ship_nope"], False, 0),  # one unknown id: like a partial run
        ("ok", 1, ["ship_a", "ship_nope"], True, 1),
        ("ok", 0, ["ship_nope"], False, 1),  # none of the named ids exists: nothing was synced
    ],
)
def test_run_outcome_exit_codes(
    outcome: str, selected: int, requested: list[str] | None, strict: bool, expected: int
) -> None:
    """ok and partial exit 0 (partial 1 under --strict); failed/aborted/interrupted and all-unknown ids exit 1."""
    run = FinishedRun(id=1, outcome=outcome, stop_reason="", unknown_ids=[], selected=selected)
    assert exit_code(run, requested=requested, strict=strict) == expected


def _httpx_error(root: OSError) -> Exception:
    """An error shaped as httpx raises it: its cause is httpcore's error, whose context is the OSError."""
    inner = RuntimeError("httpcore.ConnectError")
    inner.__context__ = root
    outer = RuntimeError("httpx.ConnectError")
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("root", "code", "phrase"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "daemon_unavailable", "connection refused"),
        (PermissionError(errno.EACCES, "denied"), "permission_denied", "add yourself to group 'shiptrack'"),
        (FileNotFoundError(errno.ENOENT, "missing"), "daemon_unavailable", "socket missing"),
    ],
)
@pytest.mark.anyio
async def test_unavailable_reason_comes_from_the_root_os_error(root: OSError, code: str, phrase: str) -> None:
    """A refused connection reads "connection refused", EACCES names the group, a missing file "socket missing"."""
    async with ApiClient("/run/shiptrackd/control.sock") as client:
        error = client._unavailable(_httpx_error(root))
    assert error.code == code and phrase in error.message and "/run/shiptrackd/control.sock" in error.message
