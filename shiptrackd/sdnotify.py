"""
sd_notify(3) in a few lines: one non-blocking datagram per message.

Non-blocking because a unix datagram queue holds about ten messages; a blocking
send to a slow PID 1 would freeze the event loop (reference/libraries.md §9).
"""

from __future__ import annotations

import os
import socket
import time


def notify(*fields: str) -> bool:
    """Send `KEY=VALUE` fields to $NOTIFY_SOCKET; False (never an exception) when not under systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto("\n".join(fields).encode(), socket.MSG_DONTWAIT, address)
        except OSError:
            return False
    return True


def reloading_fields() -> tuple[str, str]:
    """RELOADING=1 with the monotonic timestamp systemd >= 253 wants in the same datagram."""
    return "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_interval_s() -> float | None:
    """Half of WATCHDOG_USEC when the watchdog is meant for this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None


async def watchdog() -> None:
    """Ping systemd from the event loop itself, so a blocked loop trips the watchdog."""
    import anyio  # here, not at the top: this module stays importable without the event loop's libraries

    interval = watchdog_interval_s()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await anyio.sleep(interval)
