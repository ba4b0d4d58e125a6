"""Tier moves (hot → cold → archive) and restores from the archive.

A move copies every blob to the target tier (verified as written), records the new
locations and the package's tier in one transaction, then deletes the old copies no
other package still needs there. Copies are confirmed in the target under the chain lock
before they are recorded (a sweep may delete unrecorded copies), and made again if gone.
A crash between the two steps leaves an extra copy, never a missing one; the next sweep
collects it once the grace period has passed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.retention import HOT
from artifactstore_core.errors import InvalidInputError, PackageExpiredError
from artifactstore_core.hashing import BlobHash
from artifactstore_core.ledger import Ledger, blob_stored_events
from artifactstore_core.retention import predicates as rules
from artifactstore_core.schema import artifact_files
from artifactstore_core.storage import BlobStore, StoredBlob
from artifactstore_core.tiers import Tiers, check_tier


@dataclass(frozen=True, slots=True)
class TierMove:
    """A package to move to another tier."""

    package_id: uuid.UUID
    reference: str
    from_tier: str
    to_tier: str


def plan_tier_moves(
    ledger: Ledger,
    tier: str,
    *,
    older_than: dt.timedelta,
    where: queries.PackageFilter | None = None,
    limit: int | None = None,
) -> list[TierMove]:
    """Active packages created more than ``older_than`` ago (and matching ``where``) that
    are not in ``tier`` yet, by name and version; at most ``limit`` of them."""
    check_tier(tier)
    if limit is not None and limit < 1:
        raise InvalidInputError(f"limit must be at least 1, got {limit}")
    cutoff = ledger.clock() - older_than
    if where is not None and where.created_before is not None:
        cutoff = min(cutoff, where.created_before)
    filters = replace(where or queries.PackageFilter(), status="active", created_before=cutoff)
    with ledger.reading() as conn:
        packages = queries.load_packages(conn, queries.list_ids(conn, filters))
    moves = [
        TierMove(p.id, p.reference, p.retrieval_tier, tier)
        for p in packages
        if p.retrieval_tier != tier
    ]
    return moves[:limit]


def _unique_blobs(package: Package) -> list[BlobHash]:
    return list({entry.blob.content_address: entry.blob for entry in package.files}.values())


def _copy_and_record(
    ledger: Ledger,
    source: BlobStore,
    target: BlobStore,
    package: Package,
    record: Callable[[sa.Connection, list[StoredBlob]], list[ev.Event]],
    actor: str | None,
) -> Package:
    """Copy the package's blobs (verified) and commit ``record`` once every copy is
    confirmed in ``target``; returns the package as the commit leaves it."""
    blobs = _unique_blobs(package)
    copied: dict[str, StoredBlob] = {}

    def copy(only: Collection[str]) -> list[StoredBlob]:
        for blob in blobs:
            if not only or blob.content_address in only:
                with source.open(blob) as reader:
                    copied[blob.content_address] = target.write(reader, blob)
        return list(copied.values())

    return ledger.record_stored(
        target,
        copy,
        lambda conn, _now, stored: record(conn, stored),
        lambda conn, _recorded: queries.load_packages(conn, [package.id])[0],
        actor=actor,
        what=f"package {package.reference}",
    )


def move_tier(
    ledger: Ledger, tiers: Tiers, reference: Reference, tier: str, *, actor: str | None = None
) -> Package:
    """Move a package's bytes to ``tier``; a no-op if it is there already."""
    target = tiers.backend(tier)
    with ledger.reading() as conn:
        package = queries.load_package(conn, reference)
    if package.status == "expired":
        raise PackageExpiredError(f"package {package.reference} has expired; it cannot move")
    if package.retrieval_tier == tier:
        return package
    current = package.retrieval_tier
    source = tiers.backend(current)

    def record(conn: sa.Connection, copied: list[StoredBlob]) -> list[ev.Event]:
        stored = blob_stored_events(conn, copied, tier)
        return [*stored, ev.PackageTierChanged(package_id=str(package.id), tier=tier)]

    moved = _copy_and_record(ledger, source, target, package, record, actor)
    _drop_old_copies(ledger, source, package, current, f"moved to {tier}", actor)
    return moved


def _drop_old_copies(
    ledger: Ledger,
    backend: BlobStore,
    package: Package,
    tier: str,
    reason: str,
    actor: str | None,
) -> None:
    """Delete copies in ``tier`` that no other live package needs there (ADR-0003)."""
    blobs = _unique_blobs(package)

    def decide(conn: sa.Connection, _now: dt.datetime) -> list[ev.Event]:
        f = artifact_files
        needed = set(
            conn.execute(
                sa.select(f.c.content_address)
                .where(f.c.content_address.in_([b.content_address for b in blobs]))
                .where(rules.shared(f.c.content_address, tier=tier, excluding=package.id))
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

    ledger.record(decide, actor=actor)


def _tier_event(
    package: Package, status: str
) -> Callable[[sa.Connection, dt.datetime], list[ev.Event]]:
    def decide(_conn: sa.Connection, _now: dt.datetime) -> list[ev.Event]:
        return [
            ev.PackageTierChanged(package_id=str(package.id), tier="archive", restore_status=status)
        ]

    return decide


def restore(
    ledger: Ledger, tiers: Tiers, reference: Reference, *, actor: str | None = None
) -> Package:
    """Bring an archived package's bytes back to the hot tier so it can be read.

    ``restore_status`` goes ``requested`` → ``in_progress`` → ``restored``; a failure
    leaves ``in_progress`` and the restore can be run again.
    """
    with ledger.reading() as conn:
        package = queries.load_package(conn, reference)
    if package.retrieval_tier != "archive":
        raise InvalidInputError(
            f"package {package.reference} is in tier {package.retrieval_tier!r}; "
            "only archived packages need a restore"
        )
    if package.restore_status == "restored":
        return package
    archive, hot = tiers.backend("archive"), tiers.backend(HOT)
    for status in ("requested", "in_progress"):
        ledger.record(_tier_event(package, status), actor=actor)

    def finish(conn: sa.Connection, copied: list[StoredBlob]) -> list[ev.Event]:
        done = ev.PackageTierChanged(
            package_id=str(package.id), tier="archive", restore_status="restored"
        )
        return [*blob_stored_events(conn, copied, HOT), done]

    return _copy_and_record(ledger, archive, hot, package, finish, actor)
