"""The one default-socket resolver shared by shiptrackctl, the console and the daemon."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from shiptrackd.config import load
from shiptrackd.ctl.main import build_parser
from shiptrackd.paths import SYSTEM_SOCKET, default_socket, user_socket


@pytest.fixture
def system_socket(tmp_path: Path) -> Path:
    """A stand-in for /run/shiptrackd/control.sock, not yet created."""
    path = tmp_path / "run" / "shiptrackd" / "control.sock"
    path.parent.mkdir(parents=True)
    return path


def _bind(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


def test_shiptrack_socket_wins_over_everything(tmp_path: Path, system_socket: Path) -> None:
    """$SHIPTRACK_SOCKET is used even when the system socket exists."""
    with _bind(system_socket):
        env = {"SHIPTRACK_SOCKET": "/tmp/mine.sock", "XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
        assert default_socket(env, system_socket=system_socket) == Path("/tmp/mine.sock")


def test_an_installed_daemons_socket_is_found_without_configuration(tmp_path: Path, system_socket: Path) -> None:
    """With no $SHIPTRACK_SOCKET, an existing /run/shiptrackd/control.sock comes before the user's runtime dir."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
    with _bind(system_socket):
        assert default_socket(env, system_socket=system_socket) == system_socket


def test_without_a_system_socket_the_users_runtime_dir_is_used(tmp_path: Path, system_socket: Path) -> None:
    """No system socket: $XDG_RUNTIME_DIR/shiptrackd/control.sock, else the state dir's control.sock."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg"), "XDG_STATE_HOME": str(tmp_path / "state")}
    assert default_socket(env, system_socket=system_socket) == tmp_path / "xdg" / "shiptrackd" / "control.sock"
    env.pop("XDG_RUNTIME_DIR")
    assert default_socket(env, system_socket=system_socket) == tmp_path / "state" / "shiptrackd" / "control.sock"


def test_the_daemon_binds_where_its_clients_look(short_tmp: Path, system_socket: Path) -> None:
    """The daemon's default socket (no config) is the clients' default when no system socket exists."""
    for env in (
        {"XDG_RUNTIME_DIR": str(short_tmp / "xdg"), "XDG_STATE_HOME": str(short_tmp / "state")},
        {"XDG_STATE_HOME": str(short_tmp / "state"), "HOME": str(short_tmp / "home")},
        {"HOME": str(short_tmp / "home")},
    ):
        config = load(None, env)
        assert config.daemon.socket == default_socket(env, system_socket=system_socket) == user_socket(env)


def test_the_help_text_names_the_resolution_order() -> None:
    """`--socket`'s help says where shiptrackctl looks, system socket included."""
    text = build_parser().format_help()
    assert "$SHIPTRACK_SOCKET" in text and str(SYSTEM_SOCKET) in " ".join(text.split())
