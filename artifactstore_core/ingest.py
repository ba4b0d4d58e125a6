"""The put path, top-down: validate → resolve → write the blobs → register.

1. ``validate`` checks one request without the registry (names, paths, metadata and
   provenance bounds, expected digests): a ``ValidatedPut``.
2. ``resolve`` asks the registry, in one read transaction for the whole batch: the
   retention class, the kind's metadata schema, the input packages: a ``ResolvedPut``.
3. ``PutBlobs`` writes every file to the hot tier as one batch (``BlobStore.write_many``).
4. ``Ledger.record_stored`` confirms the blobs under the chain lock (ADR-0005), records
   one ``registration_event`` per put (consecutive versions) and the new locations; the
   packages returned are derived from the rows the projection wrote
   (``queries.registered_packages``: the one derivation of ``Package``).

Everything is validated before a byte is written; on failure no event is recorded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.limits import check_optional_text, check_text
from artifactstore_core.domain.manifest import (
    FileEntry,
    Provenance,
    manifest_document,
    normalize_json_object,
    package_digest,
)
from artifactstore_core.domain.names import (
    ATTESTATION_KIND,
    BUILTIN_KINDS,
    check_not_reserved,
    validate_class_name,
    validate_file_paths,
    validate_kind,
    validate_name,
)
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.retention import HOT
from artifactstore_core.errors import (
    BlobUnknownError,
    ConflictError,
    IdempotencyConflictError,
    InvalidInputError,
    UnknownKindError,
    add_context,
)
from artifactstore_core.eventlog import RecordedEvent
from artifactstore_core.hashing import (
    BlobHash,
    Digest,
    DigestError,
)
from artifactstore_core.ledger import Ledger, blob_stored_events
from artifactstore_core.retention.classes import load_class
from artifactstore_core.schema import artifact_packages, metadata_schemas
from artifactstore_core.sources import Files, FileSource, collect
from artifactstore_core.storage import BlobStore, BlobWrite, StoredBlob
from artifactstore_core.tiers import Tiers
from artifactstore_core.validation import validate_metadata

# Statements every put runs, built once: building a statement costs several times more
# than executing a prebuilt one (SQLAlchemy caches its compiled form either way).
_SCHEMA_BY_KIND = sa.select(metadata_schemas.c.json_schema).where(
    metadata_schemas.c.kind == sa.bindparam("kind")
)
_LATEST_VERSION = sa.select(sa.func.max(artifact_packages.c.version)).where(
    artifact_packages.c.name == sa.bindparam("name")
)


@dataclass(frozen=True)
class PutRequest:
    """One package for ``ArtifactStore.put_many``: the arguments of ``put``."""

    name: str
    files: Files
    kind: str = "output"
    metadata: Mapping[str, Any] | None = None
    retention_class: str | None = None
    inputs: Sequence[Reference] = ()
    provenance: Provenance | Mapping[str, Any] | None = None
    expected: Mapping[str, str | Digest | BlobHash] | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RegisterRequest:
    """One package for ``ArtifactStore.register_many``: files are blobs already stored,
    given by address (``blake3:<hex>`` or ``sha256:<hex>``) per path."""

    name: str
    files: Mapping[str, str | Digest | BlobHash]
    kind: str = "output"
    metadata: Mapping[str, Any] | None = None
    retention_class: str | None = None
    inputs: Sequence[Reference] = ()
    provenance: Provenance | Mapping[str, Any] | None = None
    idempotency_key: str | None = None


MAX_IDEMPOTENCY_KEY = 255
"""Characters in an idempotency key."""


# ---------------------------------------------------------------------------- 1. validate
@dataclass(frozen=True)
class ValidatedPut:
    """A request checked without the registry."""

    name: str
    kind: str
    metadata: dict[str, Any]
    provenance: Provenance
    class_name: str
    sources: tuple[FileSource, ...]
    expected: Mapping[str, Digest | BlobHash]
    inputs: tuple[Reference, ...]
    idempotency_key: str | None = None
    #: A registration of stored blobs (``RegisterRequest``): ``blobs`` gives each path's.
    stored: bool = False
    blobs: tuple[tuple[str, Digest], ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """The package's file paths, in request order."""
        if self.stored:
            return tuple(path for path, _ in self.blobs)
        return tuple(source.path for source in self.sources)


def validate(request: PutRequest | RegisterRequest, default_class: str) -> ValidatedPut:
    """``request`` checked on its own; ``InvalidInputError`` names the offending value."""
    validate_name(request.name)
    validate_kind(request.kind)
    if isinstance(request.inputs, str | bytes) or not isinstance(request.inputs, Iterable):
        raise InvalidInputError(
            f"inputs must be a list of package references, got {request.inputs!r:.60}"
        )
    if isinstance(request, RegisterRequest):
        sources: tuple[FileSource, ...] = ()
        blobs = stored_files(request.files)
        paths = [path for path, _ in blobs]
        expected: Mapping[str, Digest | BlobHash] = {}
    else:
        sources, blobs = tuple(collect(request.files)), ()
        paths = [source.path for source in sources]
        expected = parse_expected(request.expected or {}, set(paths))
    validate_file_paths(paths)
    return ValidatedPut(
        name=request.name,
        kind=request.kind,
        metadata=normalize_json_object(request.metadata, "metadata"),
        provenance=checked_provenance(request.provenance),
        class_name=validate_class_name(request.retention_class or default_class),
        sources=sources,
        expected=expected,
        inputs=tuple(request.inputs),
        idempotency_key=check_optional_text(
            request.idempotency_key, "idempotency key", max_length=MAX_IDEMPOTENCY_KEY
        ),
        stored=isinstance(request, RegisterRequest),
        blobs=blobs,
    )


def stored_files(files: Mapping[str, str | Digest | BlobHash]) -> tuple[tuple[str, Digest], ...]:
    """The ``path → blob address`` mapping of a registration, each address parsed."""
    if not isinstance(files, Mapping):
        raise InvalidInputError(
            f"files of a registration must map paths to blob digests, got {files!r:.60}"
        )
    result = []
    for path, value in files.items():
        check_text(path, "file path")
        try:
            if isinstance(value, BlobHash):
                digest = value.blake3
            else:
                digest = value if isinstance(value, Digest) else Digest.parse(value)
        except DigestError as exc:
            raise InvalidInputError(f"blob digest of file {path!r}: {exc}") from exc
        result.append((path, digest))
    return tuple(result)


def parse_expected(
    expected: Mapping[str, str | Digest | BlobHash], paths: set[str]
) -> dict[str, Digest | BlobHash]:
    """Expected digests by file path; each path must be a file of the package."""
    result: dict[str, Digest | BlobHash] = {}
    for path, value in expected.items():
        if path not in paths:
            raise InvalidInputError(
                f"expected digest given for {path!r}, which is not a file of the package"
            )
        try:
            result[path] = value if isinstance(value, Digest | BlobHash) else Digest.parse(value)
        except DigestError as exc:
            raise InvalidInputError(f"expected digest for {path!r}: {exc}") from exc
    return result


def checked_provenance(value: Provenance | Mapping[str, Any] | None) -> Provenance:
    """Provenance whose fields are bounded text and whose attributes are a bounded JSON
    object (``domain.limits``); ``inputs`` (package references) are resolved later, by the
    registry, with the put's own."""
    if not isinstance(value, Provenance):
        data = normalize_json_object(value, "provenance")
        for key, kind, called in (("inputs", list, "array"), ("attributes", dict, "object")):
            if not isinstance(data.get(key) or kind(), kind):
                raise InvalidInputError(
                    f"provenance {key} must be a JSON {called}, got {data[key]!r:.60}"
                )
        value = Provenance.from_dict(data)
    for field in ("producer", "run_id", "code_version", "actor"):
        check_optional_text(getattr(value, field), f"provenance {field}")
    for index, reference in enumerate(value.inputs):
        check_text(reference, f"provenance input {index}")
    normalize_json_object(value.attributes, "provenance.attributes")
    return value


@contextlib.contextmanager
def naming_request(index: int, name: str, count: int) -> Iterator[None]:
    """Prefix input errors of a batch with the request they concern."""
    try:
        yield
    except InvalidInputError as exc:
        if count > 1:
            add_context(exc, f"request {index} ({name!r})")
        raise


# ---------------------------------------------------------------------------- 2. resolve
@dataclass(frozen=True)
class ResolvedPut:
    """A validated put with the registry's answers: its id, expiry rule and inputs."""

    put: ValidatedPut
    package_id: uuid.UUID
    duration: dt.timedelta | None
    provenance: Provenance


def resolve(
    conn: sa.Connection, put: ValidatedPut, actor: str, package_id: uuid.UUID
) -> ResolvedPut:
    """Look up the class, check the metadata against the kind's schema, resolve inputs."""
    check_text(actor, "actor")
    duration = load_class(conn, put.class_name).duration
    if put.kind == ATTESTATION_KIND:
        duration = None  # an attestation expires with its subject (``attestations``)
    else:
        check_metadata(conn, put.kind, put.metadata)
    # Provenance inputs are references too: resolved to package ids, so each input is
    # recorded once, by its id, whatever form named it.
    references = [*put.provenance.inputs, *put.inputs]
    inputs = [str(queries.resolve(conn, reference)) for reference in references]
    provenance = replace(
        put.provenance,
        actor=put.provenance.actor or actor,
        inputs=tuple(dict.fromkeys(inputs)),
    )
    return ResolvedPut(put, package_id, duration, provenance)


def check_metadata(conn: sa.Connection, kind: str, metadata: dict[str, Any]) -> None:
    """``metadata`` against the registered schema of ``kind``; an unknown kind without a
    schema is refused."""
    row = conn.execute(_SCHEMA_BY_KIND, {"kind": kind}).first()
    if row is None and kind not in BUILTIN_KINDS:
        raise UnknownKindError(kind, sorted(BUILTIN_KINDS))
    if row is not None:
        validate_metadata(kind, dict(row.json_schema), metadata)


# ---------------------------------------------------------------------------- 3. write
class PutBlobs:
    """The files of a batch of puts, stored in ``backend`` as one ``write_many`` batch
    (small local files synced together: ADR-0007)."""

    def __init__(
        self,
        backend: BlobStore,
        puts: Sequence[ResolvedPut],
        progress: Callable[[int], None] | None,
    ) -> None:
        self.backend = backend
        self.sources = [source for r in puts for source in r.put.sources]
        self.expected = [r.put.expected.get(s.path) for r in puts for s in r.put.sources]
        self.counts = [len(r.put.sources) for r in puts]
        self.progress = _serialised(progress)
        self.stored: list[StoredBlob] = []

    def write(self, gone: Collection[str]) -> list[StoredBlob]:
        """Store every file (``gone`` empty), or again those whose blobs were deleted."""
        if not gone:
            items = [_blob_write(s, e) for s, e in zip(self.sources, self.expected, strict=True)]
            self.stored = self.backend.write_many(items, self.progress)
            return self.stored
        again = [i for i, blob in enumerate(self.stored) if blob.hash.content_address in gone]
        for index in again:
            if self.sources[index].size_hint is None:  # a stream cannot be read again
                raise ConflictError(
                    f"blob {self.stored[index].hash.content_address} of file "
                    f"{self.sources[index].path!r} was deleted before this put could register "
                    "it, and its source is a stream that cannot be read again; nothing was "
                    "registered, retry the put"
                )
        items = [_blob_write(self.sources[i], self.stored[i].hash) for i in again]
        for index, blob in zip(again, self.backend.write_many(items), strict=True):
            self.stored[index] = blob
        return self.stored

    def per_put(self) -> Iterator[list[StoredBlob]]:
        """The stored blobs of each put, in request order."""
        start = 0
        for count in self.counts:
            yield self.stored[start : start + count]
            start += count


def _blob_write(source: FileSource, expected: Digest | BlobHash | None) -> BlobWrite:
    return BlobWrite(source.open, expected, source.size_hint)


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


# ---------------------------------------------------------------------------- 4. register
def registration_event(
    resolved: ResolvedPut, blobs: Sequence[StoredBlob], version: int, now: dt.datetime
) -> ev.PackageRegistered:
    """The event that registers ``resolved`` as ``version`` of its name at ``now``."""
    put = resolved.put
    entries = [FileEntry(path, b.hash) for path, b in zip(put.paths, blobs, strict=True)]
    document = manifest_document(put.kind, entries, put.metadata, resolved.provenance)
    digest = package_digest(document)
    expires = None if resolved.duration is None else now + resolved.duration
    return ev.PackageRegistered(
        package_id=str(resolved.package_id),
        name=put.name,
        version=version,
        kind=put.kind,
        content_address=digest.content_address,
        digest_sha256=digest.sha256.hex,
        size=sum(e.blob.size for e in entries),
        files=document["files"],
        metadata=put.metadata,
        provenance=resolved.provenance.to_dict(),
        retention_class=put.class_name,
        expires_at=expires.isoformat() if expires else None,
        idempotency_key=put.idempotency_key,
    )


_BY_IDEMPOTENCY_KEY = sa.select(
    artifact_packages.c.package_id, artifact_packages.c.content_address
).where(
    artifact_packages.c.name == sa.bindparam("name"),
    artifact_packages.c.idempotency_key == sa.bindparam("key"),
)


def _registered_with_key(conn: sa.Connection, name: str, key: str) -> _KeyedRegistration | None:
    """The registration of ``name`` with idempotency ``key``, if any."""
    row = conn.execute(_BY_IDEMPOTENCY_KEY, {"name": name, "key": key}).first()
    if row is None:
        return None
    return _KeyedRegistration(str(row.package_id), row.content_address)


@dataclass(frozen=True)
class _KeyedRegistration:
    """A registration made with an idempotency key: its package and that package's digest."""

    package_id: str
    content_address: str


def _same_request(
    earlier: _KeyedRegistration, retry: ev.PackageRegistered, key: str
) -> _KeyedRegistration:
    """``earlier`` if ``retry`` would register the same package, else
    ``IdempotencyConflictError``: a key stands for one request."""
    if earlier.content_address != retry.content_address:
        raise IdempotencyConflictError(
            f"idempotency key {key!r} already registered package {retry.name!r} with "
            f"digest {earlier.content_address}; this request's differs "
            f"({retry.content_address}): use a new key for a new version"
        )
    return earlier


Attach = Callable[[sa.Connection, dt.datetime, Sequence[ev.PackageRegistered], str], list[ev.Event]]
"""Events recorded with a batch's registrations, in their transaction (under the chain
lock), given the registrations and the actor: the store's auto-attestation."""


class Ingest:
    """Stores and registers packages: the service behind ``put`` and ``put_many``.

    ``attach``, if set, adds events to every registration's transaction (``Attach``).
    """

    def __init__(
        self,
        ledger: Ledger,
        tiers: Tiers,
        *,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        default_retention_class: str = "raw-evidence",
        attach: Attach | None = None,
    ) -> None:
        self.ledger = ledger
        self.tiers = tiers
        self.new_id = new_id
        self.default_retention_class = default_retention_class
        self.attach = attach

    def put_many(
        self,
        requests: Iterable[PutRequest | RegisterRequest],
        *,
        actor: str | None = None,
        progress: Callable[[int], None] | None = None,
        attach: Attach | None = None,
    ) -> list[Package]:
        """Store and register every request, all or none (see ``ArtifactStore.put_many``):
        the files of a ``PutRequest`` are written, those of a ``RegisterRequest`` must be
        stored already (``BlobUnknownError`` lists those that are not). ``attach`` adds
        events to this call's transaction, after those of the ingest's own ``attach``."""
        batch = list(requests)
        if not batch:
            return []
        validated = []
        for index, request in enumerate(batch):
            with naming_request(index, request.name, len(batch)):
                validated.append(validate(request, self.default_retention_class))
                check_not_reserved(request.name, request.kind)
        resolved = self._resolve(validated, actor or self.ledger.actor)
        written = PutBlobs(self.tiers.hot, [r for r in resolved if not r.put.stored], progress)
        found = self._stored_blobs(validated)

        def write(gone: Collection[str]) -> list[StoredBlob]:
            if gone:  # deleted meanwhile: written ones are written again, others are lost
                lost = set(gone) - {blob.hash.content_address for blob in written.stored}
                if lost:
                    raise BlobUnknownError(sorted(lost))
            written.write(gone)
            return [*written.stored, *found.values()]

        def per_put() -> Iterator[list[StoredBlob]]:
            fresh = written.per_put()
            for item in resolved:
                yield [found[d] for _, d in item.put.blobs] if item.put.stored else next(fresh)

        what = "this put" if all(isinstance(r, PutRequest) for r in batch) else "this registration"
        hooks = [hook for hook in (self.attach, attach) if hook is not None]
        return self._register(resolved, write, per_put, actor, what, hooks)

    def _stored_blobs(self, validated: Sequence[ValidatedPut]) -> dict[Digest, StoredBlob]:
        """The stored blob of each file the registrations among ``validated`` name."""
        wanted = {digest for item in validated for _, digest in item.blobs}
        if not wanted:
            return {}
        with self.ledger.reading() as conn:
            found = {digest: queries.stored_blob(conn, digest, HOT) for digest in wanted}
        missing = sorted(str(d) for d, blob in found.items() if blob is None)
        if missing:
            raise BlobUnknownError(missing)
        hot = self.tiers.hot
        return {
            digest: StoredBlob(blob, hot.uri(blob.blake3), created=False)
            for digest, blob in found.items()
            if blob is not None
        }

    def _register(
        self,
        resolved: Sequence[ResolvedPut],
        write: Callable[[Collection[str]], list[StoredBlob]],
        per_put: Callable[[], Iterator[list[StoredBlob]]],
        actor: str | None,
        what: str,
        hooks: Sequence[Attach] = (),
    ) -> list[Package]:
        """Record the packages of ``resolved`` (files as ``per_put`` gives them, once
        ``write`` stored them) as consecutive versions of their names; a request whose
        name and idempotency key were registered before answers that package instead."""
        ids = [item.package_id for item in resolved]

        def register(
            conn: sa.Connection, now: dt.datetime, stored: list[StoredBlob]
        ) -> list[ev.Event]:
            versions: dict[str, int] = {}
            keys: dict[tuple[str, str], _KeyedRegistration] = {}
            events: list[ev.Event] = []
            for index, (item, blobs) in enumerate(zip(resolved, per_put(), strict=True)):
                name, key = item.put.name, item.put.idempotency_key
                event = registration_event(item, blobs, 0, now)
                if key is not None:
                    earlier = keys.get((name, key)) or _registered_with_key(conn, name, key)
                    if earlier is not None:
                        ids[index] = uuid.UUID(_same_request(earlier, event, key).package_id)
                        continue
                if name not in versions:
                    versions[name] = int(
                        conn.execute(_LATEST_VERSION, {"name": name}).scalar() or 0
                    )
                versions[name] += 1
                event = replace(event, version=versions[name])
                if key is not None:
                    keys[(name, key)] = _KeyedRegistration(event.package_id, event.content_address)
                events.append(event)
            if hooks:
                registered = [e for e in events if isinstance(e, ev.PackageRegistered)]
                for hook in hooks:
                    events += hook(conn, now, registered, actor or self.ledger.actor)
            return events + blob_stored_events(conn, stored, HOT)

        def registered(conn: sa.Connection, recorded: list[RecordedEvent]) -> list[Package]:
            packages = {p.id: p for p in queries.registered_packages(recorded)}
            earlier = [i for i in dict.fromkeys(ids) if i not in packages]
            packages.update((p.id, p) for p in queries.load_packages(conn, earlier))
            return [packages[i] for i in ids]

        return self.ledger.record_stored(
            self.tiers.hot, write, register, registered, actor=actor, what=what
        )

    def _resolve(self, validated: Sequence[ValidatedPut], actor: str) -> list[ResolvedPut]:
        """Every put resolved in one read transaction (a batch's errors name the request)."""
        resolved = []
        with self.ledger.reading() as conn:
            for index, put in enumerate(validated):
                with naming_request(index, put.name, len(validated)):
                    resolved.append(resolve(conn, put, actor, self.new_id()))
        return resolved
