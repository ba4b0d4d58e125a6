"""Attestations: signed in-toto statements stored as packages linked to their subject.

An attestation of ``reports/daily@3`` is a version of package ``.attestations/reports/daily/3``
(kind ``attestation``; a user's name never starts with ``.``) holding one file,
``reports/daily@3.intoto.jsonl``: one DSSE envelope per line. It is registered together
with a ``PackageAttested`` event naming its subject, in one transaction under the chain
lock, and from then on it is retained exactly as long as its subject:

- it has no expiry of its own: the sweep that expires the subject expires it in the same
  transaction, and collects its bytes with the subject's;
- every hold on the subject also stands on it (a mirrored hold whose id is derived from the
  subject's), placed and released with the subject's; its own retention and holds cannot
  be changed directly (``RetentionError``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.attestation import (
    ENVELOPE_MEDIA_TYPE,
    Attestor,
    SignedStatement,
    mirrored_hold_id,
)
from artifactstore_core.domain.names import ATTESTATION_KIND, attestation_name
from artifactstore_core.domain.package import Package, iso
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.retention import HOT
from artifactstore_core.errors import PackageExpiredError
from artifactstore_core.ingest import PutRequest, registration_event, resolve, validate
from artifactstore_core.ledger import Ledger, blob_stored_events
from artifactstore_core.schema import artifact_packages
from artifactstore_core.sources import collect
from artifactstore_core.storage import BlobWrite
from artifactstore_core.tiers import Tiers

_LATEST_VERSION = sa.select(sa.func.max(artifact_packages.c.version)).where(
    artifact_packages.c.name == sa.bindparam("name")
)


def envelope_path(subject: Package) -> str:
    """The attestation file's path: ``<subject name>@<version>.intoto.jsonl``."""
    return f"{subject.reference}.intoto.jsonl"


def attestation_events(
    conn: sa.Connection,
    tiers: Tiers,
    subject: Package,
    signed: SignedStatement,
    *,
    attestation_id: uuid.UUID,
    actor: str,
    now: dt.datetime,
) -> list[ev.Event]:
    """The events that register ``signed`` as a new attestation of ``subject`` (under the
    chain lock: its envelope's blob is written here, recorded by the caller's commit or,
    if that fails, collected by a later sweep as an orphan)."""
    if subject.status == "expired":
        raise PackageExpiredError(
            f"package {subject.reference} expired on {iso(subject.expired_at)}; "
            "it can no longer be attested"
        )
    request = PutRequest(
        attestation_name(subject.name, subject.version),
        {envelope_path(subject): signed.envelope.rstrip(b"\n") + b"\n"},
        kind=ATTESTATION_KIND,
        metadata={
            "subject": subject.reference,
            "subject_id": str(subject.id),
            "predicate_type": signed.predicate_type,
            "media_type": ENVELOPE_MEDIA_TYPE,
            "key_ids": list(signed.key_ids),
        },
        retention_class=subject.retention_class,
    )
    resolved = resolve(conn, validate(request, subject.retention_class), actor, attestation_id)
    (source,) = collect(request.files)
    (stored,) = tiers.hot.write_many([BlobWrite(source.open, None, source.size_hint)])
    name = request.name
    version = int(conn.execute(_LATEST_VERSION, {"name": name}).scalar() or 0) + 1
    registered = registration_event(resolved, [stored], version, now)
    holds = [
        ev.HoldPlaced(
            package_id=str(attestation_id),
            hold_id=str(mirrored_hold_id(hold.hold_id, attestation_id)),
            hold_kind=hold.kind,
            reason=f"held with {subject.reference}: {hold.reason}",
        )
        for hold in subject.holds
    ]
    attested = ev.PackageAttested(
        package_id=str(subject.id),
        attestation_id=str(attestation_id),
        predicate_type=signed.predicate_type,
        key_ids=list(signed.key_ids),
    )
    return [registered, attested, *holds, *blob_stored_events(conn, [stored], HOT)]


class Attestations:
    """Attest packages on demand and list their attestations."""

    def __init__(
        self, ledger: Ledger, tiers: Tiers, *, new_id: Callable[[], uuid.UUID] = uuid.uuid4
    ) -> None:
        self.ledger = ledger
        self.tiers = tiers
        self.new_id = new_id

    def attest(
        self, reference: Reference, attestor: Attestor, *, actor: str | None = None
    ) -> Package:
        """Sign the statement about a package and register it as a new attestation of it
        (``PackageExpiredError`` for an expired package; nothing is recorded on failure)."""
        with self.ledger.reading() as conn:
            subject = queries.load_package(conn, reference)
            inputs = _inputs(conn, subject)
        if subject.status == "expired":
            raise PackageExpiredError(
                f"package {subject.reference} expired on {iso(subject.expired_at)}; "
                "it can no longer be attested"
            )
        signed = attestor.sign(subject, inputs)  # before the lock: a KMS may be slow
        attestation_id = self.new_id()

        def decide(conn: sa.Connection, now: dt.datetime) -> list[ev.Event]:
            current = queries.load_package(conn, subject.id)  # holds and status, locked
            return attestation_events(
                conn, self.tiers, current, signed, attestation_id=attestation_id,
                actor=actor or self.ledger.actor, now=now,
            )  # fmt: skip

        def registered(conn: sa.Connection, _recorded: object) -> Package:
            return queries.load_packages(conn, [attestation_id])[0]

        return self.ledger.record_then(decide, registered, actor=actor)

    def of(self, reference: Reference) -> list[Package]:
        """The attestations of a package, oldest first (also those expired with it)."""
        with self.ledger.reading() as conn:
            subject = queries.resolve(conn, reference)
            return queries.load_packages(conn, queries.attestation_ids(conn, [subject]))


def _inputs(conn: sa.Connection, package: Package) -> list[Package]:
    return queries.load_packages(conn, [uuid.UUID(i) for i in package.provenance.inputs])


def attest_registered(
    conn: sa.Connection,
    tiers: Tiers,
    attestor: Attestor,
    registered: Sequence[ev.PackageRegistered],
    *,
    new_id: Callable[[], uuid.UUID],
    actor: str,
    now: dt.datetime,
    classes: frozenset[str] | None = None,
) -> list[ev.Event]:
    """Attestations of the packages ``registered`` (not yet committed; with ``classes``,
    only those of these retention classes), for the same transaction: a signing failure
    fails the registration, so nothing is recorded."""
    result: list[ev.Event] = []
    for event in registered:
        if event.kind == ATTESTATION_KIND:
            continue
        if classes is not None and event.retention_class not in classes:
            continue
        subject = queries.pending_package(event, now, actor)
        signed = attestor.sign(subject, _inputs(conn, subject))
        result += attestation_events(
            conn, tiers, subject, signed, attestation_id=new_id(), actor=actor, now=now
        )
    return result
