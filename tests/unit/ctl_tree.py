"""Walking shiptrackctl's argparse tree, for the tests that check what is generated from it."""

from __future__ import annotations

import argparse


def command_handlers(
    parser: argparse.ArgumentParser, path: str = "", inherited: object = None
) -> list[tuple[str, object]]:
    """(command path, handler) for every leaf command; a group's handler serves its actions unless they set one."""
    handler = parser.get_default("handler") or inherited
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, handler)]
    return [
        leaf for name, p in subs[0].choices.items() for leaf in command_handlers(p, f"{path} {name}".strip(), handler)
    ]


def command_paths(parser: argparse.ArgumentParser) -> list[str]:
    """Every command path, groups and leaves: "status", "shipments", "shipments add", ..."""
    paths: set[str] = set()
    for leaf, _ in command_handlers(parser):
        words = leaf.split()
        paths.update(" ".join(words[: i + 1]) for i in range(len(words)))
    return sorted(paths)
