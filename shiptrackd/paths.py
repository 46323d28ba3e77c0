"""
Where shiptrackd's files go by default: the state directory and the control socket.

One resolver for the socket, shared by the daemon (where to bind), shiptrackctl and the console
(where to connect), so an installed daemon and its clients agree without `--socket`.
Stdlib only: shiptrackctl imports it for every command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SOCKET_ENV = "SHIPTRACK_SOCKET"  # the clients' variable; the daemon's own setting is SHIPTRACK_DAEMON__SOCKET
DAEMON_SOCKET_ENV = "SHIPTRACK_DAEMON__SOCKET"
# Where packaging/shiptrackd.service puts the socket (RuntimeDirectory=shiptrackd).
SYSTEM_SOCKET = Path("/run/shiptrackd/control.sock")
SOCKET_NAME = "control.sock"


def absolute(text: str) -> Path | None:
    """*text* as a Path if it is absolute, else None (XDG: relative values are to be ignored)."""
    path = Path(text)
    return path if text and path.is_absolute() else None


def default_state_dir(env: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME/shiptrackd, else ~/.local/state/shiptrackd, else ./.shiptrackd."""
    if xdg := absolute(env.get("XDG_STATE_HOME", "")):
        return xdg / "shiptrackd"
    if home := absolute(env.get("HOME", "")):
        return home / ".local" / "state" / "shiptrackd"
    return Path.cwd() / ".shiptrackd"


def user_socket(env: Mapping[str, str], state_dir: Path | None = None) -> Path:
    """
    The socket of a daemon run by this user with no socket configured (the daemon binds here).

    $XDG_RUNTIME_DIR/shiptrackd/control.sock, else <state_dir>/control.sock (default state dir if None).
    """
    if runtime := absolute(env.get("XDG_RUNTIME_DIR", "")):
        return runtime / "shiptrackd" / SOCKET_NAME
    return (default_state_dir(env) if state_dir is None else state_dir) / SOCKET_NAME


def default_socket(env: Mapping[str, str] | None = None, *, system_socket: Path | None = None) -> Path:
    """
    The socket a client connects to when not told (`--socket`).

    1. $SHIPTRACK_SOCKET, else $SHIPTRACK_DAEMON__SOCKET (a daemon's own setting, when shared);
    2. the installed daemon's socket, /run/shiptrackd/control.sock, if it exists;
    3. this user's daemon: user_socket().
    *system_socket* (default SYSTEM_SOCKET, read at call time) is a seam for tests.
    """
    env = os.environ if env is None else env
    system_socket = SYSTEM_SOCKET if system_socket is None else system_socket
    for name in (SOCKET_ENV, DAEMON_SOCKET_ENV):
        if env.get(name):
            return Path(env[name])
    if system_socket.exists():
        return system_socket
    return user_socket(env)
