"""
An online backup of the store: SQLite's backup API into a private temp file, checked, then renamed.

The copy is taken from a connection of its own in one step (`backup(pages=-1)`): one read
transaction, so it is a consistent snapshot even while the sync engine commits (WAL readers
never block the writer, and the writer never restarts a one-step backup). The status reader
and the writer are left alone, so neither waits for the copy.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConflictError, InvalidRequestError, StoreError
from .db import store_error

TABLES = ("shipments", "tracking_events", "sync_runs", "sync_errors", "health_reports", "alerts")


@dataclass(frozen=True)
class BackupResult:
    path: str
    size_bytes: int
    quick_check: str
    rows: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0


def check_target(target: Path, *, force: bool) -> None:
    """Refuse a relative path, a missing directory, or an existing file without *force*."""
    if not target.is_absolute():
        raise InvalidRequestError(f"backup path must be absolute (the daemon writes it): {str(target)[:200]!r}")
    if not target.parent.is_dir():
        raise InvalidRequestError(f"cannot write a backup into {str(target.parent)[:200]}: no such directory")
    if target.is_dir():
        raise InvalidRequestError(f"{str(target)[:200]} is a directory; name the backup file")
    if (target.exists() or target.is_symlink()) and not force:
        raise ConflictError(f"{str(target)[:200]} already exists; pass --force to overwrite it")


def backup(source: Path, target: Path, *, force: bool = False) -> BackupResult:
    """
    Copy the store at *source* to *target* (blocking: run it in a thread).

    1. Create a temp file beside the target, mode 0600, so no other user ever reads a copy.
    2. Copy the whole database in one backup step; switch the copy to a plain rollback journal,
       so the backup is one self-contained file.
    3. `PRAGMA quick_check` must answer "ok"; count the rows of the main tables.
    4. fsync, then rename into place (no-clobber via link() unless *force*), fsync the directory.
    """
    check_target(target, force=force)
    started = time.monotonic()
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise InvalidRequestError(f"cannot write a backup into {target.parent}: {exc.strerror}") from None
    os.close(fd)
    try:
        rows, check = _copy(source, temp)
        if check != "ok":
            raise StoreError(f"the backup failed its quick_check ({check[:200]}); nothing was written to {target}")
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        _place(temp, target, force=force)
    finally:
        for leftover in (temp, Path(f"{temp}-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return BackupResult(str(target), target.stat().st_size, check, rows, round(time.monotonic() - started, 3))


def _copy(source: Path, temp: Path) -> tuple[dict[str, int], str]:
    try:
        src = sqlite3.connect(source)  # only read: the backup API never writes its source
        dst = sqlite3.connect(temp, isolation_level=None)
        try:
            src.execute("PRAGMA busy_timeout=5000")
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")
            check = "; ".join(r[0] for r in dst.execute("PRAGMA quick_check").fetchall())
            # Table names come from TABLES, never from input.
            rows = {t: dst.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise store_error(exc, "the backup") from exc
    return rows, check


def _place(temp: Path, target: Path, *, force: bool) -> None:
    try:
        if force:
            os.replace(temp, target)
        else:
            os.link(temp, target)  # fails if the target appeared meanwhile: never clobbers
    except FileExistsError:
        raise ConflictError(f"{target} already exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise InvalidRequestError(f"cannot write {target}: {exc.strerror}") from None
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
