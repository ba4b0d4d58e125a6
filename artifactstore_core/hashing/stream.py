"""One pass over the bytes: BLAKE3 and SHA-256 side by side, optionally copying as we go.

Both hash functions release the GIL on large buffers, so SHA-256 runs on a helper thread
while the calling thread runs BLAKE3, writes the chunk and reads the next one.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import blake3

from artifactstore_core.hashing.digest import BlobHash, Digest

CHUNK_SIZE = 4 * 1024 * 1024
# Below this, a thread hand-off costs more than it saves.
_THREAD_THRESHOLD = 256 * 1024


class DigestMismatchError(ValueError):
    """Bytes did not hash to what was expected; ``actual`` holds what they hashed to."""

    def __init__(self, expected: BlobHash | Digest, actual: BlobHash) -> None:
        wanted = (
            f"{expected.content_address} ({expected.size} bytes)"
            if isinstance(expected, BlobHash)
            else str(expected)
        )
        got = (
            actual.content_address
            if isinstance(expected, BlobHash)
            else (str(actual.blake3 if expected.algorithm == "blake3" else actual.sha256))
        )
        super().__init__(f"content mismatch: expected {wanted}, got {got} ({actual.size} bytes)")
        self.expected = expected
        self.actual = actual


def hash_bytes(data: bytes) -> BlobHash:
    """Hash an in-memory byte string."""
    return BlobHash(
        Digest("blake3", blake3.blake3(data).hexdigest()),
        Digest("sha256", hashlib.sha256(data).hexdigest()),
        len(data),
    )


class _DualHasher:
    """Feeds chunks to BLAKE3 (this thread) and SHA-256 (a helper thread)."""

    def __init__(self, pool: ThreadPoolExecutor | None) -> None:
        self._blake3 = blake3.blake3()
        self._sha256 = hashlib.sha256()
        self._pool = pool
        self._pending: Future[None] | None = None
        self.size = 0

    def start(self, chunk: memoryview) -> None:
        """Begin hashing ``chunk``; the caller must not reuse it before ``wait()``."""
        self.size += len(chunk)
        if self._pool is not None and len(chunk) >= _THREAD_THRESHOLD:
            self._pending = self._pool.submit(self._sha256.update, chunk)
        else:
            self._sha256.update(chunk)
        self._blake3.update(chunk)

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def result(self) -> BlobHash:
        self.wait()
        return BlobHash(
            Digest("blake3", self._blake3.hexdigest()),
            Digest("sha256", self._sha256.hexdigest()),
            self.size,
        )


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool_after_fork() -> None:
    """A forked child has none of its parent's threads: it starts a pool of its own."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _pool() -> ThreadPoolExecutor:
    """The process-wide SHA-256 helper threads (created on first large stream)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="sha256")
        return _POOL


def hash_copy(
    source: BinaryIO,
    write: Callable[[memoryview], object] | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> BlobHash:
    """Read ``source`` to its end once, hashing every byte and passing each chunk to ``write``.

    Memory stays at two chunks whatever the size of the stream; small streams are
    hashed on the calling thread alone.
    """
    first = source.read(_THREAD_THRESHOLD)
    if len(first) < _THREAD_THRESHOLD:
        rest = source.read(_THREAD_THRESHOLD) if first else b""
        if not rest:
            hasher = _DualHasher(None)
            hasher.start(memoryview(first))
            if write is not None and first:
                write(memoryview(first))
            return hasher.result()
        first += rest
    buffers = [bytearray(chunk_size), bytearray(chunk_size)]
    hasher = _DualHasher(_pool())
    index = 0
    view: memoryview | None = memoryview(first)
    while view is not None:
        hasher.start(view)
        if write is not None:
            write(view)
        index ^= 1
        following = _read_chunk(source, buffers[index])
        hasher.wait()
        view = following
    return hasher.result()


def _read_chunk(source: BinaryIO, buffer: bytearray) -> memoryview | None:
    """Fill ``buffer`` from ``source`` (short reads are retried); ``None`` at end of stream."""
    view = memoryview(buffer)
    filled = 0
    readinto = getattr(source, "readinto", None)
    while filled < len(buffer):
        if readinto is not None:
            count = readinto(view[filled:])
        else:
            data = source.read(len(buffer) - filled)
            count = len(data)
            view[filled : filled + count] = data
        if not count:
            break
        filled += count
    return view[:filled] if filled else None


class HashingWriter:
    """A write-only sink that hashes what passes through it to ``target`` (if any)."""

    def __init__(self, target: BinaryIO | None = None) -> None:
        self._hasher = _DualHasher(None)
        self._target = target

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        self._hasher.start(view)
        if self._target is not None:
            self._target.write(view)
        return len(view)

    def result(self) -> BlobHash:
        return self._hasher.result()


class VerifyingReader(io.RawIOBase):
    """Reads ``raw`` while hashing; at end of stream checks the bytes against ``expected``.

    A mismatch raises ``on_mismatch(DigestMismatchError)`` (the caller's typed error).
    """

    def __init__(
        self,
        raw: BinaryIO,
        expected: BlobHash,
        on_mismatch: Callable[[DigestMismatchError], Exception] | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._expected = expected
        self._hasher = _DualHasher(None)
        self._on_mismatch = on_mismatch
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        if not data:
            self._check()
            return 0
        count = len(data)
        view[:count] = data
        self._hasher.start(view[:count])
        if self._hasher.size > self._expected.size:
            self._check()
        return count

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        actual = self._hasher.result()
        if actual != self._expected:
            error = DigestMismatchError(self._expected, actual)
            raise (self._on_mismatch(error) if self._on_mismatch else error) from error

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()
