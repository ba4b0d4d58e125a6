"""Integrity of stored bytes: verify packages' blobs in every tier that holds them, repair."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.retention import tiers_holding
from artifactstore_core.errors import IntegrityError, MissingBlobError, NotFoundError
from artifactstore_core.hashing import BlobHash
from artifactstore_core.ledger import Ledger
from artifactstore_core.storage import BlobStore
from artifactstore_core.tiers import Tiers


@dataclass(frozen=True)
class BlobProblem:
    """A blob that ``verify`` found missing or corrupt, with the packages that need it."""

    content_address: str
    backend: str
    problem: Literal["missing", "corrupt"]
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


@dataclass(frozen=True)
class _Selection:
    packages: list[Package]
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
        blobs: dict[tuple[str, str], tuple[BlobHash, list[str]]] = {}
        for package in selection.packages:
            for tier in tiers_holding(package.retrieval_tier, package.restore_status):
                for entry in package.files:
                    key = (entry.blob.content_address, tier)
                    blobs.setdefault(key, (entry.blob, []))[1].append(package.reference)
        problems: list[BlobProblem] = []
        verified = 0
        for (address, tier), (blob, users) in blobs.items():
            store = self.tiers.get(tier)
            problem = check_blob(store, blob, rehash) if store else "no backend for tier"
            if problem is None:
                verified += blob.size if rehash else 0
            else:
                kind: Literal["missing", "corrupt"] = (
                    "corrupt" if problem.startswith("corrupt") else "missing"
                )
                problems.append(BlobProblem(address, tier, kind, problem, tuple(users)))
            if progress:
                progress(blob.size)
        repaired = [
            p
            for p in problems
            if repair and self._repair(p, blobs[p.content_address, p.backend][0])
        ]
        return VerifyResult(
            packages=len(selection.packages),
            blobs=len(blobs),
            bytes_verified=verified,
            problems=tuple(p for p in problems if p not in repaired),
            repaired=tuple(repaired),
            references=tuple(p.reference for p in selection.packages),
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
        with self.ledger.reading() as conn:
            if reference is not None:
                package = queries.load_package(conn, reference)
                return _Selection([package, *_attestations(conn, [package])])
            if references is None:
                filters = where or queries.PackageFilter(status="active")
                return _Selection(queries.load_packages(conn, queries.list_ids(conn, filters)))
            ids: list[uuid.UUID] = []
            unknown = []
            for item in references:
                try:
                    ids.append(queries.resolve(conn, item))
                except NotFoundError:
                    unknown.append(str(item))
            loaded = queries.load_packages(conn, list(dict.fromkeys(ids)))
            active = [p for p in loaded if p.status == "active"]
            attestations = [a for a in _attestations(conn, active) if a.id not in ids]
        expired = tuple(p.reference for p in loaded if p.status != "active")
        return _Selection([*active, *attestations], expired, tuple(unknown))

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


def _attestations(conn: sa.Connection, packages: Sequence[Package]) -> list[Package]:
    """The attestations of ``packages``, verified with them."""
    return queries.load_packages(conn, queries.attestation_ids(conn, [p.id for p in packages]))


def check_blob(store: BlobStore, blob: BlobHash, rehash: bool) -> str | None:
    """What is wrong with ``blob`` in ``store`` (``None``: nothing); with ``rehash`` its
    bytes are read and re-hashed, without only its presence is checked."""
    if not rehash:
        return None if store.exists(blob.blake3) else f"missing from {store.url}"
    try:
        with store.open(blob) as reader:
            while reader.read(4 * 1024 * 1024):
                pass
    except MissingBlobError:
        return f"missing from {store.url}"
    except IntegrityError as exc:
        return f"corrupt: {exc}"
    return None
