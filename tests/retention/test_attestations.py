"""Attestations are packages retained exactly as long as their subject (issue #15, item 3).

Run on SQLite and PostgreSQL through the real sweep: an attestation never expires before
its subject, expires in the same sweep (its bytes collected with the subject's), is held
by the subject's holds and kept by the subject's keep rules, and the dry run, ``explain``,
``verify`` and a views rebuild all tell the truth about it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from artifactstore_core import ArtifactStore, queries
from artifactstore_core.domain.attestation import SignedStatement
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import (
    IntegrityError,
    InvalidInputError,
    PackageExpiredError,
    RetentionError,
)
from artifactstore_core.schema import (
    events,
    package_attestations,
    retention_holds,
    retention_state,
)
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.testing.clock import FrozenClock

pytestmark = pytest.mark.integration

WEEK = dt.timedelta(days=7)
PREDICATE = "https://slsa.dev/provenance/v1"
NO_GRACE = dt.timedelta(0)


class RecordingAttestor:
    """Signs nothing: an envelope naming the subject and inputs (the linkage and retention
    do not depend on the envelope's bytes; tests/evidence checks the real DSSE ones)."""

    def sign(self, subject: Package, inputs: Sequence[Package]) -> SignedStatement:
        body = {"subject": subject.reference, "inputs": [p.reference for p in inputs]}
        return SignedStatement(json.dumps(body).encode(), PREDICATE, ("test-key",))


def _put(store: ArtifactStore, name: str = "reports/daily", klass: str = "transient") -> Package:
    return store.put(name, {"summary.csv": f"{name} rows".encode()}, retention_class=klass)


def _event_count(store: ArtifactStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0)


def _blob_exists(store: ArtifactStore, package: Package) -> bool:
    return all(store.blobs.exists(entry.blob.blake3) for entry in package.files)


def test_an_attestation_is_a_linked_package_listed_with_its_subject(
    tiered: ArtifactStore,
) -> None:
    raw = _put(tiered, "raw/logs")
    subject = tiered.put(
        "reports/daily", {"summary.csv": b"rows"}, retention_class="transient", inputs=[raw.id]
    )
    attestation = tiered.attest(subject.reference, RecordingAttestor(), actor="ci")
    assert attestation.kind == "attestation"
    assert attestation.reference == ".attestations/reports/daily/1@1"
    assert attestation.attests == "reports/daily@1"
    assert attestation.expires_at is None  # none of its own: it goes with its subject
    assert attestation.retention_class == subject.retention_class
    assert [e.path for e in attestation.files] == ["reports/daily@1.intoto.jsonl"]
    line = tiered.read_bytes(attestation, record=False)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"subject": "reports/daily@1", "inputs": ["raw/logs@1"]}
    assert attestation.metadata["subject_id"] == str(subject.id)
    again = tiered.attest(subject.reference, RecordingAttestor())
    assert again.reference == ".attestations/reports/daily/1@2"
    assert [a.reference for a in tiered.attestations("reports/daily@1")] == [
        attestation.reference, again.reference,
    ]  # fmt: skip
    assert tiered.describe("reports/daily@1").attestations == (
        attestation.reference, again.reference,
    )  # fmt: skip
    assert tiered.describe("reports/daily@1").to_dict()["attestations"] == [
        attestation.reference, again.reference,
    ]  # fmt: skip
    assert tiered.describe(attestation.reference).to_dict()["attests"] == "reports/daily@1"
    linked = [
        e
        for e in tiered.events(subject_id=str(subject.id))
        if e.event.event_type == "PackageAttested"
    ]
    assert [e.actor for e in linked] == ["ci", "artifactstore"]
    assert tiered.check_views() == []
    tiered.rebuild_views()
    assert tiered.describe("reports/daily@1").attestations == (
        attestation.reference, again.reference,
    )  # fmt: skip
    assert tiered.check_views() == []


def test_names_and_kind_of_attestations_are_reserved(tiered: ArtifactStore) -> None:
    before = _event_count(tiered)
    with pytest.raises(InvalidInputError, match="reserved for attestations"):
        tiered.put(".attestations/reports/daily/1", {"f": b"x"})
    with pytest.raises(InvalidInputError, match="reserved for attestations"):
        tiered.put("reports/fake", {"f": b"x"}, kind="attestation")
    with pytest.raises(InvalidInputError, match="invalid package name"):
        tiered.put(".hidden/x", {"f": b"x"})
    assert _event_count(tiered) == before


def test_it_never_expires_before_its_subject_and_goes_in_the_same_sweep(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    subject = _put(tiered)
    attestation = tiered.attest(subject, RecordingAttestor())
    other = _put(tiered, "reports/other")
    clock.advance(WEEK / 2)
    assert tiered.sweep(grace=NO_GRACE).expired == []
    # A longer expiry of the subject keeps the attestation as long.
    tiered.set_retention(subject, expires_at=clock.now + 2 * WEEK)
    clock.advance(WEEK)
    result = tiered.sweep(grace=NO_GRACE)
    assert [p.reference for p in result.expired] == ["reports/other@1"]
    assert tiered.describe(attestation.id).status == "active"
    assert _blob_exists(tiered, attestation)
    clock.advance(2 * WEEK)
    plan = tiered.sweep(grace=NO_GRACE, dry_run=True).plan
    assert [p.reference for p in plan.expire] == ["reports/daily@1", attestation.reference]
    assert plan.expire[1].expires_at == tiered.describe(subject.id).expires_at
    deleted = {d.content_address for d in plan.delete}
    assert attestation.files[0].blob.content_address in deleted
    assert tiered.explain(attestation.id).verdict.startswith(
        "retained with reports/daily@1, which it attests: due:"
    )
    result = tiered.sweep(grace=NO_GRACE)
    assert [p.reference for p in result.expired] == [p.reference for p in plan.expire]
    (expiry,) = {
        e.sequence
        for e in tiered.events(subject_kind="package")
        if e.event.event_type == "PackageExpired" and e.event.subject_id == str(subject.id)
    }
    (follower,) = [
        e
        for e in tiered.events(since=expiry - 1, subject_id=str(attestation.id))
        if e.event.event_type == "PackageExpired"
    ]
    assert follower.sequence == expiry + 1  # the same transaction, right after its subject
    assert tiered.describe(attestation.id).status == "expired"
    assert not _blob_exists(tiered, attestation)
    assert other not in tiered.attestations(subject)  # only its own
    with pytest.raises(PackageExpiredError):
        tiered.attest(subject, RecordingAttestor())
    assert tiered.check_views() == []


def test_a_hold_on_the_subject_holds_its_attestations(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    subject = _put(tiered)
    first = tiered.attest(subject, RecordingAttestor())
    hold = tiered.place_hold(subject, reason="audit 42")
    second = tiered.attest(subject, RecordingAttestor())  # made while held: held too
    for attestation in (first, second):
        (mirrored,) = tiered.describe(attestation.id).holds
        assert mirrored.reason == "held with reports/daily@1: audit 42"
    clock.advance(4 * WEEK)
    assert tiered.sweep(grace=NO_GRACE).expired == []
    assert _blob_exists(tiered, first) and _blob_exists(tiered, second)
    assert "hold(s) stand" in tiered.explain(first.id).verdict
    # Its own holds and retention cannot be changed: they are the subject's.
    before = _event_count(tiered)
    with pytest.raises(RetentionError, match="attestation of reports/daily@1"):
        tiered.release_hold(first.id, mirrored.hold_id, reason="escape")
    with pytest.raises(RetentionError, match="attestation of reports/daily@1"):
        tiered.place_hold(first.id, reason="mine")
    with pytest.raises(RetentionError, match="attestation of reports/daily@1"):
        tiered.set_retention(first.id, expires_at=clock.now + WEEK)
    assert _event_count(tiered) == before
    tiered.release_hold(subject, hold.hold_id, reason="audit closed")
    assert tiered.describe(first.id).holds == () == tiered.describe(second.id).holds
    expired = tiered.sweep(grace=NO_GRACE).expired
    assert {p.package_id for p in expired} == {subject.id, first.id, second.id}
    assert not _blob_exists(tiered, first) and not _blob_exists(tiered, second)
    assert tiered.check_views() == []


def test_a_hold_placed_on_an_expired_subject_keeps_its_attestation_bytes(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    subject = _put(tiered)
    attestation = tiered.attest(subject, RecordingAttestor())
    clock.advance(2 * WEEK)
    grace = 3 * WEEK
    assert len(tiered.sweep(grace=grace).expired) == 2  # within grace: bytes still there
    tiered.place_hold(subject, reason="late legal hold")
    assert tiered.describe(attestation.id).on_hold
    tiered.sweep(grace=NO_GRACE)
    assert _blob_exists(tiered, subject) and _blob_exists(tiered, attestation)


def test_a_keep_rule_on_the_subject_keeps_its_attestation(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    tiered.set_keep_rule("prefix:reports")
    old, current = _put(tiered), _put(tiered)
    old_attestation = tiered.attest(old, RecordingAttestor())
    kept_attestation = tiered.attest(current, RecordingAttestor())
    clock.advance(4 * WEEK)
    expired = {p.reference for p in tiered.sweep(grace=NO_GRACE).expired}
    assert expired == {"reports/daily@1", old_attestation.reference}
    assert tiered.describe(kept_attestation.id).status == "active"
    assert _blob_exists(tiered, kept_attestation)
    assert "keep rule 'prefix:reports'" in tiered.explain(kept_attestation.id).verdict


def test_a_limited_sweep_expires_attestations_with_their_subjects(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    subjects = [_put(tiered, f"reports/r{n}") for n in range(3)]
    attestations = {s.id: tiered.attest(s, RecordingAttestor()).id for s in subjects}
    clock.advance(2 * WEEK)
    first = tiered.sweep(grace=NO_GRACE, limit=1, batch_size=1)
    (gone,) = [p.package_id for p in first.expired if p.package_id in attestations]
    assert {p.package_id for p in first.expired} == {gone, attestations[gone]}
    for subject in subjects:
        status = tiered.describe(subject.id).status
        assert tiered.describe(attestations[subject.id]).status == status
    assert len(tiered.sweep(grace=NO_GRACE, batch_size=1).expired) == 4
    assert tiered.check_views() == []


def test_verify_checks_the_attestations_bytes_with_the_subject(tiered: ArtifactStore) -> None:
    subject = _put(tiered)
    attestation = tiered.attest(subject, RecordingAttestor())
    assert tiered.verify(subject.reference).references == (
        subject.reference, attestation.reference,
    )  # fmt: skip
    assert isinstance(tiered.blobs, LocalBlobStore)
    tiered.blobs.path(attestation.files[0].blob.blake3).write_bytes(b"tampered")
    result = tiered.verify(subject.reference)
    assert not result.ok
    (problem,) = result.problems
    assert problem.packages == (attestation.reference,)
    assert not tiered.verify(references=[subject.reference]).ok


def test_a_link_deleted_behind_the_log_cannot_purge_a_held_attestation(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    subject = _put(tiered)
    attestation = tiered.attest(subject, RecordingAttestor())
    tiered.place_hold(subject, reason="audit")
    with tiered.engine.begin() as conn:  # views edited behind the log
        conn.execute(sa.delete(retention_holds))
        conn.execute(sa.update(retention_state).values(on_hold=False))
        conn.execute(sa.delete(package_attestations))
    clock.advance(2 * WEEK)
    with pytest.raises(IntegrityError, match="views disagree with the event log"):
        tiered.sweep(grace=NO_GRACE)
    assert _blob_exists(tiered, attestation)
    tiered.rebuild_views()
    assert tiered.sweep(grace=NO_GRACE).expired == []
    assert tiered.describe(subject.id).attestations == (attestation.reference,)


def test_links_are_loaded_once_whichever_chunks_hold_their_ends(
    tiered: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = _put(tiered)
    attestation = tiered.attest(subject, RecordingAttestor())
    monkeypatch.setattr(queries, "_IN_CHUNK", 1)  # subject and attestation in two chunks
    with tiered.ledger.reading() as conn:
        loaded = queries.load_packages(conn, [subject.id, attestation.id])
    assert loaded[0].attestations == (attestation.reference,)
    assert loaded[1].attests == subject.reference
