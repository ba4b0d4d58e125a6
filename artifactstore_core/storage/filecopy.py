"""Copy a regular file inside the kernel while hashing the copy: the local store's fast path.

A helper thread copies with ``copy_file_range`` (no bytes pass through Python, the GIL is
released) and, when asked, starts the disk write-back of each chunk at once
(``sync_file_range``), so the final ``fsync`` finds little left to write. The calling
thread hashes the *copy* as it is read back from the page cache: the digests cover the
bytes that were stored, whatever happened to the source meanwhile.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import os
import stat
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, cast

import blake3

from artifactstore_core.hashing import BlobHash, Digest, hash_copy
from artifactstore_core.hashing.digest import Algorithm
from artifactstore_core.sources import CountingReader

MIN_SIZE = 8 * 1024 * 1024
"""Smaller files go through the plain streaming copy (a thread hand-off costs more)."""
CHUNK_SIZE = 8 * 1024 * 1024
# copy_file_range cannot copy between these files (other file systems, old kernels).
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.ETXTBSY}
_SYNC_FILE_RANGE_WRITE = 2


def libc_function(name: str, *argtypes: Any) -> Callable[..., int] | None:
    """The C library's function ``name`` (Linux only), returning an int and setting errno;
    ``None`` where it is missing."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return cast("Callable[..., int]", function)


_sync_file_range = libc_function(
    "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
)


def start_write_back(fd: int) -> None:
    """Ask the kernel to start writing ``fd``'s dirty pages to disk, without waiting (a
    later ``fsync`` then has little left to write, and many such fsyncs overlap)."""
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def start_range_write_back(fd: int, offset: int, count: int) -> None:
    """Start writing bytes ``offset``..``offset + count`` of ``fd`` to disk (no wait), so
    that a later ``fsync`` finds little left to write."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, count, _SYNC_FILE_RANGE_WRITE)


def source_file(source: BinaryIO) -> tuple[int, int] | None:
    """``(fd, offset)`` when ``source`` is a regular file with at least ``MIN_SIZE`` bytes
    left to read, else ``None``."""
    fileno = getattr(source, "fileno", None)
    if fileno is None or not hasattr(os, "copy_file_range"):
        return None
    try:
        fd = fileno()
        info = os.fstat(fd)
        offset = source.tell()
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size - offset < MIN_SIZE:
        return None
    return fd, offset


def copy_and_hash(
    source: BinaryIO, target_fd: int, *, write_back: bool, target_offset: int = 0
) -> BlobHash | None:
    """Copy the rest of ``source`` into ``target_fd`` (a file open for reading and writing)
    from ``target_offset`` on, and hash the copy; ``None``, with nothing copied, when the
    kernel cannot copy between the two files. ``source`` is left at its end; a
    ``CountingReader`` hears of the bytes as they are hashed."""
    copy = _start(source, target_fd, write_back, target_offset)
    if copy is None:
        return None
    try:
        digest = hash_copy(cast(BinaryIO, copy))
    finally:
        copy.stop()
    if copy.unsupported:
        return None
    source.seek(copy.source_offset + digest.size)
    return digest


def copy_and_digest(
    source: BinaryIO, target_fd: int, target_offset: int, algorithm: Algorithm, *, write_back: bool
) -> Digest | None:
    """``copy_and_hash`` with one hash, ``"blake3"`` or ``"sha256"`` (one thread less: for
    copies out of the registry, checked against the digest recorded for them)."""
    copy = _start(source, target_fd, write_back, target_offset)
    if copy is None:
        return None
    digest = blake3.blake3() if algorithm == "blake3" else hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    try:
        while count := copy.readinto(buffer):
            digest.update(memoryview(buffer)[:count])
    finally:
        copy.stop()
    return None if copy.unsupported else Digest(algorithm, digest.hexdigest())


def _start(
    source: BinaryIO, target_fd: int, write_back: bool, target_offset: int
) -> _KernelCopy | None:
    found = source_file(source)
    if found is None:
        return None
    source_fd, offset = found
    progress = source.progress if isinstance(source, CountingReader) else None
    return _KernelCopy(source_fd, offset, target_fd, write_back, progress, target_offset)


class _KernelCopy(io.RawIOBase):
    """Runs the copy on a helper thread; ``readinto`` returns the copied bytes in order,
    waiting for the copy to get ahead of it."""

    def __init__(
        self,
        source_fd: int,
        offset: int,
        target_fd: int,
        write_back: bool,
        progress: Callable[[int], None] | None,
        target_offset: int = 0,
    ) -> None:
        super().__init__()
        self._progress = progress
        self._base = target_offset
        self._source_fd, self._offset, self._target_fd = source_fd, offset, target_fd
        self.source_offset = offset
        self._start_write_back = _sync_file_range if write_back else None
        self._changed = threading.Condition()
        self._copied = 0
        self._read = 0
        self._finished = False
        self._stopping = False
        self._error: OSError | None = None
        self.unsupported = False
        self._thread = threading.Thread(target=self._run, name="kernel-copy", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _run(self) -> None:
        try:
            while not self._stopping:
                count = os.copy_file_range(
                    self._source_fd,
                    self._target_fd,
                    CHUNK_SIZE,
                    self._offset + self._copied,
                    self._base + self._copied,
                )
                if count == 0:
                    break
                if self._start_write_back is not None:
                    self._start_write_back(
                        self._target_fd, self._base + self._copied, count, _SYNC_FILE_RANGE_WRITE
                    )
                with self._changed:
                    self._copied += count
                    self._changed.notify()
        except OSError as exc:
            with self._changed:
                self.unsupported = self._copied == 0 and exc.errno in _UNSUPPORTED
                self._error = exc
        finally:
            with self._changed:
                self._finished = True
                self._changed.notify()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._changed:
            while self._copied == self._read and not self._finished:
                self._changed.wait()
            if self._error is not None and not self.unsupported:
                raise self._error
            available = self._copied - self._read
        if available == 0:
            return 0
        view = memoryview(buffer).cast("B")[: min(len(buffer), available)]
        count = os.preadv(self._target_fd, [view], self._base + self._read)
        if count == 0:  # the copy shrank under us: the target file was truncated
            raise OSError(errno.EIO, "the copied file became shorter while it was read back")
        self._read += count
        if self._progress is not None:
            self._progress(count)
        return count

    def stop(self) -> None:
        """Stop the copy (after its current chunk) and wait for the helper thread."""
        self._stopping = True
        self._thread.join()
