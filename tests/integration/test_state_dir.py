"""
The state directory as real daemon processes use it: one daemon per directory (an flock naming the
holder's pid), and private files (0700 directory, 0600 store and lock) whatever the caller's umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from test_lifecycle import daemon_env, daemon_process

from shiptrackd.api.client import ApiClient
from shiptrackd.errors import ConfigError
from shiptrackd.sandbox import Sandbox
from shiptrackd.statedir import LOCK_FILE, StateDirLock, StateDirLockedError, create_private, prepare_paths

pytestmark = pytest.mark.anyio


async def test_a_second_daemon_on_the_same_state_dir_exits_1_naming_the_first(
    short_tmp: Path, tmp_path: Path, sandbox: Sandbox
) -> None:
    """A second daemon on the same state dir (another socket) exits 1 naming the first's pid, before the store."""
    # HANG never answers: the first daemon's run stays in flight, with no timing involved.
    env = daemon_env(short_tmp, sandbox.base_url, SHIPTRACK_PROVIDER__TIMEOUT="1m")
    other_socket = tmp_path / "b.sock"
    async with daemon_process(env, tmp_path / "first.log") as first:
        await first.wait_ready()
        async with ApiClient(first.socket) as client:
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZHANG000042"}])
            run_id = (await client.sync(force=True)).run_id
            assert (await client.run(run_id)).outcome == "running"

            second_env = {**env, "SHIPTRACK_DAEMON__SOCKET": str(other_socket)}
            async with daemon_process(second_env, tmp_path / "second.log") as second:
                assert await second.wait() == 1
            message = second.output()
            assert f"pid {first.process.pid}" in message and str(short_tmp) in message
            assert "Traceback" not in message and message.count("\n") == 1
            assert not other_socket.exists()  # it never got as far as the socket

            assert first.running
            assert (await client.status()).state == "running"
            assert (await client.run(run_id)).outcome == "running"  # the live run was not marked interrupted
        assert await first.stop() == 0
    assert (short_tmp / LOCK_FILE).read_text().strip() == str(first.process.pid)


async def test_the_lock_is_released_when_the_daemon_dies(short_tmp: Path, tmp_path: Path, sandbox: Sandbox) -> None:
    """The lock dies with its process (kill -9 included): a daemon started afterwards takes it."""
    env = daemon_env(short_tmp, sandbox.base_url)
    async with daemon_process(env, tmp_path / "first.log") as first:
        await first.wait_ready()
        first.process.kill()
        await first.wait()
    with StateDirLock(short_tmp):
        assert (short_tmp / LOCK_FILE).read_text().strip() == str(os.getpid())


async def test_files_the_daemon_creates_are_private(short_tmp: Path, tmp_path: Path, sandbox: Sandbox) -> None:
    """Started with umask 022, the daemon still creates its state dir 0700 and store, WAL and lock 0600."""
    state_dir = short_tmp / "state"
    env = daemon_env(state_dir, sandbox.base_url, SHIPTRACK_DAEMON__SOCKET=str(short_tmp / "ctl.sock"))
    old = os.umask(0o022)  # the subprocess inherits it, as from an operator's shell
    try:
        async with daemon_process(env, tmp_path / "log") as daemon:
            await daemon.wait_ready()
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state_dir.iterdir()}
            assert await daemon.stop() == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert modes["shiptrackd.db"] == 0o600
    assert modes[LOCK_FILE] == 0o600
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes  # -wal and -shm too


def test_prepare_paths_sets_modes_without_the_umask(short_tmp: Path) -> None:
    """In-process too (no __main__ umask), the state dir is 0700 and the store file 0600."""
    from conftest import daemon_config

    config = daemon_config(short_tmp / "state", "http://127.0.0.1:9")
    old = os.umask(0o022)
    try:
        prepare_paths(config)
        create_private(short_tmp / "state" / "shiptrackd.db")
    finally:
        os.umask(old)
    assert stat.S_IMODE((short_tmp / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((short_tmp / "state" / "shiptrackd.db").stat().st_mode) == 0o600


def test_the_lock_is_reentrant_in_one_process_and_exclusive_across_descriptions(short_tmp: Path) -> None:
    """`--demo` and the Daemon share the lock in one process; a fresh open of the lock file is refused."""
    import fcntl

    with StateDirLock(short_tmp), StateDirLock(short_tmp):
        fd = os.open(short_tmp / LOCK_FILE, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    with StateDirLock(short_tmp):  # released when the last holder left
        pass


def test_lock_errors_are_typed(short_tmp: Path) -> None:
    """A held lock is StateDirLockedError (exit 1); a state dir that cannot hold a lock file is a ConfigError (78)."""
    import fcntl

    fd = os.open(short_tmp / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"4242\n")
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: as another process would
        with pytest.raises(StateDirLockedError, match=r"pid 4242"):
            StateDirLock(short_tmp).acquire()
    finally:
        os.close(fd)
    with pytest.raises(ConfigError, match=r"daemon\.state_dir"):
        StateDirLock(short_tmp / "missing").acquire()
