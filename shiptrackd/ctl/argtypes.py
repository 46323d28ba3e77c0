"""
argparse `type=` functions shared by the command groups: durations, id lists, counts.

Each raises argparse.ArgumentTypeError with a message that says what would be accepted.
Stdlib only at the top: these are referenced while the parser is built (`--help`).
"""

from __future__ import annotations

import argparse


def parse_duration(text: str) -> float:
    """
    Seconds in any duration the daemon's config accepts ("90s", "5m", "1h30m", "1h 30m", "90min",
    "1w", "250ms", a bare number of seconds), and positive.

    One grammar with config: shiptrackd.units does the work (stdlib only, but still imported
    only when a duration argument is given, so `--help` never pays for it).
    """
    from ..units import DURATION_HINT
    from ..units import parse_duration as parse

    try:
        seconds = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {DURATION_HINT}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be positive")
    return seconds


def id_list(text: str) -> list[str]:
    """Comma-separated shipment ids, blanks and repeats dropped, order kept."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("name at least one shipment id, e.g. --shipments=ship_123,ship_456")
    return list(dict.fromkeys(ids))


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def page_size(text: str) -> int:
    """Rows per page of `shipments list`: 1 to 1000, the API's bounds."""
    value = positive_int(text)
    if value > 1000:
        raise argparse.ArgumentTypeError("at most 1000 rows per page")
    return value


def count(text: str) -> int:
    """A whole number of 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value
