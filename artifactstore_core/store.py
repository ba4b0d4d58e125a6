"""``ArtifactStore``: the one entry point. Each command loads, decides, appends, returns."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.config import (
    READ_ONLY,
    Settings,
    check_connection,
    create_engine,
    load_settings,
)
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.limits import check_time
from artifactstore_core.domain.manifest import (
    FileEntry,
    Provenance,
    normalize_json_object,
)
from artifactstore_core.domain.names import (
    BUILTIN_KINDS,
    validate_class_name,
    validate_kind,
    validate_tag,
)
from artifactstore_core.domain.package import Hold, Package, iso
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.retention import (
    HOLD_KINDS,
    RetentionClass,
    decide_change,
    tiers_holding,
)
from artifactstore_core.errors import (
    ArchivedError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    MissingBlobError,
    NotFoundError,
    PackageExpiredError,
    RetentionError,
)
from artifactstore_core.eventlog import EventLog, RecordedEvent, VerifyReport
from artifactstore_core.export import export_files
from artifactstore_core.hashing import BlobHash, Digest
from artifactstore_core.projections import ProjectionWriter, check_views, project, rebuild_views
from artifactstore_core.projections.rebuild import Difference, Progress
from artifactstore_core.put_requests import PreparedPut, PutRequest, naming_request
from artifactstore_core.retention import sweep as sweep_module
from artifactstore_core.retention import tiering
from artifactstore_core.retention.explain import Explanation
from artifactstore_core.retention.explain import explain as explain_package
from artifactstore_core.schema import (
    artifact_packages,
    metadata_schemas,
    package_tags,
    retention_classes,
    storage_locations,
)
from artifactstore_core.sources import Files, FileSource
from artifactstore_core.storage import (
    HEAL_ATTEMPTS,
    WRITE_THREADS,
    BlobsGone,
    BlobStore,
    BlobWrite,
    StoredBlob,
    open_blob_store,
)
from artifactstore_core.validation import check_schema, validate_metadata

Clock = Callable[[], dt.datetime]
HOT = "hot"

# Statements every put runs, built once: building a statement costs several times more
# than executing a prebuilt one (SQLAlchemy caches its compiled form either way).
_CLASS_BY_NAME = sa.select(retention_classes).where(
    retention_classes.c.name == sa.bindparam("name")
)
_SCHEMA_BY_KIND = sa.select(metadata_schemas.c.json_schema).where(
    metadata_schemas.c.kind == sa.bindparam("kind")
)
_LATEST_VERSION = sa.select(sa.func.max(artifact_packages.c.version)).where(
    artifact_packages.c.name == sa.bindparam("name")
)
_KNOWN_LOCATIONS = sa.select(storage_locations.c.content_address, storage_locations.c.uri).where(
    storage_locations.c.backend == sa.bindparam("backend"),
    storage_locations.c.content_address.in_(sa.bindparam("addresses", expanding=True)),
)


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


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
    """What ``verify`` checked and found."""

    packages: int
    blobs: int
    bytes_verified: int
    problems: tuple[BlobProblem, ...] = field(default=())
    repaired: tuple[BlobProblem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def _serialised(progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """``progress`` callable from several threads, one call at a time."""
    if progress is None:
        return None
    lock = threading.Lock()
    report = progress

    def locked(count: int) -> None:
        with lock:
            report(count)

    return locked


def _blob_write(source: FileSource, expected: Digest | BlobHash | None) -> BlobWrite:
    return BlobWrite(source.open, expected, source.size_hint)


class ArtifactStore:
    """The registry: packages, their bytes, provenance, retention and the event log.

    Build it with ``ArtifactStore.open(database_url, storage_url)`` or
    ``ArtifactStore.from_settings()``; the constructor takes explicit parts.
    """

    def __init__(
        self,
        engine: sa.Engine,
        blobs: BlobStore,
        *,
        tiers: Mapping[str, BlobStore] | None = None,
        clock: Clock = utcnow,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        actor: str = "artifactstore",
        default_retention_class: str = "raw-evidence",
        gc_grace: dt.timedelta = dt.timedelta(hours=1),
    ) -> None:
        self.engine = engine
        self.tiers: dict[str, BlobStore] = {HOT: blobs, **(tiers or {})}
        self.clock = clock
        self.new_id = new_id
        self.actor = actor
        self.default_retention_class = default_retention_class
        self.gc_grace = gc_grace
        self.log = EventLog()

    @property
    def blobs(self) -> BlobStore:
        """The hot tier: where new bytes are written."""
        return self.tiers[HOT]

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(
        cls,
        database_url: str | None = None,
        storage_url: str | None = None,
        *,
        settings: Settings | None = None,
        migrate: bool = True,
        **kwargs: Any,
    ) -> ArtifactStore:
        """Open the registry at ``database_url`` with blobs at ``storage_url``.

        Unset arguments come from settings. With ``migrate`` (the default) the schema is
        created or upgraded first.
        """
        settings = settings or load_settings()
        database_url = database_url or settings.database_url
        storage_url = storage_url or settings.storage_url
        engine = create_engine(database_url, synchronous=settings.sqlite_synchronous)
        check_connection(engine)
        if migrate:
            from artifactstore_core.migrate import ensure_current

            ensure_current(engine, database_url)
        tiers = {
            name: open_blob_store(url, settings)
            for name, url in (
                ("cold", settings.tier_cold_url),
                ("archive", settings.tier_archive_url),
            )
            if url
        }
        kwargs.setdefault("actor", settings.actor)
        kwargs.setdefault("default_retention_class", settings.default_retention_class)
        kwargs.setdefault("gc_grace", dt.timedelta(seconds=settings.gc_grace_seconds))
        return cls(engine, open_blob_store(storage_url, settings), tiers=tiers, **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> ArtifactStore:
        """Open the registry described by ``ARTIFACTSTORE_*`` settings."""
        return cls.open(settings=settings or load_settings(), **kwargs)

    def close(self) -> None:
        """Release database connections and backend clients."""
        for store in self.tiers.values():
            store.close()
        self.engine.dispose()

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def _reading(self, *, snapshot: bool = False) -> Iterator[sa.Connection]:
        """A read transaction; with ``snapshot`` every statement sees the same state (SQLite
        read transactions always do; PostgreSQL then runs at REPEATABLE READ)."""
        options: dict[str, Any] = {READ_ONLY: True}
        if snapshot and self.engine.dialect.name == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn

    def _commit(
        self,
        decide: Callable[[sa.Connection, dt.datetime], Sequence[ev.Event]],
        *,
        actor: str | None = None,
    ) -> list[RecordedEvent]:
        """One transaction: lock the chain head, decide events, append and project them."""
        with self.engine.begin() as conn:
            EventLog._lock_head(conn)
            now = self.clock()
            new_events = decide(conn, now)
            recorded = self.log.append(conn, new_events, actor=actor or self.actor, at=now)
            writer = ProjectionWriter(conn)
            for item in recorded:
                writer.add(project(item))
            writer.flush()
        return recorded

    def _commit_on(
        self,
        reference: Reference,
        decide: Callable[[sa.Connection, Package], Sequence[ev.Event]],
        *,
        actor: str | None = None,
    ) -> tuple[Package, list[RecordedEvent]]:
        """``_commit`` for a command on one package, loaded under the lock."""
        loaded: list[Package] = []

        def run(conn: sa.Connection, _now: dt.datetime) -> Sequence[ev.Event]:
            loaded.append(queries.load_packages(conn, [queries.resolve(conn, reference)])[0])
            return decide(conn, loaded[0])

        recorded = self._commit(run, actor=actor)
        return loaded[0], recorded

    # ------------------------------------------------------------------ validation
    def retention_class(self, conn: sa.Connection, name: str) -> sa.Row[Any]:
        """The row of retention class ``name``; ``InvalidInputError`` lists the known ones."""
        row = conn.execute(_CLASS_BY_NAME, {"name": validate_class_name(name)}).first()
        if row is None:
            known = conn.execute(
                sa.select(retention_classes.c.name).order_by(retention_classes.c.name)
            )
            raise InvalidInputError(
                f"unknown retention class {name!r}; known classes: "
                + ", ".join(r.name for r in known)
            )
        return row

    def _schema_for(self, conn: sa.Connection, kind: str) -> dict[str, Any] | None:
        row = conn.execute(_SCHEMA_BY_KIND, {"kind": kind}).first()
        return None if row is None else dict(row.json_schema)

    def _check_kind_and_metadata(
        self, conn: sa.Connection, kind: str, metadata: dict[str, Any]
    ) -> None:
        validate_kind(kind)
        schema = self._schema_for(conn, kind)
        if schema is None and kind not in BUILTIN_KINDS:
            raise InvalidInputError(
                f"unknown kind {kind!r}; use one of {', '.join(sorted(BUILTIN_KINDS))} "
                "or register a metadata schema for it first"
            )
        if schema is not None:
            validate_metadata(kind, schema, metadata)

    # ------------------------------------------------------------------ commands
    def put(
        self,
        name: str,
        files: Files,
        *,
        kind: str = "output",
        metadata: Mapping[str, Any] | None = None,
        retention_class: str | None = None,
        inputs: Sequence[Reference] = (),
        provenance: Provenance | Mapping[str, Any] | None = None,
        expected: Mapping[str, str | Digest | BlobHash] | None = None,
        actor: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Package:
        """Store files as a new version of package ``name`` and register it.

        Everything is validated before any byte is written; on failure no event is
        recorded. ``expected`` maps file paths to digests their bytes must match.
        """
        request = PutRequest(
            name, files, kind, metadata, retention_class, inputs, provenance, expected
        )
        return self.put_many([request], actor=actor, progress=progress)[0]

    def put_many(
        self,
        requests: Iterable[PutRequest],
        *,
        actor: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Package]:
        """Store and register many packages at once: all or none of them.

        Every request is validated first (the error names the request's index). The
        bytes are written as one batch (``BlobStore.write_many``: synced together), and
        the packages are registered in one transaction, in order: two requests for the
        same name become consecutive versions. ``inputs`` may name packages registered
        before this call, not ones of the same batch. ``progress`` receives byte counts.
        """
        batch = list(requests)
        if not batch:
            return []
        prepared = self._prepare(batch, actor or self.actor)
        stored = self._write_blobs(prepared, progress)
        for _attempt in range(HEAL_ATTEMPTS):
            try:
                recorded = self._commit(
                    lambda conn, now: self._register(conn, now, prepared, stored), actor=actor
                )
            except BlobsGone as gone:
                self._rewrite(prepared, stored, gone.addresses)
                continue
            registrations = [r for r in recorded if isinstance(r.event, ev.PackageRegistered)]
            return [item.package(rec) for item, rec in zip(prepared, registrations, strict=True)]
        raise ConflictError(
            f"the bytes of this put were deleted {HEAL_ATTEMPTS} times before it could be "
            "registered (is a sweep with grace 0 running in a loop?); nothing was registered"
        )

    def _register(
        self,
        conn: sa.Connection,
        now: dt.datetime,
        prepared: Sequence[PreparedPut],
        stored: Sequence[Sequence[StoredBlob]],
    ) -> list[ev.Event]:
        """Under the chain lock: confirm every blob is in the hot tier, then decide the
        ``PackageRegistered`` events (consecutive versions) and the new locations."""
        blobs = {blob.hash.content_address: blob for item in stored for blob in item}
        gone = self.missing_from(self.blobs, (blob.hash for blob in blobs.values()))
        if gone:
            raise BlobsGone(gone)
        versions: dict[str, int] = {}
        registered: list[ev.Event] = []
        for item, item_blobs in zip(prepared, stored, strict=True):
            if item.name not in versions:
                latest = conn.execute(_LATEST_VERSION, {"name": item.name}).scalar()
                versions[item.name] = int(latest or 0)
            versions[item.name] += 1
            registered.append(item.event(item_blobs, versions[item.name], now))
        return registered + self._blob_events(conn, list(blobs.values()), HOT)

    def missing_from(self, backend: BlobStore, blobs: Iterable[BlobHash]) -> list[str]:
        """Addresses of ``blobs`` not in ``backend`` now (remote ones asked in parallel).

        Called under the chain lock before bytes are registered somewhere: every sweep
        deletion also happens under that lock, so what is confirmed here stays until the
        commit (ADR-0005).
        """
        unique = {blob.content_address: blob.blake3 for blob in blobs}
        if not backend.hash_before_write or len(unique) < 2:
            present = [backend.exists(address) for address in unique.values()]
        else:
            with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="blob-check") as pool:
                present = list(pool.map(backend.exists, unique.values()))
        return [address for address, ok in zip(unique, present, strict=True) if not ok]

    def _rewrite(
        self,
        prepared: Sequence[PreparedPut],
        stored: list[list[StoredBlob]],
        addresses: Collection[str],
    ) -> None:
        """Write again the blobs a sweep (or anyone) deleted after this put stored them."""
        for item, item_blobs in zip(prepared, stored, strict=True):
            for index, (source, blob) in enumerate(zip(item.sources, item_blobs, strict=True)):
                if blob.hash.content_address not in addresses:
                    continue
                if source.size_hint is None:  # a stream: its bytes cannot be read again
                    raise ConflictError(
                        f"blob {blob.hash.content_address} of file {source.path!r} was deleted "
                        "before this put could register it, and its source is a stream that "
                        "cannot be read again; nothing was registered, retry the put"
                    )
                item_blobs[index] = self.blobs.write_many([_blob_write(source, blob.hash)])[0]

    def _prepare(self, requests: Sequence[PutRequest], actor: str) -> list[PreparedPut]:
        """Validate every request (its index named in errors of a batch), then look up its
        retention class, metadata schema and inputs in one read transaction."""
        prepared = []
        for index, request in enumerate(requests):
            with naming_request(index, request, len(requests)):
                prepared.append(PreparedPut.build(request, self.default_retention_class))
        with self._reading() as conn:
            for index, (request, item) in enumerate(zip(requests, prepared, strict=True)):
                with naming_request(index, request, len(requests)):
                    duration = self.retention_class(conn, item.class_name).default_duration_seconds
                    self._check_kind_and_metadata(conn, item.kind, item.metadata)
                    inputs = [str(queries.resolve(conn, ref)) for ref in request.inputs]
                    item.resolved(duration, inputs, actor, self.new_id())
        return prepared

    def _write_blobs(
        self, prepared: Sequence[PreparedPut], progress: Callable[[int], None] | None
    ) -> list[list[StoredBlob]]:
        """Each request's blobs, written in one batch (``BlobStore.write_many``)."""
        items = [
            _blob_write(s, item.expected.get(s.path)) for item in prepared for s in item.sources
        ]
        results = iter(self.blobs.write_many(items, _serialised(progress)))
        return [[next(results) for _ in item.sources] for item in prepared]

    def _blob_events(
        self, conn: sa.Connection, stored: Sequence[StoredBlob], backend: str
    ) -> list[ev.Event]:
        """``BlobStored`` for blobs the registry does not yet record at their URI in
        ``backend`` (a location at another URI, from before the tier's URL moved, is
        replaced: reads look where the tier's backend is now)."""
        unique = {blob.hash.content_address: blob for blob in stored}
        known: set[str] = set()
        addresses = list(unique)
        for start in range(0, len(addresses), 500):
            params = {"backend": backend, "addresses": addresses[start : start + 500]}
            known.update(
                row.content_address
                for row in conn.execute(_KNOWN_LOCATIONS, params)
                if row.uri == unique[row.content_address].uri
            )
        return [
            ev.BlobStored(
                content_address=address,
                backend=backend,
                digest_sha256=blob.hash.sha256.hex,
                size=blob.hash.size,
                uri=blob.uri,
            )
            for address, blob in unique.items()
            if address not in known
        ]

    def describe(self, reference: Reference) -> Package:
        """The package a reference selects, without recording a retrieval."""
        if isinstance(reference, Package):
            reference = reference.id
        with self._reading() as conn:
            return queries.load_packages(conn, [queries.resolve(conn, reference)])[0]

    def get(
        self,
        reference: Reference,
        *,
        record: bool = True,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
    ) -> Package:
        """The package a reference selects, recording a retrieval unless ``record=False``.

        An expired package raises ``PackageExpiredError`` (``describe`` still works).
        """
        package = self.describe(reference)
        self._check_readable(package)
        if record:
            self.record_retrieval(package, actor=actor, purpose=purpose, run_id=run_id)
        return package

    def _check_readable(self, package: Package) -> None:
        if package.status == "expired":
            expired = package.expires_at or package.expired_at
            raise PackageExpiredError(
                f"package {package.reference} ({package.id}) of retention class "
                f"{package.retention_class!r} expired on "
                f"{expired.isoformat() if expired else 'an unknown date'}; its bytes may be gone "
                "(its manifest is still shown by `artifactstore show`)"
            )
        if package.retrieval_tier == "archive" and package.restore_status != "restored":
            raise ArchivedError(
                f"package {package.reference} is in the archive tier "
                f"(restore status: {package.restore_status or 'not requested'}); "
                f"restore it first with `artifactstore restore {package.reference}`"
            )

    def record_retrieval(
        self,
        package: Package,
        *,
        path: str | None = None,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Record that ``package`` (or one file) was read."""
        event = ev.PackageRetrieved(
            package_id=str(package.id), purpose=purpose, run_id=run_id, path=path
        )
        self._commit(lambda _conn, _now: [event], actor=actor)

    def _tier_store(self, package: Package) -> BlobStore:
        tier = HOT if package.retrieval_tier == "archive" else package.retrieval_tier
        store = self.tiers.get(tier)
        if store is None:
            raise ConfigurationError(
                f"package {package.reference} lives in tier {tier!r}, which has no backend "
                f"configured; set ARTIFACTSTORE_TIER_{tier.upper()}_URL"
            )
        return store

    def _open_entry(self, package: Package, entry: FileEntry) -> BinaryIO:
        """One file's verified stream; errors name the package, the file and, for a blob
        recorded at another URI than the tier's backend now, both places."""
        store = self._tier_store(package)
        owner = f"package {package.reference}, file {entry.path!r}"
        try:
            return store.open(entry.blob, owner=owner)
        except MissingBlobError as exc:
            tier = HOT if package.retrieval_tier == "archive" else package.retrieval_tier
            with self._reading() as conn:
                recorded = conn.execute(
                    sa.select(storage_locations.c.uri).where(
                        storage_locations.c.content_address == entry.blob.content_address,
                        storage_locations.c.backend == tier,
                    )
                ).scalar()
            here = store.uri(entry.blob.blake3)
            if recorded is None or recorded == here:
                raise
            raise MissingBlobError(
                f"{exc}; the registry recorded it at {recorded}, but tier {tier!r} now reads "
                f"from {store.url}: point the tier back there, or put the bytes again"
            ) from exc

    def open_file(
        self,
        reference: Reference,
        path: str | None = None,
        *,
        record: bool = True,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
    ) -> BinaryIO:
        """A stream of one file's bytes, verified as it is read (``IntegrityError``).

        A ``Package`` passed as the reference is used as given, without reloading it.
        """
        package = reference if isinstance(reference, Package) else self.describe(reference)
        self._check_readable(package)
        entry = package.file(path)
        stream = self._open_entry(package, entry)
        if record:
            self.record_retrieval(
                package, path=entry.path, actor=actor, purpose=purpose, run_id=run_id
            )
        return stream

    def read_bytes(self, reference: Reference, path: str | None = None, **kwargs: Any) -> bytes:
        """All bytes of one file, verified."""
        with self.open_file(reference, path, **kwargs) as stream:
            return stream.read()

    def export(
        self,
        reference: Reference,
        destination: str | Path,
        *,
        force: bool = False,
        record: bool = True,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Package:
        """Write every file of a package under ``destination``, verified; existing entries
        are refused unless ``force``. A ``Package`` reference is used as given.

        All or nothing (``artifactstore_core.export`` has the precise promise): a new
        destination appears complete in one rename; into an existing directory, files are
        moved in under a journal that an error (or, after a kill, the next export into
        it) rolls back. Never writes through a symbolic link below ``destination``.
        """
        package = reference if isinstance(reference, Package) else self.describe(reference)
        self._check_readable(package)
        export_files(
            package.files,
            destination,
            lambda entry: self._open_entry(package, entry),
            package=package.reference,
            force=force,
            progress=progress,
        )
        if record:
            self.record_retrieval(package, actor=actor, purpose=purpose, run_id=run_id)
        return package

    def list_packages(
        self, where: queries.PackageFilter | None = None, **filters: Any
    ) -> list[Package]:
        """Packages matching the filters (see ``PackageFilter``), by name and version."""
        where = where or queries.PackageFilter(**filters)
        with self._reading() as conn:
            return queries.load_packages(conn, queries.list_ids(conn, where))

    def tag(self, reference: Reference, tag: str, *, actor: str | None = None) -> Package:
        """Point ``tag`` of the package's name at this package (``latest`` moves itself)."""
        validate_tag(tag)
        if tag == "latest":
            raise InvalidInputError(
                "tag 'latest' always follows the newest version; use another tag"
            )

        def decide(conn: sa.Connection, package: Package) -> list[ev.Event]:
            t = package_tags
            previous = conn.execute(
                sa.select(t.c.package_id).where(t.c.name == package.name, t.c.tag == tag)
            ).scalar()
            return [
                ev.TagMoved(
                    package_id=str(package.id),
                    name=package.name,
                    tag=tag,
                    previous_package_id=str(previous) if previous else None,
                )
            ]

        package, _ = self._commit_on(reference, decide, actor=actor)
        return self.describe(package.id)

    def lineage(
        self, reference: Reference, *, downstream: bool = False, depth: int | None = None
    ) -> list[tuple[queries.LineageEdge, Package]]:
        """Upstream inputs (or downstream consumers) of a package, with the related package."""
        if depth is not None and depth < 1:
            raise InvalidInputError(f"lineage depth must be at least 1, got {depth}")
        with self._reading() as conn:
            start = queries.resolve(conn, reference)
            edges = queries.lineage(conn, start, downstream=downstream, depth=depth)
            related = [e.package_id if downstream else e.input_id for e in edges]
            packages = {p.id: p for p in queries.load_packages(conn, list(dict.fromkeys(related)))}
        return [(e, packages[r]) for e, r in zip(edges, related, strict=True)]

    def register_schema(
        self, kind: str, schema: Mapping[str, Any], *, actor: str | None = None
    ) -> None:
        """Require metadata of ``kind`` to satisfy the JSON Schema ``schema`` from now on."""
        validate_kind(kind)
        checked = check_schema(kind, normalize_json_object(schema, f"schema for {kind!r}"))
        event = ev.MetadataSchemaRegistered(kind=kind, json_schema=checked)
        self._commit(lambda _conn, _now: [event], actor=actor)

    def schemas(self) -> dict[str, dict[str, Any]]:
        """The registered metadata schemas by kind."""
        with self._reading() as conn:
            rows = conn.execute(sa.select(metadata_schemas.c.kind, metadata_schemas.c.json_schema))
            return {row.kind: dict(row.json_schema) for row in rows}

    # ------------------------------------------------------------------ retention
    def set_retention(
        self,
        reference: Reference,
        *,
        retention_class: str | None = None,
        expires_at: dt.datetime | None = None,
        never_expires: bool = False,
        override: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Package:
        """Change a package's class and/or expiry.

        Extending is always allowed; shortening is refused for protected classes
        (``release-evidence``, ``permanent-record``) and needs ``override`` and a
        ``reason`` for the others. The change is an event with actor and reason.
        """

        def decide(conn: sa.Connection, package: Package) -> list[ev.Event]:
            if package.status == "expired":
                raise RetentionError(
                    f"package {package.reference} expired on {iso(package.expired_at)}; "
                    "its retention can no longer change"
                )
            current = RetentionClass.from_row(self.retention_class(conn, package.retention_class))
            target = (
                RetentionClass.from_row(self.retention_class(conn, retention_class))
                if retention_class
                else None
            )
            decision = decide_change(
                created_at=package.created_at,
                current=current,
                current_expiry=package.expires_at,
                target=target,
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

        package, _ = self._commit_on(reference, decide, actor=actor)
        return self.describe(package.id)

    def place_hold(
        self,
        reference: Reference,
        *,
        reason: str,
        kind: str = "legal",
        actor: str | None = None,
    ) -> Hold:
        """Place a hold: the package never expires and keeps its bytes until released."""
        if kind not in HOLD_KINDS:
            raise InvalidInputError(
                f"unknown hold kind {kind!r}; use one of {', '.join(HOLD_KINDS)}"
            )
        if not reason or not reason.strip():
            raise InvalidInputError("a hold needs a reason")
        hold_id = self.new_id()

        def decide(conn: sa.Connection, package: Package) -> list[ev.Event]:
            if package.status == "expired":
                self._check_tombstone_intact(package)
            return [
                ev.HoldPlaced(
                    package_id=str(package.id), hold_id=str(hold_id), hold_kind=kind, reason=reason
                )
            ]

        _, recorded = self._commit_on(reference, decide, actor=actor)
        return Hold(hold_id, kind, reason, recorded[0].actor, recorded[0].created_at)

    def _check_tombstone_intact(self, package: Package) -> None:
        """A hold on an expired package can only keep bytes that are still there."""
        backend = self.tiers.get(
            HOT if package.retrieval_tier == "archive" else package.retrieval_tier
        )
        gone = [
            e.path for e in package.files if backend is None or not backend.exists(e.blob.blake3)
        ]
        if gone:
            raise RetentionError(
                f"package {package.reference} expired on {iso(package.expires_at)} and "
                f"{len(gone)} of its {len(package.files)} file(s) are already purged "
                f"({', '.join(gone[:5])}); a hold can no longer keep them"
            )

    def release_hold(
        self,
        reference: Reference,
        hold_id: uuid.UUID | str,
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Package:
        """Release one hold of a package; ``NotFoundError`` if it has no such hold."""
        try:
            hold = uuid.UUID(str(hold_id))
        except ValueError as exc:
            raise InvalidInputError(f"hold id {hold_id!r} is not a UUID") from exc

        def decide(conn: sa.Connection, package: Package) -> list[ev.Event]:
            if hold not in {h.hold_id for h in package.holds}:
                standing = ", ".join(str(h.hold_id) for h in package.holds) or "none"
                raise NotFoundError(
                    f"package {package.reference} has no hold {hold}; standing holds: {standing}"
                )
            return [
                ev.HoldReleased(
                    package_id=str(package.id),
                    hold_id=str(hold),
                    reason=reason,
                    holds_remaining=len(package.holds) - 1,
                )
            ]

        package, _ = self._commit_on(reference, decide, actor=actor)
        return self.describe(package.id)

    def sweep(
        self,
        now: dt.datetime | None = None,
        *,
        dry_run: bool = False,
        grace: dt.timedelta | None = None,
        limit: int | None = None,
        batch_size: int = sweep_module.BATCH_SIZE,
        actor: str | None = None,
        progress: sweep_module.Progress | None = None,
    ) -> sweep_module.SweepResult:
        """Expire due packages, move tiers by class rules, then collect unneeded blobs.

        With ``dry_run`` nothing changes and the result's ``plan`` is exactly what a
        sweep at the same ``now`` does. Two sweeps never run at once (``ConflictError``).
        """
        now = None if now is None else check_time(now, "sweep time")
        if limit is not None and limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}")
        at = now or self.clock()
        plan = sweep_module.plan_sweep(
            self, at, grace=self.gc_grace if grace is None else grace, batch_size=batch_size,
            limit=limit,
        )  # fmt: skip
        liveness = sweep_module.check_plan(self, plan)
        if dry_run:
            return sweep_module.SweepResult(plan, dry_run=True)
        return sweep_module.execute_sweep(
            self, plan, liveness, actor=actor, batch_size=batch_size, progress=progress
        )

    def move_tier(self, reference: Reference, tier: str, *, actor: str | None = None) -> Package:
        """Move a package's bytes to ``tier`` (``hot``, ``cold`` or ``archive``), verified."""
        return tiering.move_tier(self, reference, tier, actor=actor)

    def restore(self, reference: Reference, *, actor: str | None = None) -> Package:
        """Copy an archived package's bytes back to the hot tier so it can be read."""
        return tiering.restore(self, reference, actor=actor)

    def explain(self, reference: Reference, *, now: dt.datetime | None = None) -> Explanation:
        """Why a package is kept or when it goes: class, expiry, holds, shared blobs."""
        with self._reading() as conn:
            package = queries.load_packages(conn, [queries.resolve(conn, reference)])[0]
            return explain_package(conn, package, now or self.clock())

    # ------------------------------------------------------------------ integrity
    def verify(
        self,
        reference: Reference | None = None,
        *,
        rehash: bool = True,
        repair: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyResult:
        """Check the stored bytes of one package (or every active package).

        With ``rehash`` every blob is read and re-hashed; without, only its presence is
        checked. Missing and corrupt blobs are reported, never raised. With ``repair``
        each is written again from an intact copy in another tier, if one exists (a put
        of the same bytes repairs a blob too); those are listed in ``repaired``.
        """
        with self._reading() as conn:
            if reference is not None:
                ids = [queries.resolve(conn, reference)]
            else:
                ids = queries.list_ids(conn, queries.PackageFilter(status="active"))
            blobs: dict[tuple[str, str], tuple[BlobHash, list[str]]] = {}
            for package in queries.load_packages(conn, ids):
                for tier in tiers_holding(package.retrieval_tier, package.restore_status):
                    for entry in package.files:
                        key = (entry.blob.content_address, tier)
                        blobs.setdefault(key, (entry.blob, []))[1].append(package.reference)
        problems: list[BlobProblem] = []
        verified = 0
        for (address, tier), (blob, users) in blobs.items():
            store = self.tiers.get(tier)
            problem = self._check_blob(store, blob, rehash) if store else "no backend for tier"
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
        remaining = tuple(p for p in problems if p not in repaired)
        return VerifyResult(len(ids), len(blobs), verified, remaining, tuple(repaired))

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

    @staticmethod
    def _check_blob(store: BlobStore, blob: BlobHash, rehash: bool) -> str | None:
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

    def verify_log(self) -> VerifyReport:
        """Walk the event log's hash chain (``EventLogTamperedError`` on the first break)."""
        with self._reading() as conn:
            return self.log.verify(conn)

    def rebuild_views(self, *, progress: Progress | None = None) -> int:
        """Drop the projections and replay the log; returns the number of events replayed."""
        return rebuild_views(self.engine, progress=progress)

    def check_views(self, *, progress: Progress | None = None) -> list[Difference]:
        """Rows where the live projections differ from a replay of the log (empty: all good)."""
        return check_views(self.engine, progress=progress)

    def events(
        self,
        *,
        since: int = 0,
        subject_kind: str | None = None,
        subject_id: str | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Recorded events after ``since``, oldest first."""
        with self._reading() as conn:
            result = []
            for item in self.log.read(
                conn, since=since, subject_kind=subject_kind, subject_id=subject_id
            ):
                result.append(item)
                if limit is not None and len(result) >= limit:
                    break
            return result
