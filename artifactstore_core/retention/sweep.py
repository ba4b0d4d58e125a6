"""The sweep: expire due packages, then delete blobs no live package needs.

``plan_sweep`` only reads (in batches) and returns the exact plan; ``execute_sweep``
carries it out under a lease, batch by batch, re-checking each item under the event-log
lock so that a hold placed or a package added meanwhile is respected. A sweep killed
part-way can simply run again: finished batches are recorded, the rest is redone.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from artifactstore_core.domain import events as ev
from artifactstore_core.domain.checkpoint import SignedCheckpoint
from artifactstore_core.domain.package import iso
from artifactstore_core.domain.retention import RetentionClass, due_transition, tiers_holding
from artifactstore_core.hashing import Digest
from artifactstore_core.ledger import Ledger
from artifactstore_core.retention import predicates as rules
from artifactstore_core.retention.classes import check_definitions, check_protected_expiries
from artifactstore_core.retention.lease import hold_lease
from artifactstore_core.retention.liveness import LogLiveness, views_disagree
from artifactstore_core.retention.tiering import TierMove, move_tier
from artifactstore_core.schema import (
    artifact_files,
    artifact_packages,
    package_attestations,
    retention_classes,
    retention_state,
    storage_locations,
)
from artifactstore_core.storage import BlobStore
from artifactstore_core.tiers import Tiers

BATCH_SIZE = 1_000
Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class ExpiringPackage:
    """A package the sweep expires."""

    package_id: uuid.UUID
    name: str
    version: int
    retention_class: str
    expires_at: dt.datetime

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class BlobDeletion:
    """A blob the sweep deletes from one backend (tier)."""

    content_address: str
    backend: str
    size: int
    reason: str


@dataclass(frozen=True)
class SweepPlan:
    """Exactly what a sweep at ``now`` does."""

    now: dt.datetime
    grace: dt.timedelta
    expire: tuple[ExpiringPackage, ...] = ()
    delete: tuple[BlobDeletion, ...] = ()
    tier_moves: tuple[TierMove, ...] = ()
    shared_kept_blobs: int = 0
    shared_kept_bytes: int = 0
    moves_without_backend: int = 0
    #: The last event the plan's views reflect: the plan is checked against the log up to it.
    log_head: int = 0

    @property
    def bytes_to_reclaim(self) -> int:
        return sum(d.size for d in self.delete)

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": iso(self.now),
            "grace_seconds": int(self.grace.total_seconds()),
            "expire": [
                {"package_id": str(p.package_id), "reference": p.reference,
                 "retention_class": p.retention_class, "expires_at": iso(p.expires_at)}
                for p in self.expire
            ],
            "delete": [
                {"content_address": d.content_address, "backend": d.backend, "size": d.size,
                 "reason": d.reason}
                for d in self.delete
            ],
            "tier_moves": [
                {"package_id": str(m.package_id), "reference": m.reference,
                 "from_tier": m.from_tier, "to_tier": m.to_tier}
                for m in self.tier_moves
            ],
            "bytes_to_reclaim": self.bytes_to_reclaim,
            "shared_kept_blobs": self.shared_kept_blobs,
            "shared_kept_bytes": self.shared_kept_bytes,
            "moves_without_backend": self.moves_without_backend,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepPlan:
        """The plan ``to_dict`` describes (``log_head`` is not part of it: 0)."""

        def split(reference: str) -> tuple[str, int]:
            name, _, version = reference.rpartition("@")
            return name, int(version)

        return cls(
            now=dt.datetime.fromisoformat(data["now"]),
            grace=dt.timedelta(seconds=data["grace_seconds"]),
            expire=tuple(
                ExpiringPackage(uuid.UUID(p["package_id"]), *split(p["reference"]),
                                p["retention_class"], dt.datetime.fromisoformat(p["expires_at"]))
                for p in data["expire"]
            ),
            delete=tuple(
                BlobDeletion(d["content_address"], d["backend"], d["size"], d["reason"])
                for d in data["delete"]
            ),
            tier_moves=tuple(
                TierMove(uuid.UUID(m["package_id"]), m["reference"], m["from_tier"], m["to_tier"])
                for m in data["tier_moves"]
            ),
            shared_kept_blobs=data["shared_kept_blobs"],
            shared_kept_bytes=data["shared_kept_bytes"],
            moves_without_backend=data["moves_without_backend"],
        )  # fmt: skip


@dataclass
class SweepResult:
    """What a sweep did (for a dry run: what it would do, nothing done)."""

    plan: SweepPlan
    dry_run: bool
    expired: list[ExpiringPackage] = field(default_factory=list)
    deleted: list[BlobDeletion] = field(default_factory=list)
    moved: list[TierMove] = field(default_factory=list)
    #: Upload sessions past their expiry (and chunks of no session) removed.
    uploads_collected: int = 0
    #: The log checkpoint signed after the sweep (when the registry has a log key).
    checkpoint: SignedCheckpoint | None = None

    @property
    def bytes_reclaimed(self) -> int:
        return sum(d.size for d in self.deleted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "plan": self.plan.to_dict(),
            "expired": [str(p.package_id) for p in self.expired],
            "deleted": [f"{d.backend}:{d.content_address}" for d in self.deleted],
            "moved": [str(m.package_id) for m in self.moved],
            "bytes_reclaimed": self.bytes_reclaimed,
            "uploads_collected": self.uploads_collected,
            "checkpoint": self.checkpoint.to_dict() if self.checkpoint else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepResult:
        """The result ``to_dict`` describes (what was done is looked up in its plan)."""
        plan = SweepPlan.from_dict(data["plan"])
        expired, moved, deleted = set(data["expired"]), set(data["moved"]), set(data["deleted"])
        return cls(
            plan,
            dry_run=data["dry_run"],
            expired=[p for p in plan.expire if str(p.package_id) in expired],
            deleted=[d for d in plan.delete if f"{d.backend}:{d.content_address}" in deleted],
            moved=[m for m in plan.tier_moves if str(m.package_id) in moved],
            uploads_collected=data.get("uploads_collected", 0),
        )


def _due_packages(conn: sa.Connection, now: dt.datetime, batch: int) -> Iterator[ExpiringPackage]:
    s, p = retention_state, artifact_packages
    last: uuid.UUID | None = None
    while True:
        query = (
            sa.select(p.c.package_id, p.c.name, p.c.version, s.c.retention_class, s.c.expires_at)
            .join(s, s.c.package_id == p.c.package_id)
            .where(rules.due(s, now))
            .order_by(p.c.package_id)
            .limit(batch)
        )
        if last is not None:
            query = query.where(p.c.package_id > last)
        rows = conn.execute(query).all()
        for row in rows:
            yield ExpiringPackage(row.package_id, row.name, row.version, row.retention_class,
                                  row.expires_at)  # fmt: skip
        if len(rows) < batch:
            return
        last = rows[-1].package_id


def _attestations_of(
    conn: sa.Connection, subjects: Sequence[ExpiringPackage]
) -> list[ExpiringPackage]:
    """The active attestations of ``subjects``: they expire with them, at their expiry."""
    a, p, s = package_attestations, artifact_packages, retention_state
    expiry = {item.package_id: item.expires_at for item in subjects}
    ids = list(expiry)
    found = []
    for start in range(0, len(ids), 500):
        query = (
            sa.select(a.c.subject_id, p.c.package_id, p.c.name, p.c.version, s.c.retention_class)
            .join(p, p.c.package_id == a.c.attestation_id)
            .join(s, s.c.package_id == a.c.attestation_id)
            .where(a.c.subject_id.in_(ids[start : start + 500]), s.c.status == "active")
            .order_by(a.c.event_sequence)
        )
        found += [
            ExpiringPackage(row.package_id, row.name, row.version, row.retention_class,
                            expiry[row.subject_id])
            for row in conn.execute(query)
        ]  # fmt: skip
    return found


def _unreferenced_blobs(
    conn: sa.Connection, kept: Callable[[Any], rules.Predicate], cutoff: dt.datetime, batch: int
) -> Iterator[BlobDeletion]:
    """Recorded copies older than ``cutoff`` that no package ``kept`` needs in their tier."""
    sl = storage_locations
    last: tuple[str, str] | None = None
    while True:
        query = (
            sa.select(sl.c.content_address, sl.c.backend, sl.c.size)
            .where(
                sl.c.stored_at <= cutoff,
                ~rules.shared(sl.c.content_address, kept, tier=sl.c.backend),
            )
            .order_by(sl.c.content_address, sl.c.backend)
            .limit(batch)
        )
        if last is not None:
            after = sa.tuple_(sa.literal(last[0]), sa.literal(last[1]))
            query = query.where(sa.tuple_(sl.c.content_address, sl.c.backend) > after)
        rows = conn.execute(query).all()
        for row in rows:
            yield BlobDeletion(row.content_address, row.backend, row.size, "unreferenced")
        if len(rows) < batch:
            return
        last = (rows[-1].content_address, rows[-1].backend)


def _shared_kept(
    conn: sa.Connection, kept: Callable[[Any], rules.Predicate], expiring: Sequence[ExpiringPackage]
) -> tuple[int, int]:
    """Distinct blobs of expiring packages that stay because a kept package shares them."""
    f = artifact_files
    seen: dict[str, int] = {}
    ids = [p.package_id for p in expiring]
    for start in range(0, len(ids), 500):
        query = (
            sa.select(f.c.content_address, f.c.size)
            .where(f.c.package_id.in_(ids[start : start + 500]))
            .where(rules.shared(f.c.content_address, kept))
            .distinct()
        )
        seen.update({row.content_address: row.size for row in conn.execute(query)})
    return len(seen), sum(seen.values())


def _tier_moves(
    conn: sa.Connection, now: dt.datetime, batch: int
) -> Iterator[tuple[TierMove, RetentionClass]]:
    p, s = artifact_packages, retention_state
    for row in conn.execute(sa.select(retention_classes)).all():
        policy = RetentionClass.from_row(row)
        if not policy.transitions:
            continue
        earliest = min(t.after for t in policy.transitions)
        last: uuid.UUID | None = None
        while True:
            query = (
                sa.select(p.c.package_id, p.c.name, p.c.version, p.c.created_at,
                          s.c.retrieval_tier)
                .join(s, s.c.package_id == p.c.package_id)
                .where(s.c.retention_class == policy.name, s.c.status == "active",
                       s.c.retrieval_tier != "archive", p.c.created_at <= now - earliest)
                .where(~rules.due(s, now))
                .order_by(p.c.package_id)
                .limit(batch)
            )  # fmt: skip
            if last is not None:
                query = query.where(p.c.package_id > last)
            rows = conn.execute(query).all()
            for r in rows:
                target = due_transition(policy.transitions, r.created_at, r.retrieval_tier, now)
                if target is not None:
                    move = TierMove(r.package_id, f"{r.name}@{r.version}", r.retrieval_tier, target)
                    yield move, policy
            if len(rows) < batch:
                break
            last = rows[-1].package_id


def _orphans(
    tiers: Tiers, conn: sa.Connection, cutoff: dt.datetime, batch: int
) -> Iterator[BlobDeletion]:
    """Blobs in a backend that the registry does not record there (failed or killed puts)."""
    sl = storage_locations
    for tier, backend in tiers.items():
        pending: list[Digest] = []

        def flush(
            chunk: list[Digest], tier: str = tier, backend: BlobStore = backend
        ) -> Iterator[BlobDeletion]:
            known = set(
                conn.execute(
                    sa.select(sl.c.content_address).where(
                        sl.c.backend == tier, sl.c.content_address.in_([str(d) for d in chunk])
                    )
                ).scalars()
            )
            for digest in chunk:
                if str(digest) in known:
                    continue
                modified = backend.modified_at(digest)
                if modified is not None and modified <= cutoff:
                    yield BlobDeletion(str(digest), tier, backend.size_of(digest), "orphan")

        for digest in backend.iter_addresses():
            pending.append(digest)
            if len(pending) >= batch:
                yield from flush(pending)
                pending = []
        if pending:
            yield from flush(pending)


def plan_sweep(
    ledger: Ledger,
    tiers: Tiers,
    now: dt.datetime,
    *,
    grace: dt.timedelta,
    batch_size: int = BATCH_SIZE,
    limit: int | None = None,
) -> SweepPlan:
    """The exact plan of a sweep at ``now`` (reads only); ``IntegrityError`` if a retention
    class differs from its recorded definition or a protected package is due before it."""
    cutoff = now - grace
    with ledger.reading(snapshot=True) as conn:
        head = ledger.log.head(conn)
        check_definitions(conn)
        due = list(_due_packages(conn, now, batch_size))
        expire = due[:limit]
        check_protected_expiries(
            conn, [(p.package_id, p.reference, p.retention_class, p.expires_at) for p in expire]
        )
        through = expire[-1].package_id if len(expire) < len(due) else None
        expire += _attestations_of(conn, expire)

        def kept(state: Any) -> rules.Predicate:
            return rules.kept_by_sweep(state, now, through)

        delete = list(_unreferenced_blobs(conn, kept, cutoff, batch_size))
        kept_blobs, kept_bytes = _shared_kept(conn, kept, expire)
        moves, missing = [], 0
        for move, _policy in _tier_moves(conn, now, batch_size):
            if move.to_tier in tiers:
                moves.append(move)
            else:
                missing += 1
        delete.extend(_orphans(tiers, conn, cutoff, batch_size))
    if limit is not None:
        delete = delete[:limit]
        moves = moves[:limit]
    return SweepPlan(now, grace, tuple(expire), tuple(delete), tuple(moves), kept_blobs,
                     kept_bytes, missing, head)  # fmt: skip


def check_plan(ledger: Ledger, plan: SweepPlan) -> LogLiveness:
    """Check ``plan`` against the event log up to the last event its views reflect
    (``IntegrityError`` if they let it remove what the log keeps); returns the folded
    state, which each batch catches up under the chain lock."""
    liveness = LogLiveness(
        ledger.log,
        [str(p.package_id) for p in plan.expire],
        [d.content_address for d in plan.delete],
    )
    with ledger.reading() as conn:
        liveness.catch_up(conn, until=plan.log_head)
    error = views_disagree(
        [liveness.keeps_package(str(p.package_id), plan.now) for p in plan.expire]
        + [liveness.keeps_blob(d.content_address, d.backend, plan.now) for d in plan.delete]
    )
    if error is not None:
        raise error
    return liveness


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def execute_sweep(
    ledger: Ledger,
    tiers: Tiers,
    plan: SweepPlan,
    liveness: LogLiveness,
    *,
    actor: str | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> SweepResult:
    """Carry out ``plan`` under the sweep lease, re-checking every item as it goes against
    the views and against ``liveness`` (the log), caught up under the chain lock."""
    result = SweepResult(plan, dry_run=False)
    with hold_lease(ledger, "sweep") as lease:
        for chunk in _batches(plan.expire, batch_size):
            result.expired.extend(_expire_batch(ledger, plan.now, chunk, liveness, actor))
            lease.renew()
            if progress:
                progress("expire", len(chunk))
        for move in plan.tier_moves:
            move_tier(ledger, tiers, move.package_id, move.to_tier, actor=actor)
            result.moved.append(move)
            lease.renew()
            if progress:
                progress("move", 1)
        for chunk in _batches(plan.delete, batch_size):
            result.deleted.extend(
                _delete_batch(ledger, tiers, plan, chunk, liveness, actor, progress)
            )
            lease.renew()
        for backend in tiers.values():
            backend.purge_staging(plan.now - plan.grace)
    return result


def _expire_batch(
    ledger: Ledger,
    now: dt.datetime,
    chunk: Sequence[ExpiringPackage],
    liveness: LogLiveness,
    actor: str | None,
) -> list[ExpiringPackage]:
    done: list[ExpiringPackage] = []

    def decide(conn: sa.Connection, _at: dt.datetime) -> list[ev.Event]:
        s = retention_state
        still_due = set(
            conn.execute(
                sa.select(s.c.package_id).where(
                    s.c.package_id.in_([p.package_id for p in chunk]), rules.due(s, now)
                )
            ).scalars()
        )
        liveness.catch_up(conn)
        due = [p for p in chunk if p.package_id in still_due]
        # Attestations expire with their subjects, whichever batch the plan put them in.
        due += _attestations_of(conn, due)
        error = views_disagree(liveness.keeps_package(str(p.package_id), now) for p in due)
        if error is not None:
            raise error
        done.extend(due)
        return [
            ev.PackageExpired(package_id=str(p.package_id), expires_at=iso(p.expires_at))
            for p in done
        ]

    ledger.record(decide, actor=actor)
    return done


def _delete_batch(
    ledger: Ledger,
    tiers: Tiers,
    plan: SweepPlan,
    chunk: Sequence[BlobDeletion],
    liveness: LogLiveness,
    actor: str | None,
    progress: Progress | None,
) -> list[BlobDeletion]:
    done: list[BlobDeletion] = []

    def decide(conn: sa.Connection, _at: dt.datetime) -> list[ev.Event]:
        sl = storage_locations
        cutoff = plan.now - plan.grace
        recorded = conn.execute(
            sa.select(sl.c.content_address, sl.c.backend, sl.c.stored_at).where(
                sl.c.content_address.in_([d.content_address for d in chunk])
            )
        ).all()
        rows = {(r.content_address, r.backend): r.stored_at for r in recorded}
        f, s = artifact_files, retention_state
        live = {
            (row.content_address, tier)
            for row in conn.execute(
                sa.select(f.c.content_address, s.c.retrieval_tier, s.c.restore_status)
                .join(s, s.c.package_id == f.c.package_id)
                .where(f.c.content_address.in_([d.content_address for d in chunk]))
                .where(rules.live(s))
            )
            for tier in tiers_holding(row.retrieval_tier, row.restore_status)
        }
        liveness.catch_up(conn)
        error = views_disagree(
            liveness.keeps_blob(d.content_address, d.backend, plan.now)
            for d in chunk
            if (d.content_address, d.backend) not in live
        )
        if error is not None:
            raise error
        for item in chunk:
            stored_at = rows.get((item.content_address, item.backend))
            if (item.content_address, item.backend) in live:
                continue  # a hold or a new package needs this copy now
            if item.reason == "orphan" and stored_at is not None:
                continue  # registered meanwhile
            if item.reason == "unreferenced" and (stored_at is None or stored_at > cutoff):
                continue  # already purged, or stored again meanwhile
            tiers[item.backend].delete(Digest.parse(item.content_address))
            done.append(item)
            if progress:
                progress("delete", 1)
        return [
            ev.BlobPurged(content_address=d.content_address, backend=d.backend, reason=d.reason)
            for d in done
        ]

    ledger.record(decide, actor=actor)
    return done
