"""Blobs in a local directory, sharded by digest; writes are atomic and fsync'd."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import blake3

from artifactstore_core.errors import ConfigurationError
from artifactstore_core.hashing import (
    BlobHash,
    Digest,
    DigestError,
    DigestMismatchError,
    hash_copy,
    matches,
)
from artifactstore_core.hashing.digest import ALGORITHMS
from artifactstore_core.storage.filecopy import copy_and_hash
from artifactstore_core.storage.layout import key_for
from artifactstore_core.storage.ports import BlobStore, StoredBlob

_TMP_PREFIX = ".tmp-"


class LocalBlobStore(BlobStore):
    """A directory of blobs laid out as ``<root>/blake3/ab/cd/<hex>``."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            raise ConfigurationError(f"storage path {str(self.root)!r} is not a directory")
        self.url = str(self.root)
        self._fsync = fsync
        self._staging = self.root / "staging"

    def path(self, address: Digest) -> Path:
        return self.root / key_for(address)

    def uri(self, address: Digest) -> str:
        return self.path(address).as_uri()

    def write(self, source: BinaryIO, expected: BlobHash | Digest | None = None) -> StoredBlob:
        """See ``BlobStore.write``. A blob already stored is reused only once confirmed
        intact (size and BLAKE3 of its bytes); a damaged one is replaced by the new bytes."""
        fd, tmp = self._staging_file()
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                actual = copy_and_hash(source, out.fileno(), write_back=self._fsync)
                if actual is None:
                    actual = hash_copy(source, _FileSink(out.fileno()))
                if expected is not None and not matches(expected, actual):
                    raise self.mismatch(DigestMismatchError(expected, actual))
                target = self.path(actual.blake3)
                if _intact(target, actual):
                    return StoredBlob(actual, target.as_uri(), created=False)
                if self._fsync:
                    os.fsync(out.fileno())
            created_dirs = self._make_shard_dirs(target.parent)
            os.replace(tmp, target)
            if self._fsync:
                # The blob's directory entry, and those of any shard directory just made.
                for directory in (target.parent, *created_dirs):
                    _fsync_directory(directory)
            return StoredBlob(actual, target.as_uri(), created=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _staging_file(self) -> tuple[int, Path]:
        """A new temporary file in the staging directory, locked (``flock``) for as long as
        it is open, so that ``purge_staging`` never removes the file of a write in flight."""
        while True:
            try:
                fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self._staging)
            except FileNotFoundError:
                self._staging.mkdir(parents=True, exist_ok=True)
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                return fd, Path(name)
            os.close(fd)  # purged between its creation and the lock: take another

    def _make_shard_dirs(self, directory: Path) -> list[Path]:
        """Create ``directory`` and missing parents below the root; the parents of what
        was created, deepest first (their entries need an fsync)."""
        missing = []
        current = directory
        while current != self.root and not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
        return [path.parent for path in missing]

    def open_raw(self, address: Digest) -> BinaryIO:
        try:
            return self.path(address).open("rb")
        except FileNotFoundError:
            raise self.missing(address) from None

    def exists(self, address: Digest) -> bool:
        return self.path(address).is_file()

    def delete(self, address: Digest) -> bool:
        try:
            self.path(address).unlink()
        except FileNotFoundError:
            return False
        return True

    def modified_at(self, address: Digest) -> dt.datetime | None:
        try:
            return dt.datetime.fromtimestamp(self.path(address).stat().st_mtime, dt.UTC)
        except FileNotFoundError:
            return None

    def size_of(self, address: Digest) -> int:
        try:
            return self.path(address).stat().st_size
        except FileNotFoundError:
            return 0

    def purge_staging(self, older_than: dt.datetime) -> int:
        """Remove temporary files of interrupted writes; a file still locked by a write in
        flight is left alone, whatever its age."""
        removed = 0
        for path in self._staging.glob(f"{_TMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
                if modified <= older_than and _unlink_unless_locked(path):
                    removed += 1
        return removed

    def iter_addresses(self) -> Iterator[Digest]:
        # os.scandir, not pathlib: a sweep lists every blob, and this is its hot loop.
        for algorithm in ALGORITHMS:
            top = os.path.join(self.root, algorithm)
            for first in _subdirectories(top):
                for second in _subdirectories(first.path):
                    with os.scandir(second.path) as entries:
                        for entry in entries:
                            with contextlib.suppress(DigestError):
                                digest = Digest(algorithm, entry.name)
                                if (first.name, second.name) == (entry.name[:2], entry.name[2:4]):
                                    yield digest


class _FileSink:
    """Writes every byte it is given to ``fd`` (``os.write`` may write less than asked)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __call__(self, data: memoryview) -> None:
        view = data
        while view:
            view = view[os.write(self._fd, view) :]


def _intact(path: Path, blob: BlobHash) -> bool:
    """Whether ``path`` holds exactly the bytes of ``blob``."""
    try:
        if path.stat().st_size != blob.size:
            return False
        if blob.size == 0:
            return True
        # One thread: blake3's thread pool would not survive a fork of this process.
        hasher = blake3.blake3()
        hasher.update_mmap(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return bool(hasher.hexdigest() == blob.blake3.hex)


def _unlink_unless_locked(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        path.unlink()
        return True
    finally:
        os.close(fd)


def _subdirectories(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return [entry for entry in entries if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
