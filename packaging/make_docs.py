"""
Build shiptrackctl's man page and shell completions from its argparse tree: a packaging step.

    uv run python packaging/make_docs.py OUTDIR

writes OUTDIR/shiptrackctl.1 (argparse-manpage, a dev dependency), OUTDIR/shiptrackctl.bash and
OUTDIR/_shiptrackctl (zsh; shtab, which `shiptrackctl completion bash|zsh` also uses at run time).
Generated, not committed: the tree is the one source, so the page cannot fall behind a new option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shiptrackd import __version__
from shiptrackd.ctl.completion import script
from shiptrackd.ctl.main import build_parser

FILES = {"shiptrackctl.bash": "bash", "_shiptrackctl": "zsh"}


def manpage(parser: argparse.ArgumentParser) -> str:
    """The roff source of shiptrackctl(1)."""
    from argparse_manpage.manpage import Manpage  # type: ignore[import-untyped]

    page = Manpage(
        parser,
        {
            "project_name": "shiptrackd",
            "version": __version__,
            "manual_title": "shiptrackd manual",
            "description": "steer a running shiptrackd over its control socket",
        },
    )
    return str(page)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    parser = build_parser()
    (out / "shiptrackctl.1").write_text(manpage(parser))
    for name, shell in FILES.items():
        (out / name).write_text(script(parser, shell))
    print(f"wrote {', '.join(['shiptrackctl.1', *FILES])} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
