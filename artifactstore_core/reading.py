"""The read path: packages, their verified bytes, exports, and the retrievals they record."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.manifest import FileEntry
from artifactstore_core.domain.package import Package, check_readable
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.retention import HOT, reading_tier
from artifactstore_core.errors import (
    BlobUnknownError,
    IntegrityError,
    InvalidInputError,
    MissingBlobError,
)
from artifactstore_core.export import export_files
from artifactstore_core.hashing import BlobHash, Digest, DigestError
from artifactstore_core.hashing.digest import Algorithm
from artifactstore_core.ledger import Ledger
from artifactstore_core.schema import storage_locations
from artifactstore_core.storage.filecopy import MIN_SIZE, copy_and_digest
from artifactstore_core.storage.ports import counting
from artifactstore_core.tiers import Tiers

COPY_CHUNK = 1 << 20


def byte_range(size: int, start: int | None, end: int | None) -> tuple[int, int]:
    """The inclusive range ``start``..``end`` of ``size`` bytes (unset: from the first,
    to the last); ``InvalidInputError`` unless it is non-empty and inside them."""
    first = 0 if start is None else start
    last = size - 1 if end is None else min(end, size - 1)
    if first < 0 or first > last:
        raise InvalidInputError(f"byte range {start}-{end} is not satisfiable for {size} byte(s)")
    return first, last


def _digest(value: str | Digest) -> Digest:
    try:
        return value if isinstance(value, Digest) else Digest.parse(value)
    except DigestError as exc:
        raise InvalidInputError(f"invalid blob digest {value!r:.100}: {exc}") from exc


class Reading:
    """Reads packages and their bytes; ``record`` options record retrievals as events."""

    def __init__(self, ledger: Ledger, tiers: Tiers) -> None:
        self.ledger = ledger
        self.tiers = tiers

    def describe(self, reference: Reference) -> Package:
        """The package a reference selects, without recording a retrieval."""
        with self.ledger.reading() as conn:
            return queries.load_package(conn, reference)

    def readable(self, reference: Reference) -> Package:
        """The package (a ``Package`` is used as given), checked readable."""
        package = reference if isinstance(reference, Package) else self.describe(reference)
        check_readable(package)
        return package

    def record_retrieval(
        self,
        package: Package,
        *,
        path: str | None = None,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Record that ``package`` (or one file) was read."""
        event = ev.PackageRetrieved(
            package_id=str(package.id), purpose=purpose, run_id=run_id, path=path
        )
        self.ledger.record(lambda _conn, _now: [event], actor=actor)

    def open_entry(self, package: Package, entry: FileEntry) -> BinaryIO:
        """One file's verified stream; errors name the package, the file and, for a blob
        recorded at another URI than the tier's backend now, both places."""
        store = self.tiers.for_reading(package)
        owner = f"package {package.reference}, file {entry.path!r}"
        try:
            return store.open(entry.blob, owner=owner)
        except MissingBlobError as exc:
            tier = reading_tier(package.retrieval_tier)
            recorded = self._recorded_uri(entry.blob.content_address, tier)
            here = store.uri(entry.blob.blake3)
            if recorded is None or recorded == here:
                raise
            raise MissingBlobError(
                f"{exc}; the registry recorded it at {recorded}, but tier {tier!r} now reads "
                f"from {store.url}: point the tier back there, or put the bytes again"
            ) from exc

    def copy_entry(
        self,
        package: Package,
        entry: FileEntry,
        target_fd: int,
        offset: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Write one file's bytes into ``target_fd`` from ``offset`` on, verified: inside
        the kernel where it can (``copy_in_kernel``), otherwise through its verified
        stream. ``IntegrityError`` if they are not the registered bytes."""
        if self.copy_in_kernel(package, entry, target_fd, offset, progress=progress):
            return
        with self.open_entry(package, entry) as stream:
            while chunk := stream.read(COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    written = os.pwrite(target_fd, view, offset)
                    view, offset = view[written:], offset + written
                if progress is not None:
                    progress(len(chunk))

    def copy_in_kernel(
        self,
        package: Package,
        entry: FileEntry,
        target_fd: int,
        offset: int,
        *,
        algorithm: Algorithm = "sha256",
        write_back: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> bool:
        """Copy one file of ``MIN_SIZE`` bytes or more into ``target_fd`` (open for reading
        and writing) from ``offset`` on, inside the kernel, and check the copy against the
        file's registered digest of ``algorithm`` (``IntegrityError``); ``write_back``
        starts writing each chunk to disk at once. ``False``, with nothing written, where
        the kernel cannot copy it (a smaller file, a remote backend, another file system)."""
        store = self.tiers.for_reading(package)
        if entry.blob.size < MIN_SIZE or store.local_path(entry.blob.blake3) is None:
            return False  # remote: no need to open the object only to find it has no file
        try:
            source = store.open_raw(entry.blob.blake3)
        except MissingBlobError:
            return False  # the verified stream says where it was recorded
        with source:
            counted = counting(source, progress)
            copied = copy_and_digest(counted, target_fd, offset, algorithm, write_back=write_back)
        if copied is None:
            return False
        registered = entry.blob.blake3 if algorithm == "blake3" else entry.blob.sha256
        if copied != registered:
            raise IntegrityError(
                f"package {package.reference}, file {entry.path!r}: the stored bytes hash to "
                f"{copied}, not {registered}"
            )
        return True

    def open_entry_range(
        self, package: Package, entry: FileEntry, start: int | None, end: int | None
    ) -> BinaryIO:
        """The bytes ``start``..``end`` (inclusive) of one file, unverified."""
        first, last = byte_range(entry.blob.size, start, end)
        store = self.tiers.for_reading(package)
        return store.open_range(entry.blob.blake3, first, last - first + 1)

    def stat(self, digest: str | Digest) -> BlobHash:
        """See ``ArtifactStore.stat``."""
        parsed = _digest(digest)
        with self.ledger.reading() as conn:
            blob = queries.stored_blob(conn, parsed, HOT)
        if blob is None or not self.tiers.hot.exists(blob.blake3):
            raise BlobUnknownError([str(parsed)])
        return blob

    def names_with_blob(self, digest: str | Digest) -> list[str]:
        """See ``ArtifactStore.names_with_blob``."""
        blob = self.stat(digest)
        with self.ledger.reading() as conn:
            return queries.names_with_blob(conn, blob.content_address)

    def open_blob(
        self, digest: str | Digest, *, start: int | None = None, end: int | None = None
    ) -> BinaryIO:
        """See ``ArtifactStore.open_blob``."""
        blob = self.stat(digest)
        if start is None and end is None:
            return self.tiers.hot.open(blob)
        first, last = byte_range(blob.size, start, end)
        return self.tiers.hot.open_range(blob.blake3, first, last - first + 1)

    def _recorded_uri(self, address: str, tier: str) -> str | None:
        sl = storage_locations
        with self.ledger.reading() as conn:
            query = sa.select(sl.c.uri).where(sl.c.content_address == address, sl.c.backend == tier)
            return conn.execute(query).scalar()

    def export(
        self,
        package: Package,
        destination: str | Path,
        *,
        force: bool,
        progress: Callable[[int], None] | None,
    ) -> None:
        """Every file of a readable package under ``destination`` (``export.export_files``)."""
        export_files(
            package.files,
            destination,
            lambda entry: self.open_entry(package, entry),
            package=package.reference,
            force=force,
            progress=progress,
            # BLAKE3, the blob's address: a third of SHA-256's cost, and as binding.
            copy_blob=lambda entry, fd, counted: self.copy_in_kernel(
                package, entry, fd, 0, algorithm="blake3", write_back=True, progress=counted
            ),
        )

    def list_packages(self, where: queries.PackageFilter) -> list[Package]:
        """Packages matching ``where``, by name and version."""
        with self.ledger.reading() as conn:
            return queries.load_packages(conn, queries.list_ids(conn, where))

    def lineage(
        self, reference: Reference, *, downstream: bool, depth: int | None
    ) -> list[tuple[queries.LineageEdge, Package]]:
        """Edges from (or to) a package, each with the package at its other end."""
        with self.ledger.reading() as conn:
            start = queries.resolve(conn, reference)
            edges = queries.lineage(conn, start, downstream=downstream, depth=depth)
            related = [e.package_id if downstream else e.input_id for e in edges]
            unique: list[uuid.UUID] = list(dict.fromkeys(related))
            packages = {p.id: p for p in queries.load_packages(conn, unique)}
        return [(e, packages[r]) for e, r in zip(edges, related, strict=True)]
