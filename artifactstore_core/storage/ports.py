"""The storage protocol every blob backend implements.

A backend stores immutable blobs under their BLAKE3 address. Writes hash while they
stream, are atomic (nothing is visible under an address unless complete and verified),
idempotent and deduplicated. Reads verify the digest as they stream.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

from artifactstore_core.errors import IntegrityError, MissingBlobError
from artifactstore_core.hashing import BlobHash, Digest, DigestMismatchError, VerifyingReader

HEAL_ATTEMPTS = 3
"""Times a write path stores again blobs deleted between its write and its commit."""


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


class BlobStore(ABC):
    """A content-addressed blob backend (local directory, S3 bucket, memory)."""

    #: A URL that reopens this backend (``/srv/blobs``, ``s3://bucket/prefix``, ``memory://x``).
    url: str
    #: Remote backends prefer the caller to hash a re-readable source first, so that bytes
    #: the registry already records there are never uploaded again.
    hash_before_write: bool = False

    @abstractmethod
    def write(self, source: BinaryIO, expected: BlobHash | Digest | None = None) -> StoredBlob:
        """Store the bytes of ``source`` under their BLAKE3 address.

        With ``expected`` given (a full ``BlobHash`` or one ``Digest``; compare with
        ``hashing.matches``), bytes that hash differently raise ``IntegrityError`` and
        nothing becomes visible. Storing bytes already present is a successful no-op.
        """

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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has none."""
