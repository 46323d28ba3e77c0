"""
Reading a file the configuration names, safely: regular files only, with a size cap.

A path in a config can point anywhere: `/dev/zero` (5.96 GB of RSS in 15 s before this), a FIFO
with no writer (start-up blocked for ever), a directory. Each is refused with one phrase the
caller puts after the key, instead of hanging or eating memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from shiptrackd.units import format_size

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefusedError(Exception):
    """Why a file was refused, as a phrase to follow its path: "is a FIFO, not a regular file"."""


def read_regular_file(path: Path, max_bytes: int, what: str) -> bytes:
    """
    The bytes of *path*, read only if it is a regular file of at most *max_bytes* (*what* names it in the error).

    Opened with O_NONBLOCK so a FIFO cannot block, then checked with fstat on the open descriptor
    (no race with a swap between check and read), then read up to one byte past the cap.
    Raises FileNotFoundError or another OSError, or FileRefusedError.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise FileRefusedError(f"is {kind}, not a regular file")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > max_bytes:
        raise FileRefusedError(f"is larger than {format_size(max_bytes)}, the limit for {what}")
    return b"".join(chunks)
