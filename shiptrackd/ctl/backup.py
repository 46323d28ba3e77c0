"""
`shiptrackctl backup PATH [--force]`: the daemon copies its own store (it owns the file).

The copy is written by the daemon's user, so PATH must be somewhere that user may write
(under systemd: the state directory, e.g. /var/lib/shiptrackd/backups/); packaging/README.md
has the restore procedure.
"""

from __future__ import annotations

import argparse
import os

from ..wire.names import EXIT_OK
from .runner import command, output

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from ..api.client import ApiClient
    from ..wire import answers as wire
    from .render import Output
    from .runner import Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add backup to shiptrackctl's command tree."""
    text = "have the daemon write a consistent, checked copy of its store to PATH (mode 0600)"
    p = sub.add_parser("backup", parents=[common], help=text, description=text)
    p.add_argument("path", metavar="PATH", help="the backup file; a relative path is made absolute here")
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    p.set_defaults(handler=command(backup))


def absolute(path: str) -> str:
    """*path* as the daemon must see it: its working directory is not ours."""
    return os.path.abspath(os.path.expanduser(path))


async def backup(client: ApiClient, args: argparse.Namespace) -> int:
    doc = await client.backup(absolute(args.path), force=args.force)
    output(args).show(doc, render_backup)
    return EXIT_OK


def render_backup(out: Output, doc: wire.BackupWritten) -> None:
    """The human `backup` line: where, how big, quick_check's verdict and the rows copied."""
    from .render import human_bytes

    tables = ("shipments", "tracking_events", "sync_runs")
    counts = ", ".join(f"{doc.rows.get(t, 0)} {t.replace('_', ' ')}" for t in tables)
    out.line(f"backup written to {doc.path} ({human_bytes(doc.size_bytes)}, quick_check {doc.quick_check}; {counts})")
