"""Retention commands on one package: change class or expiry, place and release holds."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.attestation import mirrored_hold_id
from artifactstore_core.domain.package import Hold, Package, iso
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.retention import HOLD_KINDS, decide_change, reading_tier
from artifactstore_core.errors import InvalidInputError, NotFoundError, RetentionError
from artifactstore_core.ledger import Ledger
from artifactstore_core.retention.classes import load_class
from artifactstore_core.tiers import Tiers


def set_retention(
    ledger: Ledger,
    reference: Reference,
    *,
    retention_class: str | None,
    expires_at: dt.datetime | None,
    never_expires: bool,
    override: bool,
    reason: str | None,
    actor: str | None,
) -> Package:
    """Record a change of class and/or expiry that ``decide_change`` allows."""

    def decide(conn: sa.Connection, package: Package) -> list[ev.Event]:
        refuse_if_attestation(conn, package, "change the retention of")
        if package.status == "expired":
            raise RetentionError(
                f"package {package.reference} expired on {iso(package.expired_at)}; "
                "its retention can no longer change"
            )
        decision = decide_change(
            created_at=package.created_at,
            current=load_class(conn, package.retention_class),
            current_expiry=package.expires_at,
            target=load_class(conn, retention_class) if retention_class else None,
            expires_at=expires_at,
            clear_expiry=never_expires,
            override=override,
            reason=reason,
        )
        return [
            ev.RetentionChanged(
                package_id=str(package.id),
                retention_class=decision.retention_class,
                expires_at=iso(decision.expires_at),
                previous_class=package.retention_class,
                previous_expires_at=iso(package.expires_at),
                override=decision.shortens,
                reason=reason,
            )
        ]

    return ledger.record_on(reference, decide, actor=actor)[0]


def place_hold(
    ledger: Ledger,
    tiers: Tiers,
    reference: Reference,
    *,
    reason: str,
    kind: str,
    hold_id: uuid.UUID,
    actor: str | None,
) -> Hold:
    """Record a hold; on an expired package only while all of its bytes are still there."""
    if kind not in HOLD_KINDS:
        raise InvalidInputError(f"unknown hold kind {kind!r}; use one of {', '.join(HOLD_KINDS)}")
    if not reason or not reason.strip():
        raise InvalidInputError("a hold needs a reason")

    def decide(conn: sa.Connection, package: Package) -> list[ev.Event]:
        refuse_if_attestation(conn, package, "place the hold on")
        if package.status == "expired":
            _check_bytes_left(tiers, package)
        placed = ev.HoldPlaced(
            package_id=str(package.id), hold_id=str(hold_id), hold_kind=kind, reason=reason
        )
        # The hold stands on the package's attestations too (``attestations``).
        mirrored = [
            ev.HoldPlaced(
                package_id=str(attestation),
                hold_id=str(mirrored_hold_id(hold_id, attestation)),
                hold_kind=kind,
                reason=f"held with {package.reference}: {reason}",
            )
            for attestation in queries.attestation_ids(conn, [package.id])
        ]
        return [placed, *mirrored]

    _, recorded = ledger.record_on(reference, decide, actor=actor)
    return Hold(hold_id, kind, reason, recorded[0].actor, recorded[0].created_at)


def _check_bytes_left(tiers: Tiers, package: Package) -> None:
    """A hold on an expired package can only keep bytes that are still there."""
    backend = tiers.get(reading_tier(package.retrieval_tier))
    gone = [e.path for e in package.files if backend is None or not backend.exists(e.blob.blake3)]
    if gone:
        raise RetentionError(
            f"package {package.reference} expired on {iso(package.expires_at)} and "
            f"{len(gone)} of its {len(package.files)} file(s) are already purged "
            f"({', '.join(gone[:5])}); a hold can no longer keep them"
        )


def refuse_if_attestation(conn: sa.Connection, package: Package, what: str) -> None:
    """``RetentionError`` for ``what`` done to an attestation: its retention is its
    subject's (``artifactstore_core.attestations``)."""
    subject = queries.subject_of(conn, package.id)
    if subject is not None:
        (owner,) = queries.load_packages(conn, [subject])
        raise RetentionError(
            f"package {package.reference} is an attestation of {owner.reference} and is "
            f"retained exactly with it; {what} {owner.reference} instead"
        )


def release_hold(
    ledger: Ledger,
    reference: Reference,
    hold_id: uuid.UUID | str,
    *,
    reason: str | None,
    actor: str | None,
) -> Package:
    """Record the release of one hold; ``NotFoundError`` if the package has no such hold."""
    try:
        hold = uuid.UUID(str(hold_id))
    except ValueError as exc:
        raise InvalidInputError(f"hold id {hold_id!r} is not a UUID") from exc

    def decide(conn: sa.Connection, package: Package) -> list[ev.Event]:
        refuse_if_attestation(conn, package, "release the hold of")
        if hold not in {h.hold_id for h in package.holds}:
            standing = ", ".join(str(h.hold_id) for h in package.holds) or "none"
            raise NotFoundError(
                f"package {package.reference} has no hold {hold}; standing holds: {standing}"
            )
        attestations = queries.load_packages(conn, queries.attestation_ids(conn, [package.id]))
        return [
            ev.HoldReleased(
                package_id=str(held.id),
                hold_id=str(released),
                reason=reason,
                holds_remaining=len(held.holds) - 1,
            )
            for held, released in [
                (package, hold),
                *((a, mirrored_hold_id(hold, a.id)) for a in attestations),
            ]
            if released in {h.hold_id for h in held.holds}
        ]

    return ledger.record_on(reference, decide, actor=actor)[0]
