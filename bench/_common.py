"""
Helpers shared by the benchmarks: an out-of-process sandbox, an engine on a real store,
RSS sampling, and plain-text tables. Not a test module; never imported by the test suite.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SANDBOX_KEY = "TEST_bench"
NEVER = "0 0 1 1 *"  # a cron that keeps a loop quiet during a benchmark


def quiet_logs(level: str = "WARNING") -> None:
    """Only warnings and errors from loguru (the engine logs every run at INFO)."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=level)


class OutOfProcessSandbox:
    """`python -m shiptrackd.sandbox` in a child process, steered over its /_sandbox routes."""

    def __init__(self, proc: subprocess.Popen[str], base_url: str) -> None:
        self.proc = proc
        self.base_url = base_url

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/stats")

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "/_sandbox/reset")

    def configure(self, **knobs: Any) -> dict[str, Any]:
        return self._call("POST", "/_sandbox/config", knobs)


@contextmanager
def sandbox_process(*args: str) -> Iterator[OutOfProcessSandbox]:
    """Start the sandbox on a free port with `args` (e.g. "--latency", "20ms") and stop it after."""
    cmd = [sys.executable, "-m", "shiptrackd.sandbox", "--port", "0", "--api-key", SANDBOX_KEY, *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if not match:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"sandbox did not start: {line!r} {err}")
        yield OutOfProcessSandbox(proc, match.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_config(state_dir: Path, base_url: str, **env: str) -> Any:
    """A real configuration through the real loader, as tests/conftest.py's daemon_config builds it."""
    from shiptrackd.config import load

    values = {
        "XDG_CONFIG_HOME": str(state_dir / "no-config"),  # never pick up a developer's config file
        "SHIPTRACK_DAEMON__STATE_DIR": str(state_dir),
        "SHIPTRACK_DAEMON__SOCKET": str(state_dir / "ctl.sock"),
        "SHIPTRACK_DAEMON__SHUTDOWN_GRACE": "10s",
        "SHIPTRACK_DAEMON__LOG_LEVEL": "WARNING",
        "SHIPTRACK_PROVIDER__BASE_URL": base_url,
        "SHIPTRACK_PROVIDER__API_KEY": SANDBOX_KEY,
        "SHIPTRACK_PROVIDER__RATE_LIMIT": "none",
        "SHIPTRACK_PROVIDER__TIMEOUT": "10s",
        "SHIPTRACK_SYNC__SCHEDULE": NEVER,
        "SHIPTRACK_SYNC__FORCE_SCHEDULE": NEVER,
        "SHIPTRACK_HEALTH__SCHEDULE": NEVER,
        "SHIPTRACK_STORE__RETENTION_SCHEDULE": NEVER,  # its hourly count of every table is not what is measured
        **env,
    }
    return load(None, env=values)


def tracking_numbers(prefix: str, n: int) -> list[str]:
    """Digits only after a short prefix, so no number hits a sandbox magic substring."""
    return [f"{prefix}{i:09d}" for i in range(n)]


def rss_mib() -> float:
    """This process's resident set size now, in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds another process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat: diff two to get its idle share."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def idle_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    busy, total = after[0] - before[0], after[1] - before[1]
    return 1.0 - busy / total if total else float("nan")


def loadavg() -> str:
    """The 1/5/15-minute load average: other work on this 2-core machine skews every figure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if n else c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def header(title: str) -> None:
    print(f"# {title}")
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  python {platform.python_version()}  "
        f"{os.cpu_count()} cores  {platform.machine()}  sqlite {_sqlite_version()}  load average {loadavg()}"
    )


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def verdict(ok: bool, text: str) -> None:
    print(f"VERDICT: {'PASS' if ok else 'FAIL'} - {text}")
