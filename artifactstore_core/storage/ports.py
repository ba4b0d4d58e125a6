"""The storage protocol every blob backend implements.

A backend stores immutable blobs under their BLAKE3 address. Writes hash while they
stream, are atomic (nothing is visible under an address unless complete and verified),
idempotent and deduplicated. Reads verify the digest as they stream.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO, cast

from artifactstore_core.errors import ConfigurationError, IntegrityError, MissingBlobError
from artifactstore_core.hashing import (
    BlobHash,
    Digest,
    DigestMismatchError,
    VerifyingReader,
    hash_copy,
    matches,
)
from artifactstore_core.sources import CountingReader

_STAGING_NAME = re.compile(r"[0-9a-f][0-9a-f-]{0,79}")

HEAL_ATTEMPTS = 3
"""Times a write path stores again blobs deleted between its write and its commit."""
WRITE_THREADS = 4
"""Blobs ``write_many`` writes at once by default, so that their uploads or fsyncs overlap."""


class BlobsGone(Exception):
    """Blobs a write path stored were no longer in the backend when it came to record them."""

    def __init__(self, addresses: Sequence[str]) -> None:
        super().__init__(", ".join(addresses))
        self.addresses = set(addresses)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """The outcome of a write: the blob's hash, where it lives, and whether it was new."""

    hash: BlobHash
    uri: str
    created: bool


@dataclass(frozen=True, slots=True)
class BlobWrite:
    """One blob for ``write_many``: a way to open its bytes, what they must hash to
    (as for ``write``), and how many bytes it should give; ``size_hint`` is ``None`` for a
    stream that can be read only once, else ``open`` may be called again."""

    open: Callable[[], BinaryIO]
    expected: BlobHash | Digest | None = None
    size_hint: int | None = None


def counting(stream: BinaryIO, progress: Callable[[int], None] | None) -> BinaryIO:
    """``stream``, reporting the byte counts read from it to ``progress`` (if any)."""
    return stream if progress is None else cast(BinaryIO, CountingReader(stream, progress))


class BlobStore(ABC):
    """A content-addressed blob backend (local directory, S3 bucket, memory)."""

    #: A URL that reopens this backend (``/srv/blobs``, ``s3://bucket/prefix``, ``memory://x``).
    url: str
    #: Remote backends hash a re-readable source first (``write_many``), so that bytes
    #: the backend already has are never uploaded again.
    hash_before_write: bool = False

    @abstractmethod
    def write(self, source: BinaryIO, expected: BlobHash | Digest | None = None) -> StoredBlob:
        """Store the bytes of ``source`` under their BLAKE3 address.

        With ``expected`` given (a full ``BlobHash`` or one ``Digest``; compare with
        ``hashing.matches``), bytes that hash differently raise ``IntegrityError`` and
        nothing becomes visible. Storing bytes already present is a successful no-op.
        """

    def write_many(
        self, items: Sequence[BlobWrite], progress: Callable[[int], None] | None = None
    ) -> list[StoredBlob]:
        """Store each item as ``write`` does; the results in the order of ``items``.

        When it returns, every blob is stored as durably as ``write`` stores one; after an
        error, some may be stored and none is half-visible. ``progress`` hears byte counts,
        possibly from several threads at once (the caller makes it thread-safe). This
        default writes up to ``WRITE_THREADS`` items at once; a backend that can batch
        its syncs overrides it.
        """
        if len(items) < 2:
            return [self._write_item(item, progress) for item in items]
        with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="blob-write") as pool:
            return list(pool.map(partial(self._write_item, progress=progress), items))

    def _write_item(
        self, item: BlobWrite, progress: Callable[[int], None] | None = None
    ) -> StoredBlob:
        expected = item.expected
        if self.hash_before_write and item.size_hint is not None:
            # Re-readable source, remote backend: hash locally first, and skip the upload
            # when the backend already has these bytes (asked, not taken from a row).
            with item.open() as stream:
                actual = hash_copy(stream)
            if expected is not None and not matches(expected, actual):
                raise self.mismatch(DigestMismatchError(expected, actual))
            if self.exists(actual.blake3):
                return StoredBlob(actual, self.uri(actual.blake3), created=False)
            expected = actual
        with item.open() as stream:
            return self.write(counting(stream, progress), expected)

    @abstractmethod
    def open_raw(self, address: Digest) -> BinaryIO:
        """The stored bytes, unverified; ``MissingBlobError`` if the blob is absent."""

    @abstractmethod
    def exists(self, address: Digest) -> bool:
        """Whether a blob is stored under ``address``."""

    @abstractmethod
    def delete(self, address: Digest) -> bool:
        """Remove a blob; ``False`` if it was not there."""

    @abstractmethod
    def iter_addresses(self) -> Iterator[Digest]:
        """Every stored blob's address, in no particular order."""

    @abstractmethod
    def uri(self, address: Digest) -> str:
        """Where the blob with ``address`` lives, as a URI."""

    def local_path(self, address: Digest) -> str | None:
        """The path of the blob's file, if this backend keeps blobs as files on this
        machine that readers may open themselves (``None``: remote, read ``open_raw``)."""
        return None

    def modified_at(self, address: Digest) -> dt.datetime | None:
        """When the blob was written, if the backend knows (used to age orphans)."""
        return None

    def size_of(self, address: Digest) -> int:
        """The stored size of a blob in bytes (0 if unknown)."""
        return 0

    def purge_staging(self, older_than: dt.datetime) -> int:
        """Remove temporary uploads left by interrupted writes; returns how many."""
        return 0

    def open(self, blob: BlobHash, *, owner: str | None = None) -> BinaryIO:
        """The stored bytes of ``blob``, verified as they are read (``IntegrityError``).

        ``owner`` (such as ``package x@1, file 'a.csv'``) starts the message of any error.
        """
        try:
            raw = self.open_raw(blob.blake3)
        except MissingBlobError as exc:
            if owner is None:
                raise
            raise MissingBlobError(f"{owner}: {exc}") from exc
        return VerifyingReader(raw, blob, partial(self._corrupt, blob, owner=owner))  # type: ignore[return-value]

    def _corrupt(
        self, blob: BlobHash, error: DigestMismatchError, owner: str | None = None
    ) -> IntegrityError:
        return IntegrityError(
            f"{owner + ': ' if owner else ''}stored blob {blob.content_address} at "
            f"{self.uri(blob.blake3)} is corrupt: its bytes hash to "
            f"{error.actual.content_address} ({error.actual.size} bytes, expected {blob.size})"
        )

    def missing(self, address: Digest) -> MissingBlobError:
        """The error for an absent blob, naming it and this backend."""
        return MissingBlobError(f"blob {address} is missing from {self.url}")

    def mismatch(self, error: DigestMismatchError) -> IntegrityError:
        """The error for written bytes that do not match the expected hash."""
        return IntegrityError(f"refused to store bytes at {self.url}: {error}")

    def open_range(self, address: Digest, start: int, length: int) -> BinaryIO:
        """``length`` stored bytes from offset ``start``, unverified (a part cannot be
        checked against the whole blob's digest); the caller keeps the range in bounds."""
        raw = self.open_raw(address)
        try:
            raw.seek(start)
        except BaseException:
            raw.close()
            raise
        return LimitedReader(raw, length)  # type: ignore[return-value]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has none."""

    # -------------------------------------------------------------- upload staging
    # The parts of an upload session (``uploads.Uploads``) are kept in the backend itself,
    # outside the blob layout, so that any server process can continue or commit a session.
    @contextlib.contextmanager
    def staging_lock(self, upload: str) -> Iterator[None]:
        """Held while a part of ``upload`` is staged and recorded, and while it is committed.
        This default takes none: each part is an object of its own."""
        yield

    def stage_chunk(self, upload: str, start: int, source: BinaryIO) -> tuple[str, int]:
        """Store all bytes of ``source`` as the part of ``upload`` that begins at byte
        ``start``, whole or not at all; returns the part's name and its byte count."""
        raise self.no_staging()

    def open_chunk(self, upload: str, name: str) -> BinaryIO:
        """The bytes of a staged part; ``MissingBlobError`` if it is not there."""
        raise self.no_staging()

    def write_staged(
        self,
        upload: str,
        parts: Sequence[tuple[str, int]],
        expected: BlobHash | Digest | None = None,
        *,
        known: BlobHash | None = None,
    ) -> StoredBlob:
        """Store the staged ``parts`` (name, byte count), in order, as one blob, as ``write``
        does. ``known`` is their hash as they were staged (by this process), if known.
        This default reads them back (and checks them against ``known``); a backend that
        can adopt them in place does so."""
        with _Concatenated(self, upload, [name for name, _ in parts]) as stream:
            return self.write(stream, expected or known)  # type: ignore[arg-type]

    def drop_upload(self, upload: str) -> None:
        """Remove every staged part of ``upload`` (none there is fine)."""
        raise self.no_staging()

    def iter_uploads(self) -> Iterator[tuple[str, dt.datetime]]:
        """Each upload with staged parts, and when its latest part was written."""
        return iter(())

    def no_staging(self) -> ConfigurationError:
        """The error of a backend that cannot stage chunked uploads."""
        return ConfigurationError(f"blob backend {self.url} cannot stage chunked uploads")

    def missing_chunk(self, upload: str, name: str) -> MissingBlobError:
        """The error for a staged part that is not there."""
        return MissingBlobError(f"part {name} of upload {upload} is missing from {self.url}")


def check_staging_name(*names: str) -> None:
    """Refuse upload and chunk names that are not plain lowercase hex ids (``ValueError``):
    they become file names and object keys."""
    for name in names:
        if not _STAGING_NAME.fullmatch(name):
            raise ValueError(f"invalid upload staging name {name!r}")


class _Concatenated(io.RawIOBase):
    """The staged parts of an upload read as one stream, each opened when reached."""

    def __init__(self, backend: BlobStore, upload: str, names: Sequence[str]) -> None:
        super().__init__()
        self._backend = backend
        self._upload = upload
        self._names = list(names)
        self._current: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while True:
            if self._current is None:
                if not self._names:
                    return 0
                self._current = self._backend.open_chunk(self._upload, self._names.pop(0))
            data = self._current.read(len(view))
            if data:
                view[: len(data)] = data
                return len(data)
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


class LimitedReader(io.RawIOBase):
    """At most ``remaining`` bytes of ``raw``, which it closes when closed."""

    def __init__(self, raw: BinaryIO, remaining: int) -> None:
        super().__init__()
        self._raw = raw
        self._remaining = remaining

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")[: self._remaining]
        if not view:
            return 0
        data = self._raw.read(len(view))
        view[: len(data)] = data
        self._remaining -= len(data)
        return len(data)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()
