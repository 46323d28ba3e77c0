"""
The plumbing every shiptrackctl command group shares: exit codes, CtlError, the parser class,
`output(args)` and `command()`/`run()`, which open the client and map failures to exit codes.

Imports no command group (groups import this), and nothing but argparse/sys at the top:
`shiptrackctl --help` builds the whole tree and must stay under 0.1 s (bench/bench_cli.py).

Exit codes: 0 success · 1 the operation failed (an API error, a failed run, invalid import
lines) · 2 usage error · 69 the daemon cannot be reached (or answered 503) · 75 `sync
--timeout` expired while the run goes on in the daemon · 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from ..wire.names import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up time is a feature here
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any, NoReturn, TypeAlias

    from ..api.client import ApiClient
    from .render import Output

    CommandFn: TypeAlias = Callable[[ApiClient, argparse.Namespace], Awaitable[int | None]]
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


PROG = "shiptrackctl"
SYSTEMCTL_HINT = "systemctl status shiptrackd"


class CtlError(Exception):
    """A command failed in a way the CLI itself detected: message, machine code and exit code."""

    def __init__(self, message: str, *, code: str = "failed", exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit_code = exit_code


class UsageError(Exception):
    """
    Bad arguments, raised by CtlParser.error() instead of exiting, so that main(), which knows
    whether --json was asked for, reports them: usage and message on stderr, and on stdout
    `{"error": {"code": "usage", "message"}}` under --json, else a plugin's status line if it has one.
    """

    def __init__(self, message: str, *, usage: str, exit_code: int, status_line: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage
        self.exit_code = exit_code
        self.status_line = status_line

    def report(self, *, json_mode: bool) -> int:
        """Print the error where it belongs and return the exit code."""
        sys.stderr.write(f"{self.usage}{self.message}\n")
        if json_mode:
            import json

            print(json.dumps({"error": {"code": "usage", "message": self.message}}))
        elif self.status_line is not None:
            print(self.status_line)
        return self.exit_code


class CtlParser(argparse.ArgumentParser):
    """
    argparse with: a per-parser exit code for usage errors (health uses 3, monitoring-plugin style),
    an optional status line on stdout for them, and "did you mean" for a mistyped subcommand.
    """

    usage_exit_code = EXIT_USAGE
    usage_status_line: Callable[[str], str] | None = None  # message -> the one line a plugin prints
    commands: argparse._SubParsersAction[argparse.ArgumentParser] | None = None

    def add_subparsers(self, **kwargs: Any) -> Any:
        """As argparse's, remembering the action so error() can suggest a command name."""
        self.commands = super().add_subparsers(**kwargs)
        return self.commands

    def error(self, message: str) -> NoReturn:
        message = f"{message}{self.suggestion(message)}"
        raise UsageError(
            f"{self.prog}: error: {message}",
            usage=self.format_usage(),
            exit_code=self.usage_exit_code,
            status_line=None if self.usage_status_line is None else self.usage_status_line(message),
        )

    def suggestion(self, message: str) -> str:
        """ "; did you mean 'status'?" when *message* says a subcommand name is not one of ours."""
        import re

        action = self.commands
        if action is None or not message.startswith(f"argument {action.metavar or action.dest}:"):
            return ""
        m = re.search(r"invalid choice: '([^']*)'", message)
        if m is None:
            return ""
        import difflib

        close = difflib.get_close_matches(m[1], list(action.choices or ()), n=3, cutoff=0.6)
        return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def plugin_usage(parser: argparse.ArgumentParser, *, exit_code: int, status_line: Callable[[str], str]) -> None:
    """Make *parser*'s usage errors exit *exit_code* with *status_line(message)* on stdout (a monitoring plugin)."""
    if not isinstance(parser, CtlParser):
        raise TypeError(f"{parser.prog}: a CtlParser is needed for plugin usage errors")
    parser.usage_exit_code = exit_code
    parser.usage_status_line = status_line


def output(args: argparse.Namespace) -> Output:
    """The command's `render.Output` (made once per invocation, from --json/--wide/--verbose)."""
    cached = getattr(args, "_output", None)
    if cached is None:
        from .render import Output

        cached = Output.for_args(args)
        args._output = cached
    return cached


def command(fn: CommandFn, *, unavailable_exit: int = EXIT_UNAVAILABLE) -> Callable[[argparse.Namespace], int]:
    """A parser handler for `async def fn(client, args) -> int | None`: `handler(args)` runs it through run()."""

    import functools  # already loaded by argparse's own imports

    def handler(args: argparse.Namespace) -> int:
        return run(fn, args, unavailable_exit=unavailable_exit)

    return functools.update_wrapper(handler, fn)  # handler.__wrapped__ names the command, for tests and tools


def run(coro_fn: CommandFn, args: argparse.Namespace, *, unavailable_exit: int = EXIT_UNAVAILABLE) -> int:
    """
    Run `await coro_fn(client, args)` with an ApiClient on `args.socket` and return the exit code.

    DaemonUnavailableError (and an HTTP 503) -> *unavailable_exit* (69) with a line naming the
    socket and `systemctl status shiptrackd`; ApiError -> 1 with the daemon's message (its code
    too with --verbose); CtlError -> its own code; Ctrl-C -> 130; anything else -> 1, with the
    traceback under --debug. Errors go to stderr (and as JSON on stdout under --json).
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
        code = _exit_for(_unwrap(exc), args, unavailable_exit)
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


def _exit_for(exc: BaseException, args: argparse.Namespace, unavailable_exit: int) -> int | None:
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
