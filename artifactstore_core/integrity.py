"""Integrity of stored bytes: verify packages' blobs in every tier that holds them, repair
(ADR-0011).

``verify`` checks each blob once in each tier that must hold it: that it is there, that it
has the recorded size (asked of the file system first, for a large local blob), and that
its bytes hash to the recorded BLAKE3 digest, its content address. SHA-256 is not
computed again: both digests were recorded from one pass over the same bytes, so bytes
of that size and BLAKE3 digest are those bytes, and BLAKE3 runs about 2.5 times as fast.
Reads (``BlobStore.open``) still check both.

Of the views it reads only what it needs: the packages' status and tiers, and their files'
digests and sizes (two queries for every active package). Local blobs are read with
``os.open``/``os.read``, not file objects; large and remote ones on ``THREADS`` threads
(reading and hashing release the GIL), small local ones on the calling thread meanwhile.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import blake3
import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.retention import tiers_holding
from artifactstore_core.errors import IntegrityError, MissingBlobError, NotFoundError
from artifactstore_core.hashing import CHUNK_SIZE, BlobHash, Digest
from artifactstore_core.ledger import Ledger
from artifactstore_core.schema import artifact_files, artifact_packages, retention_state
from artifactstore_core.storage import BlobStore
from artifactstore_core.tiers import Tiers

THREADS = min(8, os.cpu_count() or 2)
"""Threads that check large or remote blobs at once."""
SMALL = 64 * 1024
"""Local blobs of at most this size are read with one ``os.read`` on the calling thread
(a thread hand-off and the GIL would cost more than they save)."""
_READ_SIZE = 1024 * 1024
"""Bytes of a large local blob read at a time (hashed while still in the CPU's cache:
faster here than 256 KiB or 4 MiB)."""
_BATCH_BYTES = 8 * 1024 * 1024
_BATCH_BLOBS = 16
"""A thread checks blobs in batches of up to this many bytes or blobs."""
_IN_CHUNK = 500

ProblemKind = Literal["missing", "corrupt"]


@dataclass(frozen=True)
class BlobProblem:
    """A blob that ``verify`` found missing or corrupt, with the packages that need it."""

    content_address: str
    backend: str
    problem: ProblemKind
    detail: str
    packages: tuple[str, ...]


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` checked and found.

    ``references`` are the packages checked; of references given by the caller,
    ``expired`` ones were not checked and ``unknown`` ones select no package.
    """

    packages: int
    blobs: int
    bytes_verified: int
    problems: tuple[BlobProblem, ...] = field(default=())
    repaired: tuple[BlobProblem, ...] = field(default=())
    references: tuple[str, ...] = field(default=())
    expired: tuple[str, ...] = field(default=())
    unknown: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unknown


_Package = tuple[str, str, tuple[str, ...]]
"""A package as ``verify`` reads it: reference, status, the tiers that must hold its bytes."""
_File = tuple[int, str, str, str, int]
"""A file as ``verify`` reads it: its package's index, path, BLAKE3 hex, SHA-256 hex, size."""
_Check = tuple[str, int]
"""A blob to check: its BLAKE3 hex and size."""
_Found = tuple[ProblemKind, str]
"""What is wrong with a blob: the kind of problem and its detail."""


@dataclass(frozen=True)
class _Selection:
    """Packages, and their files by package and path: flat lists of tuples of plain values,
    which the garbage collector stops tracking (an object per package kept it busy)."""

    packages: list[_Package]
    files: list[_File]
    expired: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


class Integrity:
    """Checks the bytes the registry records against the backends of their tiers."""

    def __init__(self, ledger: Ledger, tiers: Tiers) -> None:
        self.ledger = ledger
        self.tiers = tiers

    def verify(
        self,
        reference: Reference | None = None,
        *,
        where: queries.PackageFilter | None = None,
        references: Sequence[Reference] | None = None,
        rehash: bool = True,
        repair: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyResult:
        """See ``ArtifactStore.verify``."""
        selection = self._select(reference, where, references)
        packages = selection.packages
        wanted: dict[str, dict[str, int]] = {t: {} for _, _, tiers in packages for t in tiers}
        for index, _, blake3_hex, _, size in selection.files:
            for tier in packages[index][2]:
                wanted[tier][blake3_hex] = size  # tier -> BLAKE3 hex -> size, in first use
        failed: dict[tuple[str, str], _Found] = {}
        verified = 0
        for tier, sizes in wanted.items():
            checks = list(sizes.items())
            for (blake3_hex, size), found in zip(
                checks, check_blobs(self.tiers.get(tier), checks, rehash), strict=True
            ):
                if found is None:
                    verified += size
                else:
                    failed[tier, blake3_hex] = found
                if progress:
                    progress(size)
        problems = _problems(selection, failed)
        repaired = [p for p, blob in problems if repair and self._repair(p, blob)]
        return VerifyResult(
            packages=len(packages),
            blobs=sum(len(sizes) for sizes in wanted.values()),
            bytes_verified=verified if rehash else 0,
            problems=tuple(p for p, _ in problems if p not in repaired),
            repaired=tuple(repaired),
            references=tuple(reference for reference, _, _ in packages),
            expired=selection.expired,
            unknown=selection.unknown,
        )

    def _select(
        self,
        reference: Reference | None,
        where: queries.PackageFilter | None,
        references: Sequence[Reference] | None,
    ) -> _Selection:
        """One package (any status) with its attestations; packages by ``where``; the active
        ones of ``references`` with their attestations (expired and unknown ones set aside);
        or every active package."""
        loaded = _Loaded()
        with self.ledger.reading() as conn:
            if reference is not None:
                ids = [queries.resolve(conn, reference)]
                return loaded.by_ids(conn, ids + queries.attestation_ids(conn, ids))
            if references is None:
                if where is None:
                    return loaded.load(conn, retention_state.c.status == "active").selection()
                return loaded.by_ids(conn, queries.list_ids(conn, where))
            ids, unknown = [], []
            for item in references:
                try:
                    ids.append(queries.resolve(conn, item))
                except NotFoundError:
                    unknown.append(str(item))
            ids = list(dict.fromkeys(ids))
            given = loaded.by_ids(conn, ids)
            active = [i for i, (_, status, _) in zip(ids, given.packages, strict=True)
                      if status == "active"]  # fmt: skip
            named = set(ids)
            attestations = [a for a in queries.attestation_ids(conn, active) if a not in named]
            return loaded.by_ids(
                conn,
                active + attestations,
                expired=tuple(r for r, status, _ in given.packages if status != "active"),
                unknown=tuple(unknown),
            )

    def _repair(self, problem: BlobProblem, blob: BlobHash) -> bool:
        """Copy ``blob`` into the backend of ``problem`` from the first other tier that
        holds it intact (verified as it streams); ``False`` if none does."""
        target = self.tiers.get(problem.backend)
        for tier, source in self.tiers.items():
            if target is None or tier == problem.backend:
                continue
            try:
                with source.open(blob) as reader:
                    target.write(reader, blob)
            except IntegrityError:
                continue
            return True
        return False


def _problems(
    selection: _Selection, failed: dict[tuple[str, str], _Found]
) -> list[tuple[BlobProblem, BlobHash]]:
    """The problems ``failed`` holds (by tier and BLAKE3 hex), in its order, each with the
    packages that need the blob there and the blob's hash."""
    if not failed:
        return []
    users: dict[tuple[str, str], list[str]] = {key: [] for key in failed}
    hashes: dict[tuple[str, str], BlobHash] = {}
    for index, _, blake3_hex, sha256_hex, size in selection.files:
        reference, _, tiers = selection.packages[index]
        for tier in tiers:
            needing = users.get((tier, blake3_hex))
            if needing is not None and reference not in needing[-1:]:
                needing.append(reference)
                hashes[tier, blake3_hex] = BlobHash.from_hex(blake3_hex, sha256_hex, size)
    return [
        (BlobProblem(f"blake3:{key[1]}", key[0], *found, tuple(users[key])), hashes[key])
        for key, found in failed.items()
    ]


# ---------------------------------------------------------------------------- selection
# Package ids as text (not made UUIDs): keys within one call.
_ID = sa.cast(artifact_packages.c.package_id, sa.String)
_FILE_ID = sa.cast(artifact_files.c.package_id, sa.String)
_ROWS = 500
"""Rows fetched at a time."""


class _Loaded:
    """Packages and their files as ``verify`` reads them, by package id (as text)."""

    def __init__(self) -> None:
        self.packages: dict[str, _Package] = {}
        self.files: list[tuple[str, str, str, str, int]] = []
        self._tiers: dict[tuple[str, str | None], tuple[str, ...]] = {}

    def load(
        self,
        conn: sa.Connection,
        condition: sa.ColumnElement[bool],
        files: sa.ColumnElement[bool] | None = None,
    ) -> _Loaded:
        """Add the packages ``condition`` selects (over ``artifact_packages`` and
        ``retention_state``), by name and version, and their files: those ``files``
        selects, or without, every file is read and those of other packages dropped (a
        plain scan costs less than a join). Two queries."""
        p, s, f = artifact_packages, retention_state, artifact_files
        query = (
            sa.select(_ID, p.c.name, p.c.version, s.c.status, s.c.retrieval_tier,
                      s.c.restore_status)
            .join(s, s.c.package_id == p.c.package_id)
            .where(condition)
            .order_by(p.c.name, p.c.version)
        )  # fmt: skip
        for rows in conn.execute(query).partitions(_ROWS):
            for key, name, version, status, tier, restore in rows:
                tiers = self._tiers.get((tier, restore))
                if tiers is None:
                    tiers = self._tiers[tier, restore] = tiers_holding(tier, restore)
                self.packages[key] = (f"{name}@{version}", status, tiers)
        query = sa.select(_FILE_ID, f.c.path, f.c.digest_primary, f.c.digest_sha256, f.c.size)
        known = self.packages
        for rows in conn.execute(query if files is None else query.where(files)).partitions(_ROWS):
            self.files += [tuple(row) for row in rows if row[0] in known]
        return self

    def by_ids(
        self,
        conn: sa.Connection,
        ids: Sequence[uuid.UUID],
        expired: tuple[str, ...] = (),
        unknown: tuple[str, ...] = (),
    ) -> _Selection:
        """The packages ``ids`` name, in their order; ``NotFoundError`` for one not there."""
        loaded = {uuid.UUID(key) for key in self.packages}
        new = [i for i in dict.fromkeys(ids) if i not in loaded]
        for start in range(0, len(new), _IN_CHUNK):
            chunk = new[start : start + _IN_CHUNK]
            self.load(
                conn,
                artifact_packages.c.package_id.in_(chunk),
                artifact_files.c.package_id.in_(chunk),
            )
        by_id = {uuid.UUID(key): key for key in self.packages}
        missing = [str(i) for i in ids if i not in by_id]
        if missing:
            raise NotFoundError(f"package {missing[0]} does not exist")
        return self.selection([by_id[i] for i in ids], expired, unknown)

    def selection(
        self,
        order: Sequence[str] | None = None,
        expired: tuple[str, ...] = (),
        unknown: tuple[str, ...] = (),
    ) -> _Selection:
        """The packages of ``order`` (default: all, as loaded) and their files."""
        keys = list(self.packages) if order is None else order
        index = {key: position for position, key in enumerate(keys)}
        files = [
            (index[key], path, blake3_hex, sha256_hex, size)
            for key, path, blake3_hex, sha256_hex, size in self.files
            if key in index
        ]
        files.sort()
        return _Selection([self.packages[key] for key in keys], files, expired, unknown)


# ---------------------------------------------------------------------------- checks
def check_blobs(
    store: BlobStore | None, checks: Sequence[_Check], rehash: bool
) -> Iterator[_Found | None]:
    """What is wrong with each blob in ``store`` (``None``: nothing; a ``store`` of
    ``None``: its tier has no backend), in order. With ``rehash`` its size and BLAKE3
    digest are checked, without only its presence. Large or remote blobs are checked in
    batches on ``THREADS`` threads, small local ones here meanwhile."""
    batches = _batches(store, checks)
    threaded = [batch for batch in batches if _threaded(store, batch[0])]
    if len(threaded) < 2:
        for batch in batches:
            yield from _check_batch(store, batch, rehash)
        return
    with ThreadPoolExecutor(THREADS, thread_name_prefix="verify") as pool:
        futures = {id(b): pool.submit(_check_batch, store, b, rehash) for b in threaded}
        try:
            here = {id(b): _check_batch(store, b, rehash) for b in batches if id(b) not in futures}
            for batch in batches:
                yield from here[id(batch)] if id(batch) in here else futures[id(batch)].result()
        finally:
            for future in futures.values():
                future.cancel()


def _threaded(store: BlobStore | None, check: _Check) -> bool:
    return check[1] > SMALL or store is None or store.local_path(Digest("blake3", check[0])) is None


def _batches(store: BlobStore | None, checks: Sequence[_Check]) -> list[Sequence[_Check]]:
    """Runs of consecutive checks, all threaded or all not; threaded ones of up to
    ``_BATCH_BYTES`` or ``_BATCH_BLOBS``."""
    batches: list[Sequence[_Check]] = []
    start, size, threaded = 0, 0, False
    for index, check in enumerate(checks):
        if index > start and (
            _threaded(store, check) != threaded
            or (threaded and (size >= _BATCH_BYTES or index - start >= _BATCH_BLOBS))
        ):
            batches.append(checks[start:index])
            start, size = index, 0
        if index == start:
            threaded = _threaded(store, check)
        size += check[1]
    if start < len(checks):
        batches.append(checks[start:])
    return batches


def _check_batch(
    store: BlobStore | None, batch: Sequence[_Check], rehash: bool
) -> list[_Found | None]:
    if store is None:
        return [("missing", "no backend for tier")] * len(batch)
    if not rehash:
        return [
            None if store.exists(Digest("blake3", blake3_hex)) else _missing(store)
            for blake3_hex, _ in batch
        ]
    if store.local_path(Digest("blake3", batch[0][0])) is None:
        return [_check_stream(store, Digest("blake3", h), size) for h, size in batch]
    if not _threaded(store, batch[0]):
        return _check_small_files(store, batch)
    buffer = bytearray(min(_READ_SIZE, max(size for _, size in batch)))
    return [_check_file(store, Digest("blake3", h), size, buffer) for h, size in batch]


_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC


def _check_small_files(store: BlobStore, batch: Sequence[_Check]) -> list[_Found | None]:
    """Small local blobs, each read with one ``os.read`` (no file object) and hashed: the
    loop that bounds ``verify`` of many small files, kept to the system calls."""
    found: list[_Found | None] = []
    for blake3_hex, size in batch:
        address = Digest("blake3", blake3_hex)
        try:
            fd = os.open(_local_path(store, address), _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            found.append(_missing(store))
            continue
        try:
            data = os.read(fd, size + 1)
            if 0 < len(data) < size:  # a short read, or the end of a shorter file
                data += _read_up_to(fd, size + 1 - len(data))
            if len(data) != size:
                found.append(_wrong_size(store, address, size, os.fstat(fd).st_size))
                continue
        finally:
            os.close(fd)
        found.append(_compare(store, address, blake3.blake3(data).hexdigest()))
    return found


def _check_file(store: BlobStore, address: Digest, size: int, buffer: bytearray) -> _Found | None:
    """A large local blob: its size (``fstat``), then its bytes, read with ``os.readv``
    into ``buffer`` (no file object) and hashed."""
    try:
        fd = os.open(_local_path(store, address), _OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return _missing(store)
    try:
        stored = os.fstat(fd).st_size
        if stored != size:
            return _wrong_size(store, address, size, stored)
        hasher, count, view = blake3.blake3(), 0, memoryview(buffer)
        while read := os.readv(fd, [buffer]):
            hasher.update(view[:read])
            count += read
    finally:
        os.close(fd)
    if count != size:  # it changed while it was read
        return _wrong_size(store, address, size, count)
    return _compare(store, address, hasher.hexdigest())


def _local_path(store: BlobStore, address: Digest) -> str:
    path = store.local_path(address)
    assert path is not None  # batches of local files only reach the readers of files
    return path


def _check_stream(store: BlobStore, address: Digest, size: int) -> _Found | None:
    """A blob of any backend, streamed (stopping at the first byte past its size)."""
    try:
        raw = store.open_raw(address)
    except MissingBlobError:
        return _missing(store)
    hasher, count = blake3.blake3(), 0
    with raw:
        while chunk := raw.read(CHUNK_SIZE):
            count += len(chunk)
            if count > size:
                return _wrong_size(store, address, size, None)
            hasher.update(chunk)
    if count != size:
        return _wrong_size(store, address, size, count)
    return _compare(store, address, hasher.hexdigest())


def _read_up_to(fd: int, limit: int) -> bytes:
    """``limit`` bytes of ``fd``, or fewer at its end."""
    data = os.read(fd, limit)
    while 0 < len(data) < limit:
        more = os.read(fd, limit - len(data))
        if not more:
            break
        data += more
    return data


def _missing(store: BlobStore) -> _Found:
    return "missing", f"missing from {store.url}"


def _wrong_size(store: BlobStore, address: Digest, size: int, stored: int | None) -> _Found:
    has = f"more than {size}" if stored is None else str(stored)
    return "corrupt", f"{_stored(store, address)} has {has} bytes, expected {size}"


def _compare(store: BlobStore, address: Digest, actual_hex: str) -> _Found | None:
    if actual_hex == address.hex:
        return None
    return "corrupt", f"{_stored(store, address)} hashes to blake3:{actual_hex}"


def _stored(store: BlobStore, address: Digest) -> str:
    return f"corrupt: stored blob {address} at {store.uri(address)}"
