"""
shiptrackctl: steer a running shiptrackd over its control socket.

Start-up cost matters (`shiptrackctl --help` must stay well under 0.5 s), so this module
imports only argparse/json/os/sys at the top; the API client (httpx), anyio and the
renderers are imported inside the command functions.

Exit codes: 0 success · 1 the operation failed (an API error, a failed run, invalid import
lines) · 2 usage error · 69 the daemon cannot be reached (or answered 503) · 75 `sync
--timeout` expired while the run goes on in the daemon · 130 interrupted.

Extending (the `health`, `alert`, `alerts` and `silence` commands live in
`shiptrackd/ctl_health.py`). If that module exists, `build_parser()` imports it and calls

    register(subparsers, common)

- `subparsers`: the top-level `add_subparsers()` action; add commands with
  `p = subparsers.add_parser("health", parents=[common], help=...)`.
- `common`: the parent parser holding the options every command takes (`--socket`,
  `--json`, `--verbose`, `--wide`, `--debug`); pass it as `parents=[common]`.
- Each command sets `p.set_defaults(handler=fn)`, where `fn(args) -> int` returns the
  exit code. For a command that talks to the daemon, `handler=command(my_async_fn)` with
  `async def my_async_fn(client, args) -> int | None` (None means 0) does the plumbing:
  `run()` opens an ApiClient on `args.socket`, maps DaemonUnavailableError to exit 69
  (override: `command(fn, unavailable_exit=2)`, or catch it inside `fn` to print your
  own line), an ApiError to exit 1, and prints errors as one line or as JSON on stderr.
- Usage errors exit 2 (argparse); for a different code on one subparser set
  `p.usage_exit_code = 3`.
- Print through `output(args)` (a `ctl_render.Output`): `.emit(doc)` for --json,
  `.table(columns, rows)`, `.kv(pairs)`, `.line()`, `.note()`, `.paint()`; and reuse
  `ctl_render.rel_time`, `Column`, `word_style`.
- Like this module, ctl_health must import nothing heavier than the stdlib at its top
  (tests/unit/test_ctl_imports.py checks `import shiptrackd.ctl` and the parser build).
"""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up time is a feature here
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import NoReturn

    from ..api.client import ApiClient
    from .render import Output

    CommandFn = Callable[[ApiClient, argparse.Namespace], Awaitable[int | None]]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE
EXIT_TEMPFAIL = 75  # sysexits EX_TEMPFAIL: a wait timed out, the work goes on
EXIT_INTERRUPTED = 130

PROG = "shiptrackctl"
SYSTEMCTL_HINT = "systemctl status shiptrackd"


class CtlError(Exception):
    """A command failed in a way the CLI itself detected: message, machine code and exit code."""

    def __init__(self, message: str, *, code: str = "failed", exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit_code = exit_code


# --- the parser -------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with a per-parser exit code for usage errors (health uses 3, monitoring-plugin style)."""

    usage_exit_code = EXIT_USAGE

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.usage_exit_code, f"{self.prog}: error: {message}\n")


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # The same options on the top-level parser and on every subcommand; the subcommand copies
    # default to SUPPRESS so `shiptrackctl --json status` is not undone by status's own default.
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=default(None),
        help="control socket (default: $SHIPTRACK_SOCKET, else $XDG_RUNTIME_DIR/shiptrackd/control.sock)",
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="print one JSON document on stdout")
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="more detail (and error codes)"
    )
    parser.add_argument("--wide", action="store_true", default=default(False), help="do not truncate table cells")
    parser.add_argument("--debug", action="store_true", default=default(False), help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; cheap (no heavy imports), so `--help` is instant."""
    from .. import __version__

    # Typed as plain ArgumentParser (extensions' register() expects that); subparsers are _Parser
    # all the same, since argparse makes them of the parent's class.
    common: argparse.ArgumentParser = _Parser(add_help=False)
    _common_options(common, suppress=True)
    parser: argparse.ArgumentParser = _Parser(
        prog=PROG,
        description="Steer a running shiptrackd over its control socket.",
        epilog="exit codes: 0 ok, 1 operation failed, 2 usage, 69 daemon unavailable, 75 wait timed out",
    )
    _common_options(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help, description=help)

    p = add("status", "daemon state, loops, the running sync, store size")
    p.set_defaults(handler=command("shiptrackd.ctl.status:_status"))

    p = add("sync", "start a sync and follow it to the end (only due shipments unless --force/--shipments)")
    p.add_argument("--force", action="store_true", help="sync every active shipment, due or not")
    p.add_argument("--shipments", metavar="ID,ID", type=_id_list, help="sync just these shipment ids")
    p.add_argument("--dry-run", action="store_true", help="list what would be synced (with --verbose: and why)")
    p.add_argument("--stats", action="store_true", help="show sync statistics instead (same as `stats`)")
    p.add_argument("--no-wait", action="store_true", help="print the run id and return at once")
    p.add_argument("--wait", action="store_true", help=argparse.SUPPRESS)  # the default; accepted for scripts
    p.add_argument(
        "--timeout",
        metavar="DURATION",
        type=parse_duration,
        help="stop waiting after this long (e.g. 90s, 5m) and exit 75; the run goes on in the daemon",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on a partial run too (some shipments failed)")
    p.set_defaults(handler=command("shiptrackd.ctl.sync:sync"))

    p = add("stats", "sync statistics: shipments by status and carrier, runs, errors, API figures, forecast")
    p.set_defaults(handler=command("shiptrackd.ctl.status:_stats"))

    p = add("runs", "recent sync runs")
    p.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="how many (default 20)")
    p.set_defaults(handler=command("shiptrackd.ctl.status:_runs"))

    _add_shipments(sub, common)

    p = add("why", "when a shipment will be checked next, and why")
    p.add_argument("id", metavar="ID")
    p.set_defaults(handler=command("shiptrackd.ctl.status:_why"))

    p = add("loops", "list the timer loops, or pause/resume/trigger one")
    loops = p.add_subparsers(dest="loop_action", metavar="ACTION")
    lp = loops.add_parser("list", parents=[common], help="list the loops (the default)")
    for action, text in (
        ("pause", "stop running a loop on its schedule"),
        ("resume", "run a paused loop on its schedule again"),
        ("trigger", "run a loop now"),
    ):
        lp = loops.add_parser(action, parents=[common], help=text, description=text)
        lp.add_argument("name", metavar="NAME", help="sync, force, health or alerts")
    p.set_defaults(handler=command("shiptrackd.ctl.status:_loops"), loop_action="list")

    p = add("reload", "re-read the daemon's configuration; exit 1 (old one kept) if the new one is invalid")
    p.set_defaults(handler=command("shiptrackd.ctl.status:_reload"))

    _register_extensions(sub, common)
    return parser


def _add_shipments(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("shipments", parents=[common], help="add, import, list, show, remove or retrack shipments")
    ship = p.add_subparsers(dest="shipments_action", metavar="ACTION", required=True)
    handler = "shiptrackd.ctl.shipments:"

    sp = ship.add_parser("add", parents=[common], help="track one shipment")
    sp.add_argument("carrier", metavar="CARRIER", help="carrier code, e.g. ups, fedex, usps")
    sp.add_argument("tracking", metavar="TRACKING", help="tracking number")
    sp.add_argument("--reference", default="", help="your own reference (order number, ...)")
    sp.set_defaults(handler=command(handler + "add"))

    sp = ship.add_parser(
        "import",
        parents=[common],
        help="track many shipments from a CSV (header row) or JSON-lines file; - reads stdin",
        description="CSV needs a header naming carrier_code and tracking_number (reference optional); JSON lines "
        "carry the same fields. Invalid lines are reported by line number; exit 1 if any.",
    )
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--format", choices=("csv", "jsonl"), help="skip detection (by extension, then content)")
    sp.set_defaults(handler=command(handler + "import_file"))

    sp = ship.add_parser("list", parents=[common], help="list shipments, a page at a time (--all: every page)")
    sp.add_argument("--status", help="status code: IT, DE, EX, NY, ... or none")
    sp.add_argument("--carrier", help="carrier code")
    sp.add_argument("--search", metavar="Q", help="an id, or the start of a tracking number or reference")
    sp.add_argument("--active", action=argparse.BooleanOptionalAction, default=None, help="only (in)active ones")
    sp.add_argument("--limit", type=_page_size, default=100, metavar="N", help="rows per page, 1-1000 (default 100)")
    sp.add_argument("--cursor", help="continue after this id (printed at the end of a page)")
    sp.add_argument("--all", action="store_true", help="walk every page")
    sp.set_defaults(handler=command(handler + "list_"))

    for action, text in (
        ("show", "one shipment with its event timeline"),
        ("remove", "stop tracking a shipment and forget its history"),
        ("retrack", "put an expired or delivered shipment back into the schedule, due now"),
    ):
        sp = ship.add_parser(action, parents=[common], help=text, description=text)
        sp.add_argument("id", metavar="ID")
        sp.set_defaults(handler=command(handler + action))


def _register_extensions(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The health/alert/silence commands from shiptrackd.ctl_health, when that module exists."""
    import importlib

    name = f"{__package__}.health"
    try:
        ctl_health = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # ctl_health exists but imports something missing: a bug to show, not to hide
        return
    ctl_health.register(sub, common)


# --- argument types ---------------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in "90s", "5m", "1h30m", "250ms" or a bare number of seconds (an argparse type)."""
    import re

    cleaned = text.strip().lower()
    try:
        seconds = float(cleaned)
    except ValueError:
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", cleaned)
        if not parts or "".join(n + u for n, u in parts) != cleaned:
            raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 5m or 1h30m") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be positive")
    return seconds


def _id_list(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("name at least one shipment id, e.g. --shipments=ship_123,ship_456")
    return list(dict.fromkeys(ids))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _page_size(text: str) -> int:
    value = _positive_int(text)
    if value > 1000:
        raise argparse.ArgumentTypeError("at most 1000 rows per page")
    return value


# --- running a command: one place maps failures to messages and exit codes --------------------


def output(args: argparse.Namespace) -> Output:
    """The command's `ctl_render.Output` (made once per invocation, from --json/--wide/--verbose)."""
    cached = getattr(args, "_output", None)
    if cached is None:
        from .render import Output

        cached = Output.for_args(args)
        args._output = cached
    return cached


def command(
    target: CommandFn | str, *, unavailable_exit: int = EXIT_UNAVAILABLE
) -> Callable[[argparse.Namespace], int]:
    """
    A parser handler for `async def fn(client, args) -> int | None`: `handler(args)` runs it through run().

    *target* is the function or a "module:function" string imported only when the command runs.
    """

    def handler(args: argparse.Namespace) -> int:
        fn = target
        if isinstance(fn, str):
            import importlib

            module, _, name = fn.partition(":")
            fn = getattr(importlib.import_module(module), name)
        return run(fn, args, unavailable_exit=unavailable_exit)

    return handler


def run(coro_fn: CommandFn, args: argparse.Namespace, *, unavailable_exit: int = EXIT_UNAVAILABLE) -> int:
    """
    Run `await coro_fn(client, args)` with an ApiClient on `args.socket` and return the exit code.

    DaemonUnavailableError (and an HTTP 503) -> *unavailable_exit* (69) with a line naming the
    socket and `systemctl status shiptrackd`; ApiError -> 1 with the daemon's message (its code
    too with --verbose); CtlError -> its own code; Ctrl-C -> 130; anything else -> 1, with the
    traceback under --debug. Errors go to stderr (as JSON under --json); stdout stays empty.
    """
    import anyio

    from ..api.client import ApiClient

    where: list[object] = []  # the socket path the client resolved, for error messages

    async def main() -> int | None:
        async with ApiClient(getattr(args, "socket", None)) as client:
            where.append(client.socket_path)
            return await coro_fn(client, args)

    try:
        result = anyio.run(main, backend="asyncio")
    except KeyboardInterrupt:
        output(args).error("interrupted", "interrupted")
        return EXIT_INTERRUPTED
    except BaseException as exc:  # every failure becomes an exit code here; unknown ones re-raise
        code = _exit_for(_unwrap(exc), args, unavailable_exit, where[0] if where else None)
        if code is None:
            raise
        return code
    return EXIT_OK if result is None else int(result)


def _unwrap(exc: BaseException) -> BaseException:
    """The one real error inside task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, KeyboardInterrupt | SystemExit)] or exc.exceptions
        exc = inner[0]
    return exc


def _exit_for(exc: BaseException, args: argparse.Namespace, unavailable_exit: int, where: object) -> int | None:
    from ..api.client import ApiError
    from ..errors import DaemonUnavailableError

    out = output(args)
    verbose = bool(getattr(args, "verbose", False))
    if isinstance(exc, DaemonUnavailableError) or (isinstance(exc, ApiError) and exc.http_status == 503):
        code, message = getattr(exc, "code", "daemon_unavailable"), getattr(exc, "message", str(exc))
        if code != "permission_denied" and SYSTEMCTL_HINT not in message:
            message = f"{message}.  {SYSTEMCTL_HINT}"
        out.error(code, message, show_code=verbose)
        return unavailable_exit
    if isinstance(exc, ApiError):
        out.error(exc.code, exc.message, show_code=verbose)
        return EXIT_FAILURE
    if isinstance(exc, CtlError):
        out.error(exc.code, exc.message, show_code=verbose)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        out.error("interrupted", "interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):  # `shiptrackctl runs | head -1`: the reader left, nothing to report
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail
        return EXIT_FAILURE
    if isinstance(exc, Exception):
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        hint = "" if getattr(args, "debug", False) else " (--debug shows the traceback)"
        out.error("internal", f"internal error: {type(exc).__name__}: {exc}{hint}")
        return EXIT_FAILURE
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the console script: a fresh process of our own
        _skip_unused_imports()
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def _skip_unused_imports() -> None:
    """
    Keep the client's import lean: about 200 ms of every command's start-up.

    With rich/click/pygments installed (Textual brings them) httpx imports its own command
    line (`httpx._main`, ~150 ms), and with h2 installed (hypercorn brings it) httpcore
    imports HTTP/2 support (~60 ms). shiptrackctl speaks HTTP/1.1 over a Unix socket and uses
    neither, so mark both absent; httpx and httpcore import them under `except ImportError`.
    Never done in a process that has already loaded them (tests, the TUI).
    """
    if "httpx" in sys.modules or "h2" in sys.modules:
        return
    # typeshed types sys.modules as dict[str, ModuleType], but None there is how the import system marks
    # a module absent (import raises ImportError): the ignores are for that.
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    sys.modules["h2"] = None  # type: ignore[assignment]


if __name__ == "__main__":
    sys.exit(main())
