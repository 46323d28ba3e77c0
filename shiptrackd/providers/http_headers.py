"""
Case-insensitive header lookup for webhook verifiers, whatever shape the receiver hands headers in.

HTTP header names are case-insensitive, and HTTP/2 and many proxies lower-case them; EasyPost's
own SDK once missed `x-hmac-signature` for that reason (reference/webhooks.md §1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def header(headers: Headers, name: str) -> str | None:
    """The first header called *name*, whatever its case; None if absent."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    for key, value in pairs:
        if key.lower() == wanted:
            return value
    return None
