"""Making many new files durable at once: the local store's blob batches and exports.

One ``syncfs`` covers a large batch (the bytes of every file and every directory entry on
that file system) where the kernel reports write-back errors through it (Linux 5.8 and
later, from a descriptor opened before the writes); otherwise the write-back of each file
is started first and their fsyncs overlap on a few threads, so that the journal commits
them together rather than one after another.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from artifactstore_core.storage.filecopy import libc_function, start_write_back

SYNCFS_MIN = 16
"""Batches of at least this many files are made durable with ``syncfs``: two calls per
batch instead of an fsync per file and per directory."""
SYNC_THREADS = 4
"""fsyncs run at once (they overlap in the file system's journal)."""


def _load_syncfs() -> Callable[..., int] | None:
    """``syncfs`` where it reports write-back errors (Linux 5.8 and later), else ``None``."""
    version = re.match(r"(\d+)\.(\d+)", platform.release())
    if version is None or (int(version[1]), int(version[2])) < (5, 8):
        return None
    return libc_function("syncfs", ctypes.c_int)


_syncfs = _load_syncfs()


def syncfs_supported() -> bool:
    """Whether ``sync_file_system`` can be used here."""
    return _syncfs is not None


def sync_file_system(handle: int) -> None:
    """``syncfs`` of the file system holding ``handle``; a write-back error since
    ``handle`` was opened is raised."""
    assert _syncfs is not None
    if _syncfs(handle) != 0:
        code = ctypes.get_errno() or errno.EIO
        raise OSError(code, f"syncfs failed: {os.strerror(code)}")


def sync_files(fds: Sequence[int]) -> None:
    """fsync every open file of ``fds``: each one's write-back started first, then the
    fsyncs overlapped."""
    if len(fds) > 1:
        for fd in fds:
            start_write_back(fd)
    each(os.fsync, fds)


def fsync_directory(path: str) -> None:
    """fsync the directory ``path`` (its entries become durable)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_T = TypeVar("_T")


def each(function: Callable[[_T], object], values: Sequence[_T]) -> None:
    """``function`` of every value; several at once (fsyncs overlap in the journal)."""
    if len(values) < 2:
        for value in values:
            function(value)
        return
    with ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="sync") as pool:
        for _ in pool.map(function, values):
            pass
