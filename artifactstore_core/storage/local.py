"""Blobs in a local directory, sharded by digest; writes are atomic and fsync'd.

A write (one blob, or a batch through ``write_many``; ADR-0007) goes in three steps:

1. **stage** each blob in a new temporary file under ``staging/``, locked (``flock``) while
   open, and hash it as it is written; check the expected digest; a blob already stored
   under its address is reused only once confirmed intact, and its temporary file dropped;
2. make the staged bytes durable (fsync of each file, or one ``syncfs`` for a large batch),
   then rename each file under its address;
3. make the directory entries durable (fsync of each touched directory, or ``syncfs``)
   before returning: a caller registers a blob only after its ``write`` returned.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import io
import itertools
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import blake3

from artifactstore_core.errors import ConfigurationError
from artifactstore_core.hashing import (
    CHUNK_SIZE,
    BlobHash,
    Digest,
    DigestError,
    DigestMismatchError,
    hash_bytes,
    hash_copy,
    matches,
)
from artifactstore_core.hashing.digest import ALGORITHMS
from artifactstore_core.storage.filecopy import copy_and_hash, start_range_write_back
from artifactstore_core.storage.layout import key_for
from artifactstore_core.storage.ports import (
    WRITE_THREADS,
    BlobStore,
    BlobWrite,
    StoredBlob,
    check_staging_name,
    counting,
)
from artifactstore_core.storage.sync import (
    SYNCFS_MIN,
    each,
    fsync_directory,
    sync_file_system,
    sync_files,
    syncfs_supported,
)

_TMP_PREFIX = ".tmp-"
_UPLOAD_DATA = "data"
"""The one file an upload's parts are written into (``uploads/<upload>/data``)."""
SMALL_SIZE = 1024 * 1024
"""Files of at most this size (by their size hint) are read whole and hashed on the calling
thread, and a stored copy is compared byte for byte, before any temporary file is made."""
BATCH_SIZE = 512
"""Temporary files ``write_many`` keeps open (locked) at once."""


@dataclass(slots=True)
class _Staged:
    """A verified blob on its way to its address: a locked temporary file (``fd``,
    ``tmp``), or, with ``fd`` ``None``, an intact copy already stored there."""

    blob: BlobHash
    target: str
    fd: int | None = None
    tmp: str | None = None
    created: bool = False

    def discard(self) -> None:
        """Close the temporary file and remove it if it was not renamed."""
        _discard(self.fd, self.tmp)
        self.fd = self.tmp = None


def _discard(fd: int | None, tmp: str | None) -> None:
    if fd is not None:
        os.close(fd)
    if tmp is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class LocalBlobStore(BlobStore):
    """A directory of blobs laid out as ``<root>/blake3/ab/cd/<hex>``.

    ``syncfs`` (default: where the kernel supports it) lets large batches be made durable
    with ``syncfs`` instead of one fsync per file and directory.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, fsync: bool = True, syncfs: bool = True
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        if self.root.exists() and not self.root.is_dir():
            raise ConfigurationError(f"storage path {str(self.root)!r} is not a directory")
        self.url = str(self.root)
        self._fsync = fsync
        self._syncfs = syncfs and syncfs_supported()
        self._staging = self.root / "staging"
        self._staging_ready = False
        root_uri = self.root.as_uri()
        self._uri_prefix = root_uri if root_uri.endswith("/") else root_uri + "/"
        self._names = itertools.count()
        self._token = os.urandom(6).hex()

    def path(self, address: Digest) -> Path:
        return self.root / key_for(address)

    def uri(self, address: Digest) -> str:
        return self._uri_prefix + key_for(address)

    def _target(self, address: Digest) -> str:
        return f"{self.url}/{key_for(address)}"

    def local_path(self, address: Digest) -> str:
        return self._target(address)

    # ------------------------------------------------------------------ writes
    def write(self, source: BinaryIO, expected: BlobHash | Digest | None = None) -> StoredBlob:
        """See ``BlobStore.write``. A blob already stored is reused only once confirmed
        intact (size and BLAKE3 of its bytes); a damaged one is replaced by the new bytes."""
        self._ensure_staging()
        return self._commit([self._stage_stream(source, expected)], None)[0]

    def write_many(
        self, items: Sequence[BlobWrite], progress: Callable[[int], None] | None = None
    ) -> list[StoredBlob]:
        """See ``BlobStore.write_many``. Small re-readable items (``SMALL_SIZE``) are
        staged on this thread and synced as a batch; the others are written as by
        ``write``, ``WRITE_THREADS`` at once, meanwhile (their own bytes dominate)."""
        small = [item for item in items if _is_small(item)]
        if len(items) == 1 and not small:
            return [self._write_item(items[0], progress)]
        with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="blob-write") as pool:
            others = {
                index: pool.submit(self._write_item, item, progress)
                for index, item in enumerate(items)
                if not _is_small(item)
            }
            batch = iter(self._write_batch(small, progress))
            return [
                others[index].result() if index in others else next(batch)
                for index in range(len(items))
            ]

    def _write_batch(
        self, items: Sequence[BlobWrite], progress: Callable[[int], None] | None
    ) -> list[StoredBlob]:
        """Small blobs: all staged, then synced, renamed and synced again, together
        (``BATCH_SIZE`` files at a time; the directories once at the end)."""
        if not items:
            return []
        self._ensure_staging()
        use_syncfs = self._fsync and self._syncfs and len(items) >= SYNCFS_MIN
        # syncfs reports write-back errors since its descriptor was opened: open it first.
        handle = os.open(self._staging, os.O_RDONLY | os.O_DIRECTORY) if use_syncfs else None
        # Its directories are covered by the syncfs; with fsyncs, _place makes them itself.
        maker = _DirectoryMaker() if use_syncfs else None
        try:
            results: list[StoredBlob] = []
            directories: set[str] = set()
            for start in range(0, len(items), BATCH_SIZE):
                staged = self._stage_all(items[start : start + BATCH_SIZE], progress, maker)
                try:
                    self._sync_files(staged, handle)
                    if maker is not None:
                        maker.wait()
                    directories |= self._place(staged)
                finally:
                    for item in staged:
                        item.discard()
                results += self._stored(staged)
            self._sync_directories(directories, handle)
            return results
        finally:
            if maker is not None:
                maker.close()
            if handle is not None:
                os.close(handle)

    def _commit(self, staged: list[_Staged], handle: int | None) -> list[StoredBlob]:
        """Steps 2 and 3 for ``staged``; their temporary files are gone afterwards."""
        try:
            self._sync_files(staged, handle)
            directories = self._place(staged)
        finally:
            for item in staged:
                item.discard()
        self._sync_directories(directories, handle)
        return self._stored(staged)

    def _stored(self, staged: Iterable[_Staged]) -> list[StoredBlob]:
        return [StoredBlob(item.blob, self.uri(item.blob.blake3), item.created) for item in staged]

    def _stage_all(
        self,
        items: Sequence[BlobWrite],
        progress: Callable[[int], None] | None,
        maker: _DirectoryMaker | None,
    ) -> list[_Staged]:
        """Stage every item (``maker`` meanwhile creates the directories of new blobs);
        on an error, none stays staged."""
        staged: list[_Staged] = []
        try:
            for item in items:
                staged.append(self._stage_small(item, progress))
                if maker is not None and staged[-1].tmp is not None:
                    maker.want(os.path.dirname(staged[-1].target))
        except BaseException:
            for done in staged:
                done.discard()
            raise
        return staged

    def _stage_small(self, item: BlobWrite, progress: Callable[[int], None] | None) -> _Staged:
        with item.open() as stream:
            source = counting(stream, progress)
            hint = cast(int, item.size_hint)
            head = _read_up_to(source, hint + 1)  # not SMALL_SIZE: no 1 MiB buffer per file
            if len(head) > hint:  # it grew since it was listed
                head += _read_up_to(source, SMALL_SIZE + 1 - len(head))
            if len(head) <= SMALL_SIZE:
                return self._stage_bytes(head, item.expected)
            return self._stage_stream(cast(BinaryIO, _Prefixed(head, source)), item.expected)

    def _stage_bytes(self, data: bytes, expected: BlobHash | Digest | None) -> _Staged:
        actual = self._checked(hash_bytes(data), expected)
        target = self._target(actual.blake3)
        if _holds(target, data):
            return _Staged(actual, target)
        fd, tmp = self._staging_file()
        staged = _Staged(actual, target, fd, tmp)
        try:
            _FileSink(fd)(memoryview(data))
        except BaseException:
            staged.discard()
            raise
        return staged

    def _stage_stream(self, source: BinaryIO, expected: BlobHash | Digest | None) -> _Staged:
        fd, tmp = self._staging_file()
        try:
            actual = copy_and_hash(source, fd, write_back=self._fsync)
            if actual is None:
                actual = hash_copy(source, _FileSink(fd))
            actual = self._checked(actual, expected)
            target = self._target(actual.blake3)
        except BaseException:
            _discard(fd, tmp)
            raise
        staged = _Staged(actual, target, fd, tmp)
        if _intact(target, actual):
            staged.discard()
        return staged

    def _checked(self, actual: BlobHash, expected: BlobHash | Digest | None) -> BlobHash:
        if expected is not None and not matches(expected, actual):
            raise self.mismatch(DigestMismatchError(expected, actual))
        return actual

    def _sync_files(self, staged: Sequence[_Staged], handle: int | None) -> None:
        """Make the bytes of every staged temporary file durable."""
        fds = [item.fd for item in staged if item.fd is not None]
        if not self._fsync or not fds:
            return
        if handle is not None:
            sync_file_system(handle)
            return
        sync_files(fds)

    def _place(self, staged: Sequence[_Staged]) -> set[str]:
        """Rename each staged file under its address (the first of equal blobs wins);
        marks what was created; the directories whose entries must be made durable."""
        directories: set[str] = set()
        placed: set[str] = set()
        for item in staged:
            directory = os.path.dirname(item.target)
            directories.add(directory)  # a reused blob's entry, too: its writer may be
            # between its rename and its directory sync
            if item.tmp is None or item.target in placed:
                continue
            try:
                os.replace(item.tmp, item.target)
            except FileNotFoundError:
                directories.update(self._make_directories(directory))
                os.replace(item.tmp, item.target)
            item.created = True
            item.tmp = None
            placed.add(item.target)
        return directories

    def _sync_directories(self, directories: set[str], handle: int | None) -> None:
        if not self._fsync or not directories:
            return
        if handle is not None:
            sync_file_system(handle)
        else:
            each(fsync_directory, sorted(directories))

    def _make_directories(self, directory: str) -> list[str]:
        """Create ``directory`` and its missing parents; the parents whose entries changed
        (or may still be unsynced: another writer made the directory just now)."""
        try:
            os.mkdir(directory)
        except FileNotFoundError:
            parents = self._make_directories(os.path.dirname(directory))
            return parents + self._make_directories(directory)
        except FileExistsError:
            pass
        return [os.path.dirname(directory)]

    def _ensure_staging(self) -> None:
        """Create the staging directory (and the root) on the first write, durably."""
        if self._staging_ready or os.path.isdir(self._staging):
            self._staging_ready = True
            return
        made = self._make_directories(str(self._staging))
        if self._fsync:
            each(fsync_directory, made)
        self._staging_ready = True

    def _staging_file(self) -> tuple[int, str]:
        """A new temporary file in the staging directory, locked (``flock``) for as long as
        it is open, so that ``purge_staging`` never removes the file of a write in flight."""
        while True:
            name = f"{self._staging}/{_TMP_PREFIX}{os.getpid()}-{self._token}-{next(self._names)}"
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            except FileNotFoundError:
                self._staging_ready = False
                self._ensure_staging()
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                return fd, name
            os.close(fd)  # purged between its creation and the lock: take another

    # ------------------------------------------------------------------ reads and upkeep
    def open_raw(self, address: Digest) -> BinaryIO:
        try:
            return self.path(address).open("rb")
        except FileNotFoundError:
            raise self.missing(address) from None

    def exists(self, address: Digest) -> bool:
        return os.path.isfile(self._target(address))

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

    # ------------------------------------------------------------------ upload staging
    def _upload_dir(self, upload: str) -> str:
        check_staging_name(upload)
        return os.path.join(self.root, "uploads", upload)

    @contextlib.contextmanager
    def staging_lock(self, upload: str) -> Iterator[None]:
        """An exclusive ``flock`` on the upload's lock file: its parts share one data file."""
        directory = self._upload_dir(upload)
        self._make_directories(directory)
        fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def stage_chunk(self, upload: str, start: int, source: BinaryIO) -> tuple[str, int]:
        """See ``BlobStore.stage_chunk``: written at offset ``start`` of the upload's one
        data file (under ``staging_lock``) and synced, so that committing adopts the file
        as the blob without copying it (``write_staged``: parts are never read back one by
        one). Bytes past the last recorded part are ignored."""
        path = os.path.join(self._upload_dir(upload), _UPLOAD_DATA)
        count = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while data := source.read(CHUNK_SIZE):
                view = memoryview(data)
                while view:
                    written = os.pwrite(fd, view, start + count)
                    view = view[written:]
                    count += written
                if self._fsync:
                    start_range_write_back(fd, start + count - len(data), len(data))
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return _UPLOAD_DATA, count

    def write_staged(
        self,
        upload: str,
        parts: Sequence[tuple[str, int]],
        expected: BlobHash | Digest | None = None,
        *,
        known: BlobHash | None = None,
    ) -> StoredBlob:
        """See ``BlobStore.write_staged``: the data file, cut to the recorded parts, is
        hashed (unless ``known``: hashed as it was written) and renamed under its address
        (its bytes were synced as they arrived)."""
        path = os.path.join(self._upload_dir(upload), _UPLOAD_DATA)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            if sum(length for _, length in parts):
                raise self.missing_chunk(upload, _UPLOAD_DATA) from None
            return self.write(io.BytesIO(b""), expected)
        try:
            total = sum(length for _, length in parts)
            os.ftruncate(fd, total)
            if known is not None and known.size == total:
                actual = self._checked(known, expected)
            else:
                with io.FileIO(fd, closefd=False) as reader:
                    actual = self._checked(hash_copy(cast(BinaryIO, reader)), expected)
        except BaseException:
            os.close(fd)
            raise
        staged = _Staged(actual, self._target(actual.blake3), fd, path)
        if _intact(staged.target, actual):
            staged.discard()
            return self._stored([staged])[0]
        return self._commit([staged], None)[0]

    def drop_upload(self, upload: str) -> None:
        shutil.rmtree(self._upload_dir(upload), ignore_errors=True)

    def iter_uploads(self) -> Iterator[tuple[str, dt.datetime]]:
        for entry in _subdirectories(os.path.join(self.root, "uploads")):
            times = [entry.stat().st_mtime]
            with contextlib.suppress(FileNotFoundError), os.scandir(entry.path) as chunks:
                times.extend(chunk.stat().st_mtime for chunk in chunks)
            yield entry.name, dt.datetime.fromtimestamp(max(times), dt.UTC)

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


class _DirectoryMaker:
    """Creates shard directories on a helper thread while the caller stages more files
    (in a young store nearly every new blob needs a directory of its own, and ``mkdir``
    costs more than staging a small file). Failures are left to ``_place``, which makes
    any directory still missing itself."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[str | threading.Event | None] = queue.SimpleQueue()
        self._seen: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="blob-mkdir", daemon=True)
        self._thread.start()

    def want(self, directory: str) -> None:
        if directory not in self._seen:
            self._seen.add(directory)
            self._queue.put(directory)

    def wait(self) -> None:
        """Return once every directory asked for so far was tried."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (task := self._queue.get()) is not None:
            if isinstance(task, threading.Event):
                task.set()
                continue
            with contextlib.suppress(OSError):
                try:
                    os.mkdir(task)
                except FileNotFoundError:
                    os.makedirs(task, exist_ok=True)


def _is_small(item: BlobWrite) -> bool:
    return item.size_hint is not None and item.size_hint <= SMALL_SIZE


class _FileSink:
    """Writes every byte it is given to ``fd`` (``os.write`` may write less than asked)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __call__(self, data: memoryview) -> None:
        view = data
        while view:
            view = view[os.write(self._fd, view) :]


class _Prefixed:
    """``head`` (bytes already read from ``rest``), then the rest of ``rest``."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(size)
        count = len(self._head) if size < 0 else min(size, len(self._head))
        data = bytes(self._head[:count])
        self._head = self._head[count:]
        return data


def _read_up_to(source: BinaryIO, limit: int) -> bytes:
    """``limit`` bytes of ``source``, or fewer at its end (a short read is not the end)."""
    data = source.read(limit)
    while 0 < len(data) < limit:
        more = source.read(limit - len(data))
        if not more:
            break
        data += more
    return data


def _holds(path: str, data: bytes) -> bool:
    """Whether the file at ``path`` holds exactly ``data``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        stored = b""
        while len(stored) <= len(data):
            chunk = os.read(fd, len(data) + 1 - len(stored))
            if not chunk:
                break
            stored += chunk
    finally:
        os.close(fd)
    return stored == data


def _intact(path: str, blob: BlobHash) -> bool:
    """Whether ``path`` holds exactly the bytes of ``blob``."""
    try:
        if os.stat(path).st_size != blob.size:
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
