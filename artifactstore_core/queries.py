"""Read-side queries over the views: resolve references, load packages, list, lineage."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from artifactstore_core.domain.events import PackageAttested, PackageRegistered
from artifactstore_core.domain.limits import check_int, check_optional_text, check_time
from artifactstore_core.domain.manifest import FileEntry, Provenance
from artifactstore_core.domain.package import Hold, Package
from artifactstore_core.domain.references import PackageRef, parse_reference
from artifactstore_core.errors import AmbiguousReferenceError, NotFoundError
from artifactstore_core.eventlog import RecordedEvent
from artifactstore_core.hashing import BlobHash, Digest
from artifactstore_core.projections import project
from artifactstore_core.projections.ops import Insert, Row, Upsert
from artifactstore_core.schema import (
    artifact_files,
    artifact_packages,
    package_attestations,
    package_inputs,
    package_tags,
    retention_holds,
    retention_state,
    storage_locations,
)

_IN_CHUNK = 500


def resolve(conn: sa.Connection, reference: str | PackageRef | uuid.UUID | Package) -> uuid.UUID:
    """The package id a reference selects; ``NotFoundError`` or ``AmbiguousReferenceError``."""
    if isinstance(reference, Package):
        reference = reference.id
    if isinstance(reference, uuid.UUID):
        reference = PackageRef(str(reference), package_id=reference)
    ref = reference if isinstance(reference, PackageRef) else parse_reference(reference)
    p = artifact_packages
    if ref.package_id is not None:
        query = sa.select(p.c.package_id).where(p.c.package_id == ref.package_id)
    elif ref.digest is not None:
        column = p.c.content_address if ref.digest.algorithm == "blake3" else p.c.digest_sha256
        value = str(ref.digest) if ref.digest.algorithm == "blake3" else ref.digest.hex
        query = sa.select(p.c.package_id, p.c.name, p.c.version).where(column == value)
    elif ref.version is not None:
        query = sa.select(p.c.package_id).where(p.c.name == ref.name, p.c.version == ref.version)
    else:
        t = package_tags
        query = sa.select(t.c.package_id).where(t.c.name == ref.name, t.c.tag == ref.tag)
    rows = conn.execute(query.limit(11)).all()
    if not rows:
        raise NotFoundError(f"no package matches reference {ref.text!r}")
    if len(rows) > 1:
        matches = ", ".join(f"{r.name}@{r.version}" for r in rows[:10])
        raise AmbiguousReferenceError(
            f"reference {ref.text!r} matches {len(rows)} packages ({matches}); "
            "use name@version or a package id"
        )
    return uuid.UUID(str(rows[0].package_id))


def _chunks(ids: Sequence[uuid.UUID]) -> list[Sequence[uuid.UUID]]:
    return [ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]


def _among(
    conn: sa.Connection, column: sa.ColumnElement[uuid.UUID], ids: Sequence[uuid.UUID]
) -> sa.ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL ``column = ANY(array)``: one parameter, so one
    statement text for any count (an IN list of 100 ids cost psycopg a new parse and
    PostgreSQL a new plan on each call: a third of loading 100 packages)."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.literal(list(ids), postgresql.ARRAY(sa.Uuid)))
    return column.in_(ids)


def attestation_ids(conn: sa.Connection, subject_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """The attestation packages of ``subject_ids``, oldest first."""
    a = package_attestations
    found: list[uuid.UUID] = []
    for chunk in _chunks(list(subject_ids)):
        query = (
            sa.select(a.c.attestation_id)
            .where(_among(conn, a.c.subject_id, chunk))
            .order_by(a.c.event_sequence)
        )
        found.extend(conn.execute(query).scalars())
    return found


def subject_of(conn: sa.Connection, package_id: uuid.UUID) -> uuid.UUID | None:
    """The package that ``package_id`` attests, if it is an attestation."""
    a = package_attestations
    return conn.execute(sa.select(a.c.subject_id).where(a.c.attestation_id == package_id)).scalar()


def stored_blob(conn: sa.Connection, digest: Digest, tier: str) -> BlobHash | None:
    """The hash of the blob ``digest`` (BLAKE3 or SHA-256) names, if ``tier`` records a
    copy of it."""
    sl = storage_locations
    column = sl.c.content_address if digest.algorithm == "blake3" else sl.c.digest_sha256
    value = str(digest) if digest.algorithm == "blake3" else digest.hex
    row = conn.execute(
        sa.select(sl.c.digest_primary, sl.c.digest_sha256, sl.c.size)
        .where(column == value, sl.c.backend == tier)
        .limit(1)
    ).first()
    return None if row is None else BlobHash.from_hex(row[0], row[1], row[2])


def names_with_blob(conn: sa.Connection, address: str) -> list[str]:
    """The names of packages that have a file with blob ``address`` (``blake3:<hex>``)."""
    p, f = artifact_packages, artifact_files
    query = (
        sa.select(p.c.name)
        .join(f, f.c.package_id == p.c.package_id)
        .where(f.c.content_address == address)
        .distinct()
        .order_by(p.c.name)
    )
    return list(conn.execute(query).scalars())


def load_package(conn: sa.Connection, reference: str | PackageRef | uuid.UUID | Package) -> Package:
    """The full package a reference selects (``resolve``, then ``load_packages``)."""
    return load_packages(conn, [resolve(conn, reference)])[0]


def load_packages(conn: sa.Connection, ids: Sequence[uuid.UUID]) -> list[Package]:
    """Full packages (files, tags, holds, retention state) in the order of ``ids``."""
    rows: dict[uuid.UUID, Any] = {}
    files: dict[uuid.UUID, list[FileEntry]] = {}
    tags: dict[uuid.UUID, list[str]] = {}
    holds: dict[uuid.UUID, list[Hold]] = {}
    links: dict[uuid.UUID, list[str]] = {}
    attests: dict[uuid.UUID, str] = {}
    f, t, h = artifact_files, package_tags, retention_holds
    for chunk in _chunks(ids):
        query = _PACKAGE_ROWS.where(_among(conn, artifact_packages.c.package_id, chunk))
        for row in conn.execute(query).mappings().all():
            rows[row["package_id"]] = row
        query = sa.select(f.c.package_id, *_FILE_COLUMNS).where(_among(conn, f.c.package_id, chunk))
        for file in conn.execute(query.order_by(f.c.path)).mappings().all():
            files.setdefault(file["package_id"], []).append(_file_entry(file))
        query = sa.select(t.c.package_id, t.c.tag).where(_among(conn, t.c.package_id, chunk))
        for tag in conn.execute(query.order_by(t.c.tag)).all():
            tags.setdefault(tag.package_id, []).append(tag.tag)
        query = sa.select(h).where(_among(conn, h.c.package_id, chunk)).order_by(h.c.placed_at)
        for held in conn.execute(query).all():
            hold = Hold(held.hold_id, held.hold_kind, held.reason, held.actor, held.placed_at)
            holds.setdefault(held.package_id, []).append(hold)
        wanted = set(chunk)
        for link in conn.execute(_links(conn, chunk)).all():
            if link.subject_id in wanted:
                links.setdefault(link.subject_id, []).append(link.attestation)
            if link.attestation_id in wanted:
                attests[link.attestation_id] = link.subject
    result = []
    for package_id in ids:
        found = rows.get(package_id)
        if found is None:
            raise NotFoundError(f"package {package_id} does not exist")
        result.append(
            _package(found, found, files.get(package_id, ()), tags.get(package_id, ()),
                     holds.get(package_id, ()), links.get(package_id, ()),
                     attests.get(package_id))
        )  # fmt: skip
    return result


def _links(conn: sa.Connection, chunk: Sequence[uuid.UUID]) -> sa.Select[Any]:
    """The attestation links of which a package of ``chunk`` is either end, with both
    ends' references, oldest first."""
    a = package_attestations
    subject, attestation = artifact_packages.alias("subject"), artifact_packages.alias("att")
    return (
        sa.select(
            a.c.subject_id,
            a.c.attestation_id,
            (subject.c.name + "@" + sa.cast(subject.c.version, sa.String)).label("subject"),
            (attestation.c.name + "@" + sa.cast(attestation.c.version, sa.String)).label(
                "attestation"
            ),
        )
        .join(subject, subject.c.package_id == a.c.subject_id)
        .join(attestation, attestation.c.package_id == a.c.attestation_id)
        .where(sa.or_(_among(conn, a.c.subject_id, chunk), _among(conn, a.c.attestation_id, chunk)))
        .order_by(a.c.event_sequence)
    )


def pending_package(event: PackageRegistered, at: dt.datetime, actor: str) -> Package:
    """The package ``event`` registers, as it will read once recorded at ``at`` by ``actor``
    (for what must be decided in the same transaction, e.g. its attestation)."""
    recorded = RecordedEvent(0, at, actor, event, "", "")
    return registered_packages([recorded])[0]


def registered_packages(recorded: Sequence[RecordedEvent]) -> list[Package]:
    """The packages ``recorded`` registers, as ``load_packages`` returns them once committed,
    derived from the rows their projection writes (no query: the put path returns these)."""
    tables: dict[str, list[Row]] = {}
    for item in recorded:
        if not isinstance(item.event, PackageRegistered | PackageAttested):
            continue  # a put's other events (its blobs' locations) are not in a Package
        for op in project(item):
            if isinstance(op, Insert | Upsert):
                tables.setdefault(op.table, []).append(op.row)
    holders = {(r["name"], r["tag"]): r["package_id"] for r in tables.get("package_tags", ())}
    tags: dict[uuid.UUID, list[str]] = {}
    for (_, tag), holder in holders.items():  # a tag moved twice in the batch: its last holder
        tags.setdefault(holder, []).append(tag)
    files: dict[uuid.UUID, list[FileEntry]] = {}
    for row in sorted(tables.get("artifact_files", ()), key=lambda r: r["path"]):
        files.setdefault(row["package_id"], []).append(_file_entry(row))
    states = {row["package_id"]: row for row in tables.get("retention_state", ())}
    references = {
        row["package_id"]: f"{row['name']}@{row['version']}"
        for row in tables.get("artifact_packages", ())
    }
    links: dict[uuid.UUID, list[str]] = {}
    for row in tables.get("package_attestations", ()):  # attested at registration
        links.setdefault(row["subject_id"], []).append(references[row["attestation_id"]])
    attests = {
        row["attestation_id"]: references[row["subject_id"]]
        for row in tables.get("package_attestations", ())
        if row["subject_id"] in references
    }
    return [
        _package(row, states[row["package_id"]], files.get(row["package_id"], ()),
                 sorted(tags.get(row["package_id"], ())),
                 (), links.get(row["package_id"], ()), attests.get(row["package_id"]))
        for row in tables.get("artifact_packages", ())
    ]  # fmt: skip


_STATE = ("status", "expires_at", "expired_at", "on_hold", "retrieval_tier", "restore_status")
_FILE_COLUMNS = [
    artifact_files.c[name] for name in ("path", "digest_primary", "digest_sha256", "size")
]
#: The columns ``_package`` reads: the package's, then its retention state's.
_PACKAGE_ROWS = sa.select(
    *(artifact_packages.c[name] for name in (
        "package_id", "name", "version", "kind", "content_address", "digest_sha256", "size",
        "created_at", "actor", "metadata", "provenance")),
    *(retention_state.c[name] for name in ("retention_class", *_STATE)),
).join_from(
    artifact_packages, retention_state,
    retention_state.c.package_id == artifact_packages.c.package_id,
)  # fmt: skip


def _file_entry(row: Mapping[Any, Any]) -> FileEntry:
    blob = BlobHash.from_hex(row["digest_primary"], row["digest_sha256"], row["size"])
    return FileEntry(row["path"], blob)


def _package(
    row: Mapping[str, Any],
    state: Mapping[str, Any],
    files: Iterable[FileEntry],
    tags: Iterable[str],
    holds: Iterable[Hold],
    attestations: Iterable[str] = (),
    attests: str | None = None,
) -> Package:
    """The one derivation of ``Package``: from its ``artifact_packages`` and
    ``retention_state`` rows, files sorted by path, tags sorted, holds by placement."""
    return Package(
        id=row["package_id"],
        name=row["name"],
        version=row["version"],
        kind=row["kind"],
        content_address=row["content_address"],
        digest_sha256=row["digest_sha256"],
        size=row["size"],
        created_at=row["created_at"],
        actor=row["actor"],
        metadata=row["metadata"],
        provenance=Provenance.from_dict(row["provenance"]),
        files=tuple(files),
        retention_class=state["retention_class"],
        expires_at=state["expires_at"],
        status=state["status"],
        expired_at=state["expired_at"],
        on_hold=state["on_hold"],
        retrieval_tier=state["retrieval_tier"],
        restore_status=state["restore_status"],
        tags=tuple(tags),
        holds=tuple(holds),
        attestations=tuple(attestations),
        attests=attests,
    )


@dataclass(frozen=True, slots=True)
class PackageFilter:
    """Filters for ``list``; every one that is set must hold."""

    name: str | None = None
    name_prefix: str | None = None
    run_id: str | None = None
    kind: str | None = None
    tag: str | None = None
    retention_class: str | None = None
    status: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    limit: int | None = None
    #: Keyset position: only packages after this ``(name, version)`` in the listing order.
    after: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        for name in ("name", "name_prefix", "run_id", "kind", "tag", "retention_class", "status"):
            check_optional_text(getattr(self, name), f"filter {name}")
        for name in ("created_after", "created_before"):
            if getattr(self, name) is not None:
                check_time(getattr(self, name), f"filter {name}")
        if self.limit is not None:
            check_int(self.limit, "filter limit", minimum=1)
        if self.after is not None:
            check_optional_text(self.after[0], "filter after name")
            check_int(self.after[1], "filter after version", minimum=0)


def list_ids(conn: sa.Connection, where: PackageFilter) -> list[uuid.UUID]:
    """Ids of packages matching ``where``, by name then version.

    The listing is read in the order of an index that starts with its most selective
    equality filter and ends with the listing's (name, version): ``retention_state``'s for
    a class or status filter, ``package_tags``' for a tag, ``artifact_packages``' for a
    kind or none. So a listing with a limit reads about as many rows as it returns, on
    SQLite (no statistics) as on PostgreSQL.
    """
    p, s, t = artifact_packages, retention_state, package_tags
    query = sa.select(p.c.package_id)
    if where.retention_class or where.status:
        query = query.select_from(s).join(p, p.c.package_id == s.c.package_id)
        name, version, order = s.c.name, s.c.version, [s.c.name, s.c.version]
        if where.retention_class:
            query = query.where(s.c.retention_class == where.retention_class)
        if where.status:
            query = query.where(s.c.status == where.status)
        if where.tag:
            query = query.where(
                sa.exists().where(t.c.package_id == p.c.package_id, t.c.tag == where.tag)
            )
    elif where.tag:
        # One package per name and tag (a tag row has its package's name): the tag's rows
        # in name order are the listing's.
        query = (
            query.select_from(t)
            .join(p, p.c.package_id == t.c.package_id)
            .where(t.c.tag == where.tag)
        )
        name, version, order = t.c.name, p.c.version, [t.c.name]
    else:
        name, version, order = p.c.name, p.c.version, [p.c.name, p.c.version]
    if where.name:
        query = query.where(name == where.name)
    if where.name_prefix:
        query = query.where(_starts_with(conn, name, where.name_prefix))
    if where.run_id:
        query = query.where(p.c.run_id == where.run_id)
    if where.kind:
        query = query.where(p.c.kind == where.kind)
    if where.created_after:
        query = query.where(p.c.created_at >= where.created_after)
    if where.created_before:
        query = query.where(p.c.created_at < where.created_before)
    if where.after is not None:
        after_name, after_version = where.after
        query = query.where(
            sa.tuple_(name, version) > sa.tuple_(sa.literal(after_name), sa.literal(after_version))
        )
    query = query.order_by(*order)
    if where.limit:
        query = query.limit(where.limit)
    return list(conn.execute(query).scalars())


def _starts_with(
    conn: sa.Connection, column: sa.ColumnElement[str], prefix: str
) -> sa.ColumnElement[bool]:
    """``column`` starts with ``prefix`` (case-sensitive, no wildcards), as a condition an
    index on ``column`` serves where names sort by code point (SQLite; PostgreSQL with a
    C collation): there a prefix is a range, and names are printable ASCII, so each one
    starting with ``prefix`` is below ``prefix`` followed by DEL (0x7f). (SQLite's LIKE
    ignores case and uses no index; PostgreSQL's uses one only in the "C" collation itself,
    not "C.UTF-8".) Under a linguistic collation a prefix is no range: LIKE it is."""
    if _names_sort_by_code_point(conn):
        return sa.and_(column >= prefix, column < prefix + "\x7f")
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(f"{escaped}%", escape="\\")


def _names_sort_by_code_point(conn: sa.Connection) -> bool:
    """Whether text compares by code point on ``conn``: SQLite's binary collation, or a
    PostgreSQL database whose collation is C or POSIX (also C.UTF-8); cached per
    connection."""
    if conn.dialect.name == "sqlite":
        return True
    if "code_point_names" not in conn.info:
        collation = conn.execute(
            sa.text("SELECT datcollate FROM pg_database WHERE datname = current_database()")
        ).scalar()
        conn.info["code_point_names"] = str(collation).split(".")[0].upper() in {"C", "POSIX"}
    return bool(conn.info["code_point_names"])


@dataclass(frozen=True, slots=True)
class LineageEdge:
    """``package_id`` was built from ``input_id``; ``depth`` counts hops from the start."""

    depth: int
    package_id: uuid.UUID
    input_id: uuid.UUID


def lineage(
    conn: sa.Connection, start: uuid.UUID, *, downstream: bool, depth: int | None
) -> list[LineageEdge]:
    """Edges reachable from ``start`` upstream (inputs) or downstream (consumers),
    breadth-first: level by level, each level's edges by source then target within each
    ``_IN_CHUNK`` of its sources in the order they were found.

    The edges within reach are read in one recursive query; the walk over them is here.
    """
    i = package_inputs
    source, target = (i.c.input_package_id, i.c.package_id) if downstream else (
        i.c.package_id, i.c.input_package_id
    )  # fmt: skip
    following: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in conn.execute(_reach(source, target, start, depth)):
        following.setdefault(row.src, []).append(row.dst)
    edges: list[LineageEdge] = []
    seen = {start}
    frontier = [start]
    level = 0
    while frontier and (depth is None or level < depth):
        level += 1
        found: list[uuid.UUID] = []
        for chunk in _chunks(frontier):
            for src in sorted(chunk):
                for dst in sorted(following.get(src, ())):
                    pkg, inp = (dst, src) if downstream else (src, dst)
                    edges.append(LineageEdge(level, pkg, inp))
                    if dst not in seen:
                        seen.add(dst)
                        found.append(dst)
        frontier = found
    return edges


def _reach(
    source: sa.Column[uuid.UUID], target: sa.Column[uuid.UUID], start: uuid.UUID, depth: int | None
) -> sa.Select[Any]:
    """The edges (``src``, ``dst``) from every package fewer than ``depth`` hops from
    ``start`` along ``source`` -> ``target`` (unlimited: every package reached).

    With a limit the walk keeps each (package, hops) pair once, so a package reached at
    several distances is walked from each (at most ``depth`` times); without, each once.
    """
    first = sa.cast(sa.literal(start, sa.Uuid), sa.Uuid)
    if depth is None:
        walk = sa.select(first.label("id")).cte("walk", recursive=True)
        walk = walk.union(sa.select(target).join_from(walk, source.table, source == walk.c.id))
    else:
        walk = sa.select(first.label("id"), sa.literal(0).label("hops")).cte("walk", recursive=True)
        step = sa.select(target, walk.c.hops + 1).join_from(walk, source.table, source == walk.c.id)
        walk = walk.union(step.where(walk.c.hops < depth - 1))
    return sa.select(source.label("src"), target.label("dst")).where(
        source.in_(sa.select(walk.c.id))
    )
