"""
`shiptrackctl completion bash|zsh`: a shell completion script generated from the command tree.

shtab walks the same argparse tree that parses the command line, so a new command or option
completes as soon as it is registered. The man page comes from the same tree at build time
(packaging/make_docs.py, argparse-manpage).
"""

from __future__ import annotations

import argparse
import sys

from ..wire.names import EXIT_OK

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from .runner import Subparsers

SHELLS = ("bash", "zsh")
# shtab.FILE, written out so building the tree does not import shtab: an argument naming a file.
FILE = {"bash": "_shtab_compgen_files", "zsh": "_files"}


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add completion to shiptrackctl's command tree."""
    text = 'print a shell completion script: eval "$(shiptrackctl completion bash)", or save it'
    p = sub.add_parser(
        "completion",
        help=text,
        description=text + " (bash: /etc/bash_completion.d/shiptrackctl;"
        " zsh: a file _shiptrackctl in a directory on $fpath)",
    )
    p.add_argument("shell", choices=SHELLS, help="the shell to complete for")
    p.set_defaults(handler=completion)


def completion(args: argparse.Namespace) -> int:
    """Print the script for args.shell on stdout (no daemon needed)."""
    sys.stdout.write(script(args.root_parser, args.shell))
    return EXIT_OK


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for *shell* of the tree under *parser*."""
    import shtab

    return shtab.complete(parser, shell=shell)
