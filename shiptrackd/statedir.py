"""
The daemon's own directories: checked before anything starts, created private, and locked.

`check_paths` is what `--check-config` can say without changing anything (a state_dir under a
regular file, inside /proc, or not writable; a socket whose directory is missing and is not ours
to create: ours are state_dir, $XDG_RUNTIME_DIR/shiptrackd and /run/shiptrackd). `prepare_paths`
runs those checks and creates what may be created: state_dir 0700 and the socket's own
directory; `create_private` makes the store file 0600 just before the store opens it.
`StateDirLock` makes a second daemon on the same state directory exit before it touches the
store (it used to mark the first one's live run interrupted, and both synced).

Failures are ConfigError (exit 78, one line) except a held lock, which is StateDirLockedError
(exit 1): the configuration is fine, the directory is busy, and a restart once the other
process has gone succeeds.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from .config import Config
from .errors import ConfigError, ShiptrackError
from .paths import SYSTEM_SOCKET, user_socket

LOCK_FILE = "shiptrackd.lock"
# Pseudo-filesystems: writing state there fails late, or worse, does something.
_PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


class StateDirLockedError(ShiptrackError):
    """Another process holds the state directory's lock; the message names its pid. Exit 1, retry later."""

    code = "state_dir_locked"
    http_status = 409


def _nearest_existing(path: Path) -> Path:
    """*path* itself or its closest ancestor that exists (lstat, so a dangling symlink counts)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path("/")


def _under_pseudo_fs(path: Path) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == root or root in real.parents for root in _PSEUDO_ROOTS)


def check_state_dir(state_dir: Path, key: str = "daemon.state_dir") -> None:
    """
    Raise ConfigError (naming *key*) if the directory *state_dir* cannot be used.

    An existing one must be a writable directory. A missing one must not be under a regular file
    or on a pseudo-filesystem; whether this user could create it is left to the start
    (prepare_paths), because under systemd StateDirectory=/RuntimeDirectory= create it as root,
    and `--check-config` run as the service user before the first start must still pass.
    """
    shown = f'{key} = "{state_dir}"'
    if _under_pseudo_fs(_nearest_existing(state_dir)) or _under_pseudo_fs(state_dir):
        raise ConfigError(f"{shown}: is on a pseudo-filesystem (/proc, /sys, /dev); expected a real directory")
    existing = _nearest_existing(state_dir)
    try:
        mode = os.stat(existing).st_mode
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot inspect {existing} ({exc.strerror}); expected a directory") from None
    if not stat.S_ISDIR(mode):
        where = "is" if existing == state_dir else f"is under {existing}, which is"
        raise ConfigError(f"{shown}: {where} not a directory; expected a directory the daemon can write")
    if existing == state_dir and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{shown}: is not writable by this user (uid {os.getuid()}); expected a writable directory")


def _own_socket_dirs(config: Config, env: Mapping[str, str]) -> set[Path]:
    """The directories the daemon may create for its socket: state_dir, its user runtime dir, /run/shiptrackd."""
    return {config.daemon.state_dir, user_socket(env, config.daemon.state_dir).parent, SYSTEM_SOCKET.parent}


def check_socket_dir(config: Config, env: Mapping[str, str]) -> None:
    """A socket's directory must exist, unless it is the daemon's own (state_dir or the default runtime dir)."""
    socket = config.daemon.socket
    parent = Path(os.path.abspath(socket)).parent
    shown = f'daemon.socket = "{socket}"'
    if os.path.lexists(parent):
        if not parent.is_dir():
            raise ConfigError(f"{shown}: {parent} is not a directory; expected the socket in an existing directory")
        return
    if parent in _own_socket_dirs(config, env):
        if parent != config.daemon.state_dir:
            check_state_dir(parent, "daemon.socket's directory")  # not under a file or in /proc
        return
    raise ConfigError(
        f"{shown}: the directory {parent} does not exist; expected an existing directory "
        "(only the daemon's own runtime directory or state_dir is created)"
    )


def check_paths(config: Config, env: Mapping[str, str] | None = None) -> None:
    """Every filesystem check that needs no change to the system: what --check-config adds to load()."""
    env = os.environ if env is None else env
    check_state_dir(config.daemon.state_dir)
    check_socket_dir(config, env)


def prepare_paths(config: Config, env: Mapping[str, str] | None = None) -> None:
    """
    Check, then create state_dir (0700) and the socket's own directory.

    Modes are set explicitly, not left to the umask: outside systemd the umask is often 022,
    which made the state dir 0755 (issue 9 item 11). Existing directories keep their modes: the
    operator may have chosen them. The store file is create_private()'s, just before it opens.
    """
    env = os.environ if env is None else env
    check_paths(config, env)
    state_dir = config.daemon.state_dir
    try:
        if not state_dir.is_dir():
            # Missing parents follow the umask (077 under `shiptrackd`, see __main__); the leaf is
            # chmod'ed because makedirs' mode is filtered by the umask too.
            os.makedirs(state_dir, mode=0o700, exist_ok=True)
            os.chmod(state_dir, 0o700)
        parent = Path(os.path.abspath(config.daemon.socket)).parent
        if not parent.exists():  # check_paths allowed it: our own runtime directory
            os.makedirs(parent.parent, mode=0o700, exist_ok=True)  # $XDG_RUNTIME_DIR is 0700 by spec
            parent.mkdir(mode=0o750)  # group may reach the socket when socket_mode allows it
    except OSError as exc:
        what = exc.filename or state_dir
        raise ConfigError(
            f'daemon.state_dir = "{state_dir}": cannot create {what} ({exc.strerror or exc}); '
            "expected a directory the daemon can write"
        ) from None


def create_private(path: Path) -> None:
    """
    Create *path* empty with mode 0600 if it does not exist (an existing file keeps its mode).

    For the store: SQLite creates a missing database with 0644 & ~umask (0644 from a shell with
    umask 022), and gives its -wal and -shm files the database file's mode.
    """
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError as exc:
        raise ConfigError(
            f'daemon.state_dir = "{path.parent}": cannot create {path.name} ({exc.strerror or exc}); '
            "expected a directory the daemon can write"
        ) from None


class StateDirLock:
    """
    An exclusive flock on <state_dir>/shiptrackd.lock, holding this process's pid, for the daemon's life.

    flock locks belong to the open file description, so the kernel drops the lock when the process
    dies however it dies (kill -9 included); the file is left in place, as unlinking it would race
    with the next daemon. Re-entrant within one process: `--demo` takes it before seeding the store
    and the Daemon takes it again at start.
    """

    _held: dict[Path, tuple[int, int]] = {}  # state_dir -> (fd, holders) in this process

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(os.path.abspath(state_dir))
        self.path = self.state_dir / LOCK_FILE

    def acquire(self) -> None:
        """Take the lock or raise StateDirLockedError naming the holder's pid."""
        held = self._held.get(self.state_dir)
        if held is not None:
            self._held[self.state_dir] = (held[0], held[1] + 1)
            return
        shown = f'daemon.state_dir = "{self.state_dir}"'
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"{shown}: cannot open {self.path} ({exc.strerror}); expected a writable directory"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(f"{shown}: cannot lock {self.path} ({exc.strerror})") from None
            raise StateDirLockedError(
                f"another shiptrackd (pid {holder}) is using the state directory {self.state_dir}; refusing to start"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._held[self.state_dir] = (fd, 1)

    def release(self) -> None:
        held = self._held.get(self.state_dir)
        if held is None:
            return
        fd, holders = held
        if holders > 1:
            self._held[self.state_dir] = (fd, holders - 1)
            return
        del self._held[self.state_dir]
        os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
