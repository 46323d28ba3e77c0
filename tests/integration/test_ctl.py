"""
shiptrackctl end to end: a real daemon in this process, the real `shiptrackctl` in subprocesses.

The daemon serves on this test's event loop, so ctl runs through `anyio.run_process`
(a blocking subprocess.run would stop the loop that has to answer it).
"""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from conftest import Running

from shiptrackd.api.client import ApiClient, ApiError
from shiptrackd.config import Config
from shiptrackd.sandbox import Sandbox
from shiptrackd.units import format_size
from shiptrackd.wire.answers import LoopInfo, RunDetail
from shiptrackd.wire.events import LoopChanged

pytestmark = pytest.mark.anyio
T = TypeVar("T")

_SCRIPT = Path(sys.executable).with_name("shiptrackctl")
CTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shiptrackd.ctl"]


@dataclass
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(scope="module", autouse=True)
def _bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Let ctl subprocesses cache bytecode in a temp dir: with PYTHONDONTWRITEBYTECODE each would recompile httpx."""
    _CACHE_ENV["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("ctl-pycache"))
    _CACHE_ENV["PYTHONDONTWRITEBYTECODE"] = None


_CACHE_ENV: dict[str, str | None] = {}


async def ctl(sock: Path | None, *argv: str, env: dict[str, str | None] | None = None, stdin: bytes = b"") -> Done:
    """Run `shiptrackctl [--socket SOCK] ARGV...` and collect its exit code and output."""
    full_env = _env(env)
    socket_args = ["--socket", str(sock)] if sock is not None else []
    with anyio.fail_after(30):
        proc = await anyio.run_process([*CTL, *socket_args, *argv], input=stdin, check=False, env=full_env)
    return Done(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def _env(changes: dict[str, str | None] | None) -> dict[str, str]:
    """os.environ with *changes* applied (None removes a variable)."""
    full_env = dict(os.environ)
    for key, value in {**_CACHE_ENV, **(changes or {})}.items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    return full_env


async def add(client: ApiClient, *numbers: str, carrier: str = "ups") -> list[str]:
    result = await client.add_shipments([{"carrier_code": carrier, "tracking_number": n} for n in numbers])
    return [a.id for a in result.added]


async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float = 10.0) -> T:
    """Poll the async *check* until it returns something truthy, under a deadline; return that."""
    with anyio.fail_after(timeout_s):
        while True:
            if value := await check():
                return value
            await anyio.sleep(0.02)


async def finished(client: ApiClient, run_id: int) -> RunDetail:
    """The run's record once it is no longer running."""

    async def check() -> RunDetail | None:
        run = await client.run(run_id)
        return run if run.outcome != "running" else None

    return await eventually(check)


def sock_of(running: Running) -> Path:
    return running.config.daemon.socket


# --- status -------------------------------------------------------------------------------------


async def test_status_human_and_json(running: Running) -> None:
    """`status` shows the daemon, store and loops as text, the same as one JSON document with --json."""
    await add(running.client, "1ZINTRANSIT0001", "1ZINTRANSIT0002")
    done = await ctl(sock_of(running), "status")
    assert done.code == 0, done.err
    assert "shiptrackd 0.1.0" in done.out and "running" in done.out
    assert "2 shipments, 2 active, 2 due now" in done.out
    assert "LOOP" in done.out and "\nsync " in done.out and "paused" not in done.out
    assert "\x1b[" not in done.out  # a pipe: no colour

    as_json = await ctl(sock_of(running), "status", "--json")  # the option after the command works too
    assert as_json.code == 0 and as_json.err == ""
    doc = as_json.json()
    assert doc["store"]["shipments"] == 2 and {loop["name"] for loop in doc["loops"]} >= {"sync", "force"}


async def test_health_and_status_print_the_same_bytes_the_same_way(running: Running) -> None:
    """The health message says the disk's free space as its own figure in IEC units, and status says its sizes alike."""
    sock = sock_of(running)
    report = (await ctl(sock, "health", "--fresh", "--json")).json()
    [store] = [check for check in report["checks"] if check["name"] == "store"]
    free = format_size(store["value"])  # the bytes the check measured, through the one printer
    assert re.fullmatch(r"\d+\.\d [KMGTP]iB", free) and f"{free} free (" in store["message"]
    health = await ctl(sock, "health", "--verbose", "--wide")  # the same stored report, as a person reads it
    assert f"{free} free (" in health.out and f"below {format_size(store['warning'])}" in health.out

    since = (await running.client.status()).event_seq
    await running.client.loop_action("retention", "trigger")  # status's per-table sizes come from its pass
    with anyio.fail_after(10):
        async for event in running.client.events(since=since):
            if isinstance(event, LoopChanged) and event.loop.name == "retention" and event.loop.runs:
                break
    with anyio.fail_after(10):  # two calls: a write between them (the WAL, a health report) may move the sizes
        while True:
            doc = (await ctl(sock, "status", "--json")).json()["store"]
            status = await ctl(sock, "status")
            size_line = f"{doc['path']}  {format_size(doc['size_bytes'])}  "
            if size_line in status.out and f"{format_size(doc['free_bytes'])} free in the file" in status.out:
                break
    for text in (health.out, status.out):  # no 1000- or 1024-based "KB/MB/GB" left in either
        assert not re.search(r"\d (KB|MB|GB|TB)\b", text), text


async def test_socket_from_the_environment(running: Running) -> None:
    """With no --socket, SHIPTRACK_SOCKET names the daemon's socket."""
    done = await ctl(None, "status", env={"SHIPTRACK_SOCKET": str(sock_of(running))})
    assert done.code == 0, done.err


# --- sync ---------------------------------------------------------------------------------------


async def test_sync_waits_for_the_run_and_reports_it(running: Running) -> None:
    """`sync` follows the run to its end and prints its counts; the daemon holds the same record."""
    await add(running.client, *[f"1ZINTRANSIT{i:04}" for i in range(5)])
    done = await ctl(sock_of(running), "sync")
    assert done.code == 0, done.err
    assert "run 1 (manual) ok" in done.out and "selected 5  updated 5" in done.out
    run = await running.client.run(1)
    assert (run.outcome, run.updated) == ("ok", 5)

    again = await ctl(sock_of(running), "--json", "sync")
    doc = again.json()
    assert again.code == 0 and doc["run"]["selected"] == 0 and doc["joined"] is False


async def test_sync_no_wait_prints_the_run_id(running: Running) -> None:
    """`sync --no-wait` returns once the run is accepted, printing its id."""
    await add(running.client, "1ZINTRANSIT0001")
    done = await ctl(sock_of(running), "sync", "--no-wait", "--json")
    assert done.code == 0, done.err
    run_id = done.json()["run_id"]
    assert (await finished(running.client, run_id)).updated == 1


async def test_dry_run_verbose_lists_and_changes_nothing(running: Running) -> None:
    """`sync --dry-run --verbose` lists each due shipment and why, with no API call and no run."""
    ids = await add(running.client, *[f"1ZINTRANSIT{i:04}" for i in range(3)])
    done = await ctl(sock_of(running), "sync", "--dry-run", "--verbose")
    assert done.code == 0, done.err
    assert "would sync 3 shipment(s)" in done.out
    assert all(i in done.out for i in ids) and done.out.count("due since") == 3
    assert running.sandbox.stats.total == 0
    assert (await running.client.runs()).runs == []


async def test_force_syncs_shipments_that_are_not_due(running: Running) -> None:
    """After a sync nothing is due, yet `sync --force` fetches every active shipment again."""
    await add(running.client, *[f"1ZINTRANSIT{i:04}" for i in range(3)])
    assert (await ctl(sock_of(running), "sync")).code == 0
    regular = await ctl(sock_of(running), "sync", "--json")
    assert regular.json()["run"]["selected"] == 0
    forced = await ctl(sock_of(running), "sync", "--force", "--json")
    assert forced.code == 0 and forced.json()["run"]["selected"] == 3 and forced.json()["trigger"] == "force"
    assert running.sandbox.stats.total == 6


async def test_targeted_sync_names_unknown_ids(running: Running) -> None:
    """`sync --shipments` syncs the known ids and names the unknown; with none known it exits 1."""
    (sid,) = await add(running.client, "1ZINTRANSIT0001")
    done = await ctl(sock_of(running), "sync", f"--shipments={sid},ship_nope")
    assert done.code == 0, done.err
    assert "(targeted) ok" in done.out and "selected 1" in done.out and "unknown ids: ship_nope" in done.out
    strict = await ctl(sock_of(running), "sync", f"--shipments={sid},ship_nope", "--strict")
    assert strict.code == 1
    nothing = await ctl(sock_of(running), "sync", "--shipments=ship_nope")
    assert nothing.code == 1 and "unknown ids: ship_nope" in nothing.out


async def test_partial_run_exits_zero_unless_strict(running: Running) -> None:
    """A run where some shipments failed exits 0 and says how many failed; --strict makes it exit 1."""
    await add(running.client, "1ZINTRANSIT0001", "1ZNOTFOUND0001")
    done = await ctl(sock_of(running), "sync")
    assert done.code == 0, done.err
    assert "partial" in done.out and "1 shipment(s) failed" in done.err
    strict = await ctl(sock_of(running), "sync", "--force", "--strict")
    assert strict.code == 1 and "partial" in strict.out


async def test_timeout_leaves_the_run_going_and_a_second_sync_joins_it(running: Running) -> None:
    """`sync --timeout` exits 75 while the run continues in the daemon, and a regular sync then joins that run."""
    await add(running.client, "1ZINTRANSIT0001")
    running.sandbox.configure(latency_s=1.7)  # under the 2 s provider timeout
    done = await ctl(sock_of(running), "sync", "--timeout", "300ms")
    assert done.code == 75 and done.out == ""
    assert "run 1 goes on in the daemon" in done.err
    sync = (await running.client.status()).sync
    assert sync is not None and sync.run_id == 1
    joined = await ctl(sock_of(running), "sync", "--no-wait")
    assert joined.code == 0 and "joined run 1 already in progress" in joined.out
    assert (await finished(running.client, 1)).outcome == "ok"


async def test_targeted_sync_waits_for_the_run_in_progress_and_retries(running: Running) -> None:
    """A targeted sync refused with 409 (a run in progress) waits for that run to finish, then runs."""
    (sid,) = await add(running.client, "1ZINTRANSIT0001")
    running.sandbox.configure(latency_s=1.5)
    first = (await running.client.sync()).run_id
    with pytest.raises(ApiError) as refused:
        await running.client.sync(shipments=[sid])
    assert refused.value.http_status == 409

    async def in_flight() -> bool:
        return running.sandbox.stats.in_flight > 0

    await eventually(in_flight)  # the first run's request must be in the sandbox before it speeds up again
    running.sandbox.configure(latency_s=0.0)
    done = await ctl(sock_of(running), "sync", f"--shipments={sid}")
    assert done.code == 0, done.err
    assert f"run {first} is in progress; waiting" in done.err
    assert f"run {first + 1} (targeted) ok" in done.out
    assert (await running.client.run(first)).outcome == "ok"


# --- stats and runs ------------------------------------------------------------------------------


async def test_stats_and_its_sync_alias(running: Running) -> None:
    """`stats` (and `sync --stats`) show counts by status and carrier, the day's runs and the forecast."""
    await add(running.client, "1ZINTRANSIT0001", "1ZDELIVERED0001")
    await add(running.client, "FXINTRANSIT0001", carrier="fedex")
    assert (await ctl(sock_of(running), "sync")).code == 0
    done = await ctl(sock_of(running), "stats")
    assert done.code == 0, done.err
    assert "IT in transit 2" in done.out and "DE delivered 1" in done.out and "ups 2 · fedex 1" in done.out
    assert "1 runs: 3 selected, 3 updated" in done.out and "calls/hour" in done.out
    alias = await ctl(sock_of(running), "sync", "--stats", "--json")
    doc = alias.json()
    assert doc["shipments"]["by_carrier"] == {"ups": 2, "fedex": 1} and doc["runs_24h"]["runs"] == 1
    runs = await ctl(sock_of(running), "runs")
    assert runs.code == 0 and "OUTCOME" in runs.out and "manual" in runs.out


# --- shipments ----------------------------------------------------------------------------------


async def test_import_csv_reports_invalid_lines_and_duplicates(running: Running, tmp_path: Path) -> None:
    """A CSV import adds the good rows in chunks, counts duplicates, and names each invalid row by file line."""
    (existing,) = await add(running.client, "1ZEXISTING0001")
    rows = [f"ups,1ZBULK{i:05},order {i}" for i in range(1200)]  # one request, one transaction
    rows[3] = "UPS,1ZUPPER,"  # line 5: the daemon refuses an upper-case carrier
    rows[1100] = "ups,,"  # line 1102: no tracking number
    rows[1150] = "ups,1ZBULK00010"  # line 1152: a duplicate of line 12, in the other chunk
    rows[1199] = "ups,1ZEXISTING0001,x,extra"  # line 1201: too many fields
    rows.append("ups,1ZEXISTING0001")  # line 1202: already tracked before the import
    path = tmp_path / "ship.csv"
    path.write_text("carrier_code,tracking_number,reference\n" + "\n".join(rows) + "\n")

    done = await ctl(sock_of(running), "shipments", "import", str(path), "--verbose")
    assert done.code == 1, done.err
    assert f"{path}: 1196 added, 2 duplicate(s) already tracked, 3 invalid" in done.out
    assert "line 5: carrier_code 'UPS'" in done.out
    assert "line 1102: tracking_number is required" in done.out
    assert "line 1201: expected 3 fields" in done.out
    assert "line 1152: duplicate of" in done.out and f"line 1202: duplicate of {existing}" in done.out
    assert (await running.client.status()).store.shipments == 1197


async def test_import_json_lines_from_stdin(running: Running) -> None:
    """`shipments import -` reads JSON lines from stdin; --json reports every line by number."""
    await add(running.client, "1ZDUP0001")
    text = "\n".join(
        [
            json.dumps({"carrier_code": "ups", "tracking_number": "1ZNEW0001", "reference": "A-1"}),
            "{broken",
            json.dumps({"carrier_code": "ups", "tracking_number": "1ZDUP0001"}),
            "",
            json.dumps({"carrier_code": "fedex"}),
        ]
    )
    done = await ctl(sock_of(running), "--json", "shipments", "import", "-", stdin=text.encode())
    assert done.code == 1
    doc = done.json()
    assert [(a["line"], a["tracking_number"]) for a in doc["added"]] == [(1, "1ZNEW0001")]
    assert [d["line"] for d in doc["duplicates"]] == [3]
    assert [(i["line"], i["error"].split(":")[0]) for i in doc["invalid"]] == [
        (2, "not valid JSON"),
        (5, "tracking_number is required"),
    ]


async def test_add_and_list_pages_with_all(running: Running) -> None:
    """`shipments list` shows one page and the cursor to the next; --all walks every page."""
    add_done = await ctl(sock_of(running), "shipments", "add", "fedex", "FX0001", "--reference", "PO-7", "--json")
    assert add_done.code == 0 and add_done.json()["reference"] == "PO-7"
    dup = await ctl(sock_of(running), "shipments", "add", "fedex", "FX0001")
    assert dup.code == 1 and "already tracked as" in dup.err
    await add(running.client, *[f"1ZPAGE{i:04}" for i in range(4)])

    page = await ctl(sock_of(running), "shipments", "list", "--limit", "2")
    assert page.code == 0 and len(page.out.splitlines()) == 3  # header + 2 rows
    assert "--cursor ship_" in page.err
    every = await ctl(sock_of(running), "shipments", "list", "--all", "--limit", "2")
    lines = every.out.splitlines()
    assert len(lines) == 6 and lines[0].startswith("ID") and sum(line.startswith("ID") for line in lines) == 1
    as_json = (await ctl(sock_of(running), "--json", "shipments", "list", "--all", "--limit", "2")).json()
    assert len(as_json["shipments"]) == 5 and as_json["next_cursor"] is None
    fedex = (await ctl(sock_of(running), "--json", "shipments", "list", "--carrier", "fedex")).json()
    assert [s["tracking_number"] for s in fedex["shipments"]] == ["FX0001"]


async def test_show_has_the_event_timeline(running: Running) -> None:
    """`shipments show` prints the shipment's status and its carrier event timeline."""
    (sid,) = await add(running.client, "1ZINTRANSIT0001")
    assert (await ctl(sock_of(running), "sync")).code == 0
    done = await ctl(sock_of(running), "shipments", "show", sid)
    assert done.code == 0, done.err
    assert sid in done.out and "1ZINTRANSIT0001" in done.out and "IT in transit" in done.out
    assert "TIME (UTC)" in done.out and "in transit: every 4h" in done.out
    doc = (await ctl(sock_of(running), "shipments", "show", sid, "--json")).json()
    assert doc["events"] and done.out.count("\n") >= 8 + len(doc["events"])


async def test_remove_forgets_the_shipment(running: Running) -> None:
    """`shipments remove` deletes it from the daemon; removing it again fails with exit 1."""
    (sid,) = await add(running.client, "1ZINTRANSIT0001")
    done = await ctl(sock_of(running), "shipments", "remove", sid)
    assert done.code == 0 and f"removed {sid}" in done.out
    with pytest.raises(ApiError):
        await running.client.shipment(sid)
    again = await ctl(sock_of(running), "shipments", "remove", sid)
    assert again.code == 1 and again.out == "" and f"no shipment '{sid}'" in again.err


async def test_why_explains_the_schedule(running: Running) -> None:
    """`why` prints when a shipment is next checked and why: due when new, its tier's cadence after a sync."""
    (sid,) = await add(running.client, "1ZINTRANSIT0001")
    before = await ctl(sock_of(running), "why", sid)
    assert before.code == 0 and f"{sid}: due" in before.out and "due now (new)" in before.out
    assert (await ctl(sock_of(running), "sync")).code == 0
    after = await ctl(sock_of(running), "why", sid)
    assert re.search(rf"{sid}: scheduled \(in (3h59m|4h)\)", after.out) and "in transit: every 4h" in after.out
    retracked = await ctl(sock_of(running), "shipments", "retrack", sid)
    assert retracked.code == 0 and "back in the schedule" in retracked.out and "due now (retrack)" in retracked.out


# --- loops and reload ----------------------------------------------------------------------------


async def test_loops_pause_resume_trigger_steer_the_daemon(running: Running) -> None:
    """`loops pause/resume/trigger` really change the daemon's loops; an unknown loop exits 1."""
    sock, client = sock_of(running), running.client

    async def loop(name: str) -> LoopInfo:
        return next(entry for entry in (await client.loops()).loops if entry.name == name)

    assert (await ctl(sock, "loops", "pause", "sync")).code == 0
    assert (await loop("sync")).paused is True
    listed = await ctl(sock, "loops")
    assert any(line.startswith("sync") and "paused" in line for line in listed.out.splitlines())
    assert (await ctl(sock, "loops", "resume", "sync")).code == 0
    assert (await loop("sync")).paused is False

    runs_before = (await loop("health")).runs
    triggered = await ctl(sock, "loops", "trigger", "health")
    assert triggered.code == 0 and "triggered loop health" in triggered.out

    async def health_ran() -> bool:
        return (await loop("health")).runs > runs_before

    await eventually(health_ran)

    unknown = await ctl(sock, "loops", "pause", "nope")
    assert unknown.code == 1 and "no loop named 'nope'" in unknown.err


@pytest.fixture
async def reloadable(short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[tuple[Path, Path]]:
    """A daemon whose configuration is re-read from a TOML file on reload: (file, socket)."""
    from shiptrackd.config import load
    from shiptrackd.daemon import Daemon

    toml = short_tmp / "shiptrackd.toml"
    toml.write_text("[sync]\nbatch_size = 50\n")
    never = "0 0 1 1 *"
    env = {
        "SHIPTRACK_DAEMON__STATE_DIR": str(short_tmp),
        "SHIPTRACK_DAEMON__SOCKET": str(short_tmp / "ctl.sock"),
        "SHIPTRACK_PROVIDER__BASE_URL": sandbox.base_url,
        "SHIPTRACK_PROVIDER__API_KEY": "TEST_sandbox_key",
        "SHIPTRACK_SYNC__SCHEDULE": never,
        "SHIPTRACK_SYNC__FORCE_SCHEDULE": never,
        "SHIPTRACK_HEALTH__SCHEDULE": never,
    }

    def load_config() -> Config:
        return load(toml, env=env)

    config = load_config()
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, load_config=load_config, handle_signals=False).run)
        yield toml, config.daemon.socket
        daemon.stop()


async def test_reload_with_a_bad_config_exits_1_and_keeps_the_old_one(reloadable: tuple[Path, Path]) -> None:
    """`reload` applies a good file; a corrupt one is rejected with its reason, exit 1, and the daemon runs on."""
    toml, sock = reloadable
    toml.write_text("[sync]\nbatch_size = 20\n")
    good = await ctl(sock, "reload")
    assert good.code == 0 and "configuration reloaded; changed: sync" in good.out
    toml.write_text('[sync]\nbatch_size = "lots"\n')
    bad = await ctl(sock, "reload")
    assert bad.code == 1 and bad.out == ""
    assert "rejected" in bad.err and "batch_size" in bad.err
    assert (await ctl(sock, "status")).code == 0


# --- no daemon, errors, colour -----------------------------------------------------------------


async def test_no_daemon_exits_69_naming_the_socket(short_tmp: Path) -> None:
    """With nothing at the socket path, every command exits 69 naming the socket and systemctl on stderr."""
    sock = short_tmp / "absent" / "control.sock"
    done = await ctl(sock, "status")
    assert done.code == 69 and done.out == ""
    assert str(sock) in done.err and "systemctl status shiptrackd" in done.err and "socket missing" in done.err
    as_json = await ctl(sock, "sync", "--json")
    assert as_json.code == 69 and str(sock) in as_json.err
    error = json.loads(as_json.out)["error"]
    assert error["code"] == "daemon_unavailable" and str(sock) in error["message"]


async def test_stale_socket_exits_69_connection_refused(short_tmp: Path) -> None:
    """A socket file nobody listens on (left by a crash) exits 69 with "connection refused"."""
    sock = short_tmp / "stale.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.close()  # the file stays; connecting is refused
    done = await ctl(sock, "status")
    assert done.code == 69 and done.out == ""
    assert "connection refused" in done.err and str(sock) in done.err


async def test_json_errors_are_a_json_object_on_stdout_and_a_line_on_stderr(running: Running) -> None:
    """Under --json an error is `{"error": {"code", "message"}}` on stdout and a line on stderr; usage errors too."""
    done = await ctl(sock_of(running), "--json", "shipments", "show", "ship_nope")
    assert done.code == 1
    assert json.loads(done.out) == {"error": {"code": "not_found", "message": "no shipment 'ship_nope'"}}
    assert done.err == "shiptrackctl: no shipment 'ship_nope'\n"
    usage = await ctl(sock_of(running), "sync", "--timeout", "soon")
    assert usage.code == 2 and "--timeout" in usage.err and usage.out == ""
    usage_json = await ctl(sock_of(running), "sync", "--json", "--timeout", "soon")
    assert usage_json.code == 2 and "--timeout" in usage_json.err
    error = json.loads(usage_json.out)["error"]
    assert error["code"] == "usage" and "'soon'" in error["message"]


async def test_a_mistyped_command_suggests_the_closest_names() -> None:
    """`stauts` exits 2 with "did you mean 'stats' or 'status'?"; a nested action (`shipments lst`) too."""
    done = await ctl(None, "stauts")
    assert done.code == 2 and done.out == "" and "did you mean 'stats' or 'status'?" in done.err
    nested = await ctl(None, "shipments", "lst")
    assert nested.code == 2 and "did you mean 'list'?" in nested.err
    nothing = await ctl(None, "zzzzzz")
    assert nothing.code == 2 and "did you mean" not in nothing.err


async def test_colour_on_a_terminal_unless_no_color(running: Running) -> None:
    """On a terminal status is coloured, and NO_COLOR=1 turns the colour off."""

    async def on_tty(env: dict[str, str | None]) -> str:
        master, replica = pty.openpty()
        try:
            full_env = _env({"TERM": "xterm", **env})
            cmd = [*CTL, "--socket", str(sock_of(running)), "status"]
            with anyio.fail_after(30):
                proc = await anyio.run_process(cmd, stdout=replica, check=False, env=full_env)
            assert proc.returncode == 0, proc.stderr
            os.set_blocking(master, False)
            chunks = []
            while True:
                try:
                    chunk = os.read(master, 65536)
                except (BlockingIOError, OSError):
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode()
        finally:
            os.close(master)
            os.close(replica)

    coloured = await on_tty({"NO_COLOR": None})
    assert "\x1b[" in coloured and "shiptrackd" in coloured
    plain = await on_tty({"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "shiptrackd" in plain
