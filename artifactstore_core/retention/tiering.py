"""Tier moves (hot → cold → archive) and restores from the archive.

A move copies every blob to the target tier (verified as written), records the new
locations and the package's tier in one transaction, then deletes the old copies no
other package in the old tier still needs. Copies are confirmed in the target under
the chain lock before they are recorded (a sweep may delete unrecorded copies), and made
again if gone. A crash between the two steps leaves an extra copy, never a missing one;
the next sweep collects it once the grace period has passed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from artifactstore_core.domain import events as ev
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.retention import TIERS
from artifactstore_core.errors import (
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    PackageExpiredError,
)
from artifactstore_core.hashing import BlobHash
from artifactstore_core.schema import artifact_files, retention_state
from artifactstore_core.storage import HEAL_ATTEMPTS, BlobsGone, BlobStore, StoredBlob

if TYPE_CHECKING:
    from artifactstore_core.domain.references import Reference
    from artifactstore_core.store import ArtifactStore


def tier_store(store: ArtifactStore, tier: str) -> BlobStore:
    """The backend of ``tier``; ``ConfigurationError`` naming the setting if none."""
    if tier not in TIERS:
        raise InvalidInputError(f"unknown tier {tier!r}; use one of {', '.join(TIERS)}")
    backend = store.tiers.get(tier)
    if backend is None:
        raise ConfigurationError(
            f"tier {tier!r} has no backend configured; set ARTIFACTSTORE_TIER_{tier.upper()}_URL"
        )
    return backend


def _unique_blobs(package: Package) -> list[BlobHash]:
    return list({entry.blob.content_address: entry.blob for entry in package.files}.values())


def _copy(source: BlobStore, target: BlobStore, blobs: Sequence[BlobHash]) -> list[StoredBlob]:
    copied = []
    for blob in blobs:
        with source.open(blob) as reader:
            copied.append(target.write(reader, blob))
    return copied


def _copy_and_record(
    store: ArtifactStore,
    source: BlobStore,
    target: BlobStore,
    blobs: Sequence[BlobHash],
    record: Callable[[sa.Connection, list[StoredBlob]], list[ev.Event]],
    actor: str | None,
) -> None:
    """Copy ``blobs`` (verified) and commit ``record`` once every copy is confirmed in
    ``target`` under the chain lock; copies a sweep deleted meanwhile are made again."""
    for _attempt in range(HEAL_ATTEMPTS):
        copied = _copy(source, target, blobs)

        def decide(
            conn: sa.Connection, _now: dt.datetime, copied: list[StoredBlob] = copied
        ) -> list[ev.Event]:
            gone = store.missing_from(target, blobs)
            if gone:
                raise BlobsGone(gone)
            return record(conn, copied)

        try:
            store._commit(decide, actor=actor)
        except BlobsGone:
            continue
        return
    raise ConflictError(
        f"copies to {target.url} were deleted {HEAL_ATTEMPTS} times before they could be "
        "recorded (is a sweep with grace 0 running in a loop?); nothing was recorded"
    )


def move_tier(
    store: ArtifactStore,
    reference: Reference,
    tier: str,
    *,
    actor: str | None = None,
) -> Package:
    """Move a package's bytes to ``tier``; a no-op if it is there already."""
    target = tier_store(store, tier)
    package = store.describe(reference)
    if package.status == "expired":
        raise PackageExpiredError(f"package {package.reference} has expired; it cannot move")
    if package.retrieval_tier == tier:
        return package
    current = package.retrieval_tier
    source = tier_store(store, current)
    blobs = _unique_blobs(package)

    def record(conn: sa.Connection, copied: list[StoredBlob]) -> list[ev.Event]:
        stored = store._blob_events(conn, copied, tier)
        return [*stored, ev.PackageTierChanged(package_id=str(package.id), tier=tier)]

    _copy_and_record(store, source, target, blobs, record, actor)
    _drop_old_copies(store, package, current, blobs, f"moved to {tier}", actor)
    return store.describe(package.id)


def _drop_old_copies(
    store: ArtifactStore,
    package: Package,
    tier: str,
    blobs: Sequence[BlobHash],
    reason: str,
    actor: str | None,
) -> None:
    """Delete copies in ``tier`` that no other non-expired package there needs."""
    backend = store.tiers[tier]

    def decide(conn: sa.Connection, _now: dt.datetime) -> list[ev.Event]:
        f, s = artifact_files, retention_state
        needed = set(
            conn.execute(
                sa.select(f.c.content_address)
                .join(s, s.c.package_id == f.c.package_id)
                .where(f.c.content_address.in_([b.content_address for b in blobs]))
                .where(f.c.package_id != package.id, s.c.retrieval_tier == tier)
                .where(sa.or_(s.c.status == "active", s.c.on_hold.is_(True)))
            ).scalars()
        )
        purged: list[ev.Event] = []
        for blob in blobs:
            if blob.content_address not in needed:
                backend.delete(blob.blake3)
                purged.append(
                    ev.BlobPurged(content_address=blob.content_address, backend=tier, reason=reason)
                )
        return purged

    store._commit(decide, actor=actor)


def _tier_event(
    package: Package, status: str
) -> Callable[[sa.Connection, dt.datetime], list[ev.Event]]:
    def decide(_conn: sa.Connection, _now: dt.datetime) -> list[ev.Event]:
        return [
            ev.PackageTierChanged(package_id=str(package.id), tier="archive", restore_status=status)
        ]

    return decide


def restore(store: ArtifactStore, reference: Reference, *, actor: str | None = None) -> Package:
    """Bring an archived package's bytes back to the hot tier so it can be read.

    ``restore_status`` goes ``requested`` → ``in_progress`` → ``restored``; a failure
    leaves ``in_progress`` and the restore can be run again.
    """
    package = store.describe(reference)
    if package.retrieval_tier != "archive":
        raise InvalidInputError(
            f"package {package.reference} is in tier {package.retrieval_tier!r}; "
            "only archived packages need a restore"
        )
    if package.restore_status == "restored":
        return package
    archive, hot = tier_store(store, "archive"), tier_store(store, "hot")
    for status in ("requested", "in_progress"):
        store._commit(_tier_event(package, status), actor=actor)

    def finish(conn: sa.Connection, copied: list[StoredBlob]) -> list[ev.Event]:
        done = ev.PackageTierChanged(
            package_id=str(package.id), tier="archive", restore_status="restored"
        )
        return [*store._blob_events(conn, copied, "hot"), done]

    _copy_and_record(store, archive, hot, _unique_blobs(package), finish, actor)
    return store.describe(package.id)
