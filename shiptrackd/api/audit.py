"""
The audit line: every control call that changes something is logged once, at INFO, saying what.

On call an operator greps `audit:` to see who paused a loop or removed shipments and when.
The fields are bound too (`action`, `peer`, and what changed), so JSON logs carry them as keys.

Who called: on TCP the scope's client address. On the Unix socket the caller's uid/pid would
come from SO_PEERCRED, but hypercorn (0.18) neither exposes the connection's socket nor its
transport to the ASGI app (its scope has `client: None` for AF_UNIX), so the line says
`peer=unix` and the socket's file mode (0660, group shiptrack) is what limits who that was.
"""

from __future__ import annotations

from typing import Any

from loguru import logger


def peer(scope: Any) -> str:
    """Who sent the request, as far as the server tells us ("-" for no request: a signal, the daemon itself)."""
    if scope is None:
        return "-"
    client = scope.get("client") if isinstance(scope, dict) else None
    if isinstance(client, list | tuple) and len(client) == 2:
        return f"{client[0]}:{client[1]}"
    creds = (scope.get("extensions") or {}).get("peercred") if isinstance(scope, dict) else None
    if isinstance(creds, dict):  # a server that passes SO_PEERCRED on (none does today)
        return f"uid={creds.get('uid')} pid={creds.get('pid')}"
    return "unix"


def audit(scope: Any, action: str, **changed: Any) -> None:
    """Log one audit line: `audit: <action> k=v ...`, with the same facts as bound fields."""
    who = peer(scope)
    details = " ".join(f"{key}={_short(value)}" for key, value in changed.items())
    logger.bind(audit=action, peer=who, **changed).info(
        "audit: {}{} peer={}", action, f" {details}" if details else "", who
    )


def _short(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return text if len(text) <= 120 else text[:117] + "..."
