"""
shiptrackctl's entry point: the options every command takes, the command tree, and `main()`.

The tree is built by calling each command group's `register(subparsers, common)` in a fixed
order; a group adds its commands with `subparsers.add_parser(name, parents=[common], ...)` and
sets `handler=command(fn)` to one of its own public `async def fn(client, args) -> int | None`.
The plumbing (exit codes, errors, output, running a command) is in runner.py; nothing in ctl
imports this module back.

Start-up cost matters (`shiptrackctl --help` < 0.1 s, bench/bench_cli.py): every module the
tree loads imports only the stdlib at its top; the API client and anyio load when a command runs.
"""

from __future__ import annotations

import argparse
import sys

from . import alerts, backup, completion, health, outbound, shipments, status, store, sync, webhooks
from .runner import PROG, CtlParser, UsageError

# The order of `shiptrackctl --help`'s command list.
GROUPS = (status, sync, shipments, health, alerts, webhooks, outbound, backup, store, completion)


def add_common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--socket, --json, --verbose, --wide, --debug: on the top-level parser and on every subcommand.

    The subcommand copies default to SUPPRESS so `shiptrackctl --json status` is not undone by
    status's own default.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=default(None),
        help="control socket (default: $SHIPTRACK_SOCKET, then /run/shiptrackd/control.sock if it exists,"
        " then $XDG_RUNTIME_DIR/shiptrackd/control.sock)",
    ).complete = completion.FILE  # type: ignore[attr-defined]  # shtab reads this attribute
    parser.add_argument("--json", action="store_true", default=default(False), help="print one JSON document on stdout")
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="more detail (and error codes)"
    )
    parser.add_argument("--wide", action="store_true", default=default(False), help="do not truncate table cells")
    parser.add_argument("--debug", action="store_true", default=default(False), help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; cheap (no heavy imports), so `--help` is instant."""
    from .. import __version__

    # Typed as plain ArgumentParser (what register() expects); subparsers are CtlParser all the
    # same, since argparse makes them of the parent's class.
    common: argparse.ArgumentParser = CtlParser(add_help=False)
    add_common_options(common, suppress=True)
    parser: argparse.ArgumentParser = CtlParser(
        prog=PROG,
        description="Steer a running shiptrackd over its control socket.",
        epilog="exit codes: 0 ok, 1 operation failed, 2 usage, 69 daemon unavailable, 75 wait timed out"
        " (health: 0 ok, 1 warning, 2 critical, 3 unknown)",
    )
    add_common_options(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub, common)
    # Commands that describe the CLI itself (completion) need the whole tree, which no group can import.
    parser.set_defaults(root_parser=parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse *argv* (default: the process's arguments) and run the chosen command; returns the exit code."""
    if argv is None:  # the console script: a fresh process of our own
        skip_unused_imports()
        argv = sys.argv[1:]
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        options = argv[: argv.index("--")] if "--" in argv else argv
        return exc.report(json_mode="--json" in options)
    return int(args.handler(args))


def skip_unused_imports() -> None:
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
