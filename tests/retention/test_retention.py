"""Retention on SQLite and PostgreSQL: classes, holds, sweeps, exact dry runs, tiers."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from artifactstore_core import ArtifactStore, PackageFilter
from artifactstore_core.errors import (
    ArchivedError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PackageExpiredError,
    RetentionError,
)
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.retention.lease import hold_lease
from artifactstore_core.testing.clock import FrozenClock
from tests.registry.conftest import event_count

from .conftest import DAY, GRACE

pytestmark = pytest.mark.integration


def present(store: ArtifactStore, data: bytes, tier: str = "hot") -> bool:
    return store.tiers[tier].exists(hash_bytes(data).blake3)


def test_expiry_follows_the_class(tiered: ArtifactStore, clock: FrozenClock) -> None:
    for name, days in [("transient", 7), ("raw-evidence", 90), ("summary-evidence", 365),
                       ("release-evidence", 2555)]:  # fmt: skip
        package = tiered.put(f"c/{name}", {"f": name.encode()}, retention_class=name)
        assert package.expires_at == clock.now + days * DAY
    assert tiered.put("c/p", {"f": b"p"}, retention_class="permanent-record").expires_at is None


def test_extending_is_allowed_and_recorded(tiered: ArtifactStore, clock: FrozenClock) -> None:
    package = tiered.put("x", {"f": b"1"}, retention_class="transient")
    longer = tiered.set_retention(
        "x", retention_class="summary-evidence", reason="audit", actor="bob"
    )
    assert longer.expires_at == clock.now + 365 * DAY
    assert longer.retention_class == "summary-evidence"
    change = tiered.events(subject_id=str(package.id))[-1]
    assert change.actor == "bob"
    assert change.event.to_payload()["reason"] == "audit"  # type: ignore[union-attr]
    forever = tiered.set_retention("x", never_expires=True)
    assert forever.expires_at is None


def test_shortening_needs_override_and_reason(tiered: ArtifactStore, clock: FrozenClock) -> None:
    tiered.put("x", {"f": b"1"}, retention_class="summary-evidence")
    count = event_count(tiered)
    with pytest.raises(RetentionError, match="override"):
        tiered.set_retention("x", retention_class="transient")
    with pytest.raises(InvalidInputError, match="reason"):
        tiered.set_retention("x", retention_class="transient", override=True)
    assert event_count(tiered) == count
    shorter = tiered.set_retention("x", expires_at=clock.now + DAY, override=True, reason="gdpr")
    assert shorter.expires_at == clock.now + DAY
    change = tiered.events()[-1].event.to_payload()
    assert change["override"] is True and change["reason"] == "gdpr"


@pytest.mark.parametrize("protected", ["release-evidence", "permanent-record"])
def test_protected_classes_are_never_shortened(
    tiered: ArtifactStore, clock: FrozenClock, protected: str
) -> None:
    tiered.put("x", {"f": b"1"}, retention_class=protected)
    count = event_count(tiered)
    with pytest.raises(RetentionError, match=f"{protected}.*protected"):
        tiered.set_retention("x", retention_class="transient", override=True, reason="try")
    with pytest.raises(RetentionError, match="protected"):
        tiered.set_retention("x", expires_at=clock.now + DAY, override=True, reason="try")
    assert event_count(tiered) == count


def test_bad_retention_input_writes_nothing(tiered: ArtifactStore, clock: FrozenClock) -> None:
    package = tiered.put("x", {"f": b"1"})
    count = event_count(tiered)
    with pytest.raises(InvalidInputError, match="unknown retention class 'forever'"):
        tiered.set_retention("x", retention_class="forever")
    with pytest.raises(NotFoundError, match="has no hold"):
        tiered.release_hold("x", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidInputError, match="not a UUID"):
        tiered.release_hold("x", "nope")
    with pytest.raises(InvalidInputError, match="reason"):
        tiered.place_hold("x", reason=" ")
    with pytest.raises(InvalidInputError, match="hold kind"):
        tiered.place_hold("x", reason="r", kind="friendly")
    with pytest.raises(InvalidInputError, match="time zone"):
        tiered.sweep(dt.datetime(2030, 1, 1))
    with pytest.raises(InvalidInputError, match="unknown tier"):
        tiered.move_tier(package.id, "lukewarm")
    hot_only = ArtifactStore(tiered.engine, tiered.blobs)  # the same registry, no cold tier
    with pytest.raises(ConfigurationError, match="ARTIFACTSTORE_TIER_COLD_URL"):
        hot_only.move_tier(package.id, "cold")
    assert event_count(tiered) == count


def test_sweep_expires_due_packages_and_collects_their_bytes(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    due = tiered.put(
        "due", {"own": b"own bytes", "shared": b"shared bytes"}, retention_class="transient"
    )
    tiered.put("live", {"shared": b"shared bytes"}, retention_class="summary-evidence")
    forever = tiered.put("forever", {"f": b"forever"}, retention_class="permanent-record")
    clock.advance(8 * DAY)
    result = tiered.sweep()
    assert [p.package_id for p in result.expired] == [due.id]
    assert [(d.content_address, d.reason) for d in result.deleted] == [
        (hash_bytes(b"own bytes").content_address, "unreferenced")
    ]
    assert result.plan.shared_kept_blobs == 1
    assert result.plan.shared_kept_bytes == len(b"shared bytes")
    assert not present(tiered, b"own bytes")
    assert present(tiered, b"shared bytes") and present(tiered, b"forever")
    shown = tiered.describe("due")
    assert shown.status == "expired" and shown.files  # the manifest stays as a tombstone
    with pytest.raises(PackageExpiredError, match=r"due@1.*'transient' expired on 2026-01-08"):
        tiered.get("due")
    with pytest.raises(PackageExpiredError):
        tiered.read_bytes("due", "shared")
    clock.advance(100 * 365 * DAY)
    assert [p.reference for p in tiered.sweep().expired] == ["live@1"]
    assert tiered.describe(forever.id).status == "active"
    assert present(tiered, b"forever") and not present(tiered, b"shared bytes")
    assert tiered.check_views() == []
    tiered.verify_log()


def test_dry_run_is_exactly_the_plan(tiered: ArtifactStore, clock: FrozenClock) -> None:
    for index in range(6):
        tiered.put(f"p/{index}", {"own": f"own {index}".encode(), "common": b"common"},
                   retention_class="transient" if index % 2 else "summary-evidence")  # fmt: skip
    tiered.place_hold("p/1", reason="keep one")
    clock.advance(10 * DAY)
    count = event_count(tiered)
    dry = tiered.sweep(dry_run=True)
    assert event_count(tiered) == count
    assert all(present(tiered, f"own {i}".encode()) for i in range(6))
    assert {p.reference for p in dry.plan.expire} == {"p/3@1", "p/5@1"}
    real = tiered.sweep(dry.plan.now)
    assert real.plan == dry.plan
    assert real.expired == list(dry.plan.expire)
    assert real.deleted == list(dry.plan.delete)
    assert real.bytes_reclaimed == dry.plan.bytes_to_reclaim == len(b"own 3") + len(b"own 5")


def test_holds_stop_expiry_and_purge_until_all_are_released(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    tiered.put("held", {"f": b"held bytes"}, retention_class="transient")
    legal = tiered.place_hold("held", reason="litigation", actor="counsel")
    ops = tiered.place_hold("held", reason="incident review", kind="operational")
    clock.advance(30 * DAY)
    assert tiered.sweep().expired == []
    assert present(tiered, b"held bytes")
    explained = tiered.explain("held")
    assert "2 hold(s)" in explained.verdict and "litigation" in explained.verdict
    assert tiered.release_hold("held", legal.hold_id, reason="settled").on_hold is True
    assert tiered.sweep().expired == []
    assert tiered.release_hold("held", ops.hold_id).on_hold is False
    clock.advance(GRACE)
    result = tiered.sweep()
    assert [p.reference for p in result.expired] == ["held@1"]
    assert not present(tiered, b"held bytes")


def test_hold_on_an_expired_package_keeps_remaining_bytes(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    tiered.put("late", {"f": b"late bytes"}, retention_class="transient")
    clock.advance(8 * DAY)
    plan = tiered.sweep(grace=dt.timedelta(days=30), dry_run=True).plan
    assert plan.delete == ()
    tiered.sweep(grace=dt.timedelta(days=30))  # expires, keeps bytes (grace)
    tiered.place_hold("late", reason="found relevant")
    clock.advance(60 * DAY)
    assert tiered.sweep().deleted == []
    assert present(tiered, b"late bytes")


def test_grace_period_protects_young_blobs(tiered: ArtifactStore, clock: FrozenClock) -> None:
    tiered.put("young", {"f": b"young bytes"}, retention_class="transient")
    clock.advance(7 * DAY)  # due exactly now; the blob is 7 days old but the grace is relative
    assert tiered.sweep(grace=dt.timedelta(days=8)).deleted == []
    assert present(tiered, b"young bytes")


def test_orphans_from_failed_puts_are_collected_after_grace(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    tiered.blobs.write(io.BytesIO(b"orphan bytes"))  # bytes whose registration never happened
    address = hash_bytes(b"orphan bytes").content_address
    clock.set(dt.datetime.now(dt.UTC))
    assert tiered.sweep().deleted == []  # younger than the grace period
    clock.advance(2 * GRACE)
    result = tiered.sweep()
    assert [(d.content_address, d.reason) for d in result.deleted] == [(address, "orphan")]
    assert not present(tiered, b"orphan bytes")


def test_two_sweeps_never_run_at_once(tiered: ArtifactStore, clock: FrozenClock) -> None:
    with (
        hold_lease(tiered.ledger, "sweep"),
        pytest.raises(ConflictError, match="lease held"),
    ):
        tiered.sweep()
    tiered.sweep()  # released afterwards


def test_tier_move_copies_verifies_and_drops_unshared_copies(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    tiered.put("a", {"own": b"own a", "shared": b"shared"})
    tiered.put("b", {"shared": b"shared"})
    moved = tiered.move_tier("a", "cold")
    assert moved.retrieval_tier == "cold"
    assert present(tiered, b"own a", "cold") and not present(tiered, b"own a", "hot")
    assert present(tiered, b"shared", "hot") and present(tiered, b"shared", "cold")
    assert tiered.read_bytes("a", "own") == b"own a"
    assert tiered.verify().ok
    assert tiered.check_views() == []


def test_archive_needs_a_restore(tiered: ArtifactStore) -> None:
    tiered.put("old", {"f": b"archived bytes"})
    tiered.move_tier("old", "archive")
    assert not present(tiered, b"archived bytes", "hot")
    with pytest.raises(ArchivedError, match="artifactstore restore old@1"):
        tiered.read_bytes("old")
    restored = tiered.restore("old")
    assert restored.restore_status == "restored"
    assert tiered.read_bytes("old") == b"archived bytes"
    statuses = [e.event.to_payload().get("restore_status") for e in tiered.events()
                if e.event.event_type == "PackageTierChanged"]  # fmt: skip
    assert statuses == [None, "requested", "in_progress", "restored"]
    with pytest.raises(InvalidInputError, match="only archived"):
        tiered.restore(tiered.put("hot-one", {"f": b"h"}).id)


def test_sweep_applies_class_transitions(tiered: ArtifactStore, clock: FrozenClock) -> None:
    raw = tiered.put("raw", {"f": b"raw bytes"}, retention_class="raw-evidence")
    clock.advance(31 * DAY)
    plan = tiered.sweep(dry_run=True).plan
    assert [(m.reference, m.to_tier) for m in plan.tier_moves] == [("raw@1", "cold")]
    tiered.sweep()
    assert tiered.describe(raw.id).retrieval_tier == "cold"
    assert present(tiered, b"raw bytes", "cold") and not present(tiered, b"raw bytes", "hot")
    hot_only = ArtifactStore(tiered.engine, tiered.blobs, clock=clock)  # no cold tier
    other = hot_only.put("raw2", {"f": b"raw2"}, retention_class="raw-evidence")
    clock.advance(31 * DAY)
    plan = hot_only.sweep(dry_run=True).plan
    assert plan.tier_moves == () and plan.moves_without_backend == 1
    assert hot_only.describe(other.id).retrieval_tier == "hot"


def test_a_limited_sweep_keeps_the_bytes_of_due_packages_it_leaves_for_later(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    """``limit`` cuts the expiry list: the due packages past it stay active, so their bytes
    must stay too (ADR-0003 "live": only expiry, done by a sweep, ends it)."""
    for index in range(10):
        tiered.put(
            f"due-{index}", {"f": f"due bytes {index}".encode()}, retention_class="transient"
        )
    clock.advance(8 * DAY)
    result = tiered.sweep(limit=5)
    assert len(result.expired) == 5
    active = tiered.list_packages(status="active")
    assert len(active) == 5
    for package in active:
        assert tiered.read_bytes(package.id) == f"due bytes {package.name[4:]}".encode()
    assert tiered.verify().ok
    assert len(tiered.sweep().expired) == 5  # the rest go at the next sweep


def test_a_move_keeps_the_hot_copy_a_restored_archived_package_reads(
    tiered: ArtifactStore,
) -> None:
    archived = tiered.put("archived", {"f": b"shared bytes"})
    tiered.move_tier(archived.id, "archive")
    tiered.restore(archived.id)  # reads now come from a hot copy
    moving = tiered.put("moving", {"f": b"shared bytes"})
    tiered.move_tier(moving.id, "cold")
    assert tiered.read_bytes("archived") == b"shared bytes"
    assert tiered.verify().ok


def test_a_given_plan_is_carried_out_as_planned(tiered: ArtifactStore, clock: FrozenClock) -> None:
    tiered.put("first", {"f": b"first"}, retention_class="transient")
    clock.advance(8 * DAY)
    plan = tiered.plan_sweep()
    tiered.put("second", {"f": b"second"}, retention_class="transient")
    clock.advance(8 * DAY)  # "second" is due too now, but it is not in the plan
    result = tiered.sweep(plan=plan)
    assert [p.reference for p in result.expired] == ["first@1"]
    assert result.plan is plan
    assert tiered.describe("second").status == "active"


def test_tier_moves_are_planned_by_age_and_filter(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    old = tiered.put("reports/old", {"f": b"old"})
    tiered.put("logs/old", {"f": b"old log"})
    clock.advance(10 * DAY)
    tiered.put("reports/new", {"f": b"new"})
    moves = tiered.plan_tier_moves(
        "cold", older_than=5 * DAY, where=PackageFilter(name_prefix="reports/")
    )
    assert [(m.reference, m.from_tier, m.to_tier) for m in moves] == [
        ("reports/old@1", "hot", "cold")
    ]
    tiered.move_tier(old.id, "cold")
    assert tiered.plan_tier_moves("cold", older_than=5 * DAY, where=PackageFilter(
        name_prefix="reports/")) == []  # fmt: skip
    assert len(tiered.plan_tier_moves("cold", older_than=5 * DAY, limit=1)) == 1
    with pytest.raises(InvalidInputError, match="unknown tier"):
        tiered.plan_tier_moves("tepid", older_than=DAY)


def test_verify_many_by_filter_or_references_checks_each_blob_once(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    tiered.put("reports/a", {"f": b"shared", "g": b"a only"})
    tiered.put("reports/b", {"f": b"shared"})
    tiered.put("logs/c", {"f": b"c"}, retention_class="transient")
    clock.advance(8 * DAY)
    tiered.sweep()
    by_filter = tiered.verify(where=PackageFilter(name_prefix="reports/"))
    assert (by_filter.packages, by_filter.blobs, by_filter.ok) == (2, 2, True)
    assert by_filter.references == ("reports/a@1", "reports/b@1")
    listed = tiered.verify(references=["reports/a", "logs/c", "no/such"], rehash=False)
    assert listed.references == ("reports/a@1",)
    assert (listed.expired, listed.unknown) == (("logs/c@1",), ("no/such",))
    assert not listed.ok  # a reference that selects nothing is a failed check
