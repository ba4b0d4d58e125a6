"""``ArtifactStore``: the one entry point, a facade of one-screen methods over the services.

The unit of work is ``ledger.Ledger``; the tiers' backends are ``tiers.Tiers``. Puts go
through ``ingest``, reads through ``reading``, checks of stored bytes through
``integrity``, retention through ``retention/*`` (docs/adr/0006-core-shape.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import sqlalchemy as sa

from artifactstore_core import queries, transparency
from artifactstore_core.access import Tokens
from artifactstore_core.attestations import Attestations, attest_registered
from artifactstore_core.config import Settings, check_connection, create_engine, load_settings
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.attestation import Attestor, AutoAttest
from artifactstore_core.domain.checkpoint import NoteSigner, NoteVerifier, SignedCheckpoint
from artifactstore_core.domain.limits import check_time
from artifactstore_core.domain.manifest import Provenance, normalize_json_object
from artifactstore_core.domain.names import validate_kind, validate_tag
from artifactstore_core.domain.package import Hold, Package
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.retention import KeepRule
from artifactstore_core.domain.tlog_proof import TlogProof
from artifactstore_core.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
)
from artifactstore_core.eventlog import EventLog, RecordedEvent, VerifyReport
from artifactstore_core.hashing import BlobHash, Digest
from artifactstore_core.ingest import Attach, Ingest, PutRequest, RegisterRequest
from artifactstore_core.integrity import BlobProblem, Integrity, VerifyResult
from artifactstore_core.ledger import Clock, Ledger, utcnow
from artifactstore_core.projections import check_views, rebuild_views
from artifactstore_core.projections.rebuild import Difference, Progress
from artifactstore_core.reading import Reading
from artifactstore_core.retention import commands, keep, tiering
from artifactstore_core.retention import sweep as sweeping
from artifactstore_core.retention.explain import Explanation, explain
from artifactstore_core.schema import metadata_schemas, package_tags
from artifactstore_core.sources import Files
from artifactstore_core.storage import BlobStore, open_blob_store
from artifactstore_core.tiers import Tiers
from artifactstore_core.uploads import Uploads
from artifactstore_core.validation import check_schema

if TYPE_CHECKING:
    from securesystemslib.signer import Signer

__all__ = ["ArtifactStore", "BlobProblem", "VerifyResult", "utcnow"]


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
        log_signer: NoteSigner | None = None,
        auto_attest: AutoAttest | None = None,
    ) -> None:
        self.engine = engine
        #: Signs the log's checkpoints (after each sweep, and ``checkpoint()``); None: unsigned.
        self.log_signer = log_signer
        self.ledger = Ledger(engine, clock=clock, actor=actor)
        self.tiers = Tiers(blobs, tiers)
        self.new_id = new_id
        self.gc_grace = gc_grace
        self.auto_attest = auto_attest
        self.ingest = Ingest(
            self.ledger, self.tiers, new_id=new_id, default_retention_class=default_retention_class,
            attach=None if auto_attest is None else self._auto_attestations,
        )  # fmt: skip
        self.attestation_service = Attestations(self.ledger, self.tiers, new_id=new_id)
        self.reading = Reading(self.ledger, self.tiers)
        self.integrity = Integrity(self.ledger, self.tiers)
        #: Chunked uploads of single blobs, for ``register`` (the HTTP gateway's sessions).
        self.uploads = Uploads(self.ledger, self.tiers)
        #: Access tokens (the HTTP gateway's principals); revoking one ends its uploads.
        self.tokens = Tokens(self.ledger, new_id=new_id, on_revoke=self.uploads.cancel_for_token)

    @property
    def blobs(self) -> BlobStore:
        """The hot tier: where new bytes are written."""
        return self.tiers.hot

    @property
    def log(self) -> EventLog:
        return self.ledger.log

    @property
    def clock(self) -> Clock:
        return self.ledger.clock

    @property
    def actor(self) -> str:
        return self.ledger.actor

    @property
    def default_retention_class(self) -> str:
        return self.ingest.default_retention_class

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

        Unset arguments come from settings; backends given in ``tiers`` replace those of
        the settings (and ``auto_attest`` the attestation at registration they configure).
        With ``migrate`` (the default) the schema is created or upgraded first.
        """
        settings = settings or load_settings()
        if "auto_attest" not in kwargs:  # first: a bad signing key opens nothing
            from artifactstore_core.evidence.attest import auto_attest

            kwargs["auto_attest"] = auto_attest(settings)
        database_url = database_url or settings.database_url
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
            if url and name not in kwargs.get("tiers", {})
        }
        tiers.update(kwargs.pop("tiers", {}))
        kwargs.setdefault("actor", settings.actor)
        kwargs.setdefault("default_retention_class", settings.default_retention_class)
        kwargs.setdefault("gc_grace", dt.timedelta(seconds=settings.gc_grace_seconds))
        if "log_signer" not in kwargs:
            kwargs["log_signer"] = transparency.log_signer_from_env(
                settings.log_origin, settings.log_key
            )
        hot = open_blob_store(storage_url or settings.storage_url, settings)
        return cls(engine, hot, tiers=tiers, **kwargs)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> ArtifactStore:
        """Open the registry described by ``ARTIFACTSTORE_*`` settings."""
        return cls.open(settings=settings or load_settings(), **kwargs)

    def close(self) -> None:
        """Release database connections and backend clients."""
        self.tiers.close()
        self.engine.dispose()

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
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
        idempotency_key: str | None = None,
        actor: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Package:
        """Store files as a new version of package ``name`` and register it.

        Everything is validated before any byte is written; on failure no event is
        recorded. ``expected`` maps file paths to digests their bytes must match. A put
        retried with the same ``idempotency_key`` returns the package it registered.
        """
        request = PutRequest(
            name, files, kind, metadata, retention_class, inputs, provenance, expected,
            idempotency_key,
        )  # fmt: skip
        return self.put_many([request], actor=actor, progress=progress)[0]

    def put_many(
        self,
        requests: Iterable[PutRequest | RegisterRequest],
        *,
        actor: str | None = None,
        progress: Callable[[int], None] | None = None,
        attestor: Attestor | None = None,
    ) -> list[Package]:
        """Store and register many packages at once: all or none of them.

        Every request is validated first (the error names the request's index). The
        bytes are written as one batch (``BlobStore.write_many``: small files synced
        together, ADR-0007), and the packages are registered in one transaction, in order: two
        requests for the same name become consecutive versions. ``inputs`` may name
        packages registered before this call, not ones of the same batch. ``progress``
        receives byte counts. A ``RegisterRequest`` among them names blobs already
        stored instead of files to write (as ``register``). With ``attestor`` every package
        is also attested (``attest``) in the same transaction: a signing failure records
        nothing.
        """
        attach = None if attestor is None else self._attesting(attestor)
        return self.ingest.put_many(requests, actor=actor, progress=progress, attach=attach)

    def register(
        self,
        name: str,
        files: Mapping[str, str | Digest | BlobHash],
        *,
        kind: str = "output",
        metadata: Mapping[str, Any] | None = None,
        retention_class: str | None = None,
        inputs: Sequence[Reference] = (),
        provenance: Provenance | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Package:
        """Register a new version of ``name`` whose files are blobs already stored (by an
        earlier put or an upload session): ``files`` maps each path to a blob address,
        ``blake3:<hex>`` or ``sha256:<hex>``. ``BlobUnknownError`` lists blobs not stored.
        A retry with the same ``idempotency_key`` returns the package it registered."""
        request = RegisterRequest(
            name, files, kind, metadata, retention_class, inputs, provenance, idempotency_key
        )
        return self.register_many([request], actor=actor)[0]

    def register_many(
        self, requests: Iterable[RegisterRequest], *, actor: str | None = None
    ) -> list[Package]:
        """``register`` for many packages in one transaction: all or none, in order."""
        return self.ingest.put_many(requests, actor=actor)

    def _auto_attestations(
        self,
        conn: sa.Connection,
        now: dt.datetime,
        registered: Sequence[ev.PackageRegistered],
        actor: str,
    ) -> list[ev.Event]:
        assert self.auto_attest is not None
        return attest_registered(
            conn, self.tiers, self.auto_attest.attestor, registered, new_id=self.new_id,
            actor=actor, now=now, classes=self.auto_attest.classes,
        )  # fmt: skip

    def _attesting(self, attestor: Attestor) -> Attach:
        """The ingest hook that attests every package of one call with ``attestor``."""

        def attach(
            conn: sa.Connection,
            now: dt.datetime,
            registered: Sequence[ev.PackageRegistered],
            actor: str,
        ) -> list[ev.Event]:
            return attest_registered(
                conn, self.tiers, attestor, registered, new_id=self.new_id, actor=actor, now=now
            )

        return attach

    def attest(
        self, reference: Reference, signer: Attestor, *, actor: str | None = None
    ) -> Package:
        """Sign the provenance statement of a package and store it as a new attestation:
        a package of kind ``attestation`` named ``.attestations/<name>/<version>`` holding
        ``<name>@<version>.intoto.jsonl``, linked to the package and retained exactly with
        it (``artifactstore_core.attestations``). ``signer`` makes and signs the statement
        (``evidence.attest.DsseAttestor``). An expired package cannot be attested."""
        return self.attestation_service.attest(reference, signer, actor=actor)

    def attestations(self, reference: Reference) -> list[Package]:
        """The attestations of a package, oldest first (expired ones too, with it)."""
        return self.attestation_service.of(reference)

    def stat(self, digest: str | Digest) -> BlobHash:
        """The hash (BLAKE3, SHA-256, size) of a blob stored in the hot tier, by either
        digest; ``BlobUnknownError`` if it is not recorded there or not in the backend."""
        return self.reading.stat(digest)

    def names_with_blob(self, digest: str | Digest) -> list[str]:
        """The names of the packages with a file whose bytes are this stored blob (none
        for a blob uploaded but not registered); ``BlobUnknownError`` if it is not stored."""
        return self.reading.names_with_blob(digest)

    def open_blob(
        self, digest: str | Digest, *, start: int | None = None, end: int | None = None
    ) -> BinaryIO:
        """A stored blob's bytes: whole, verified as read (``IntegrityError``); or the
        inclusive byte range ``start``..``end``, unverified (a part has no digest)."""
        return self.reading.open_blob(digest, start=start, end=end)

    def tag(
        self,
        reference: Reference,
        tag: str,
        *,
        current: str | Literal[False] | None = False,
        actor: str | None = None,
    ) -> Package:
        """Point ``tag`` of the package's name at this package (``latest`` moves itself).

        ``current`` makes the move conditional, checked under the chain lock: ``None``
        means the tag must not exist yet, a package digest (``blake3:<hex>``) that the tag
        must point at a package with that digest; ``PreconditionFailedError`` otherwise.
        """
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
            if current is not False:
                found = queries.load_package(conn, previous).content_address if previous else None
                if found != current:
                    raise PreconditionFailedError(
                        f"tag {tag!r} of {package.name!r} points at {found or 'nothing'}, "
                        f"not at {current or 'nothing'}"
                    )
            return [
                ev.TagMoved(
                    package_id=str(package.id),
                    name=package.name,
                    tag=tag,
                    previous_package_id=str(previous) if previous else None,
                )
            ]

        return self.ledger.record_on(reference, decide, actor=actor)[0]

    def untag(
        self,
        name: str,
        tag: str,
        *,
        current: str | None = None,
        actor: str | None = None,
    ) -> Package:
        """Remove ``tag`` of package ``name``; returns the package it pointed at.

        ``current`` (a package digest) makes it conditional: the tag must point at a
        package with that digest (``PreconditionFailedError``, checked under the lock).
        """
        validate_tag(tag)
        if tag == "latest":
            raise InvalidInputError("tag 'latest' always follows the newest version")

        def decide(conn: sa.Connection, package: Package) -> list[ev.Event]:
            if current is not None and package.content_address != current:
                raise PreconditionFailedError(
                    f"tag {tag!r} of {name!r} points at {package.content_address}, not at {current}"
                )
            return [ev.TagRemoved(package_id=str(package.id), name=name, tag=tag)]

        return self.ledger.record_on(f"{name}:{tag}", decide, actor=actor)[0]

    def register_schema(
        self, kind: str, schema: Mapping[str, Any], *, actor: str | None = None
    ) -> None:
        """Require metadata of ``kind`` to satisfy the JSON Schema ``schema`` from now on."""
        validate_kind(kind)
        checked = check_schema(kind, normalize_json_object(schema, f"schema for {kind!r}"))
        event = ev.MetadataSchemaRegistered(kind=kind, json_schema=checked)
        self.ledger.record(lambda _conn, _now: [event], actor=actor)

    # ------------------------------------------------------------------ reading
    def describe(self, reference: Reference) -> Package:
        """The package a reference selects, without recording a retrieval."""
        return self.reading.describe(reference)

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
        package = self.reading.readable(self.describe(reference))
        if record:
            self.record_retrieval(package, actor=actor, purpose=purpose, run_id=run_id)
        return package

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
        self.reading.record_retrieval(
            package, path=path, actor=actor, purpose=purpose, run_id=run_id
        )

    def open_file(
        self,
        reference: Reference,
        path: str | None = None,
        *,
        record: bool = True,
        actor: str | None = None,
        purpose: str | None = None,
        run_id: str | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> BinaryIO:
        """A stream of one file's bytes, verified as it is read (``IntegrityError``); with
        ``start``/``end``, the inclusive byte range, unverified.

        A ``Package`` passed as the reference is used as given, without reloading it.
        """
        package = self.reading.readable(reference)
        entry = package.file(path)
        if start is None and end is None:
            stream = self.reading.open_entry(package, entry)
        else:
            stream = self.reading.open_entry_range(package, entry, start, end)
        if record:
            self.record_retrieval(
                package, path=entry.path, actor=actor, purpose=purpose, run_id=run_id
            )
        return stream

    def copy_file(
        self, reference: Reference, path: str | None, target_fd: int, offset: int
    ) -> None:
        """Write one file's verified bytes into the open file ``target_fd`` from ``offset``
        on (inside the kernel where it can), recording no retrieval; ``IntegrityError`` if
        the stored bytes are not the registered ones."""
        package = self.reading.readable(reference)
        self.reading.copy_entry(package, package.file(path), target_fd, offset)

    def uri_of(self, reference: Reference, path: str | None = None) -> str:
        """Where the bytes are read from: the blob URI of file ``path`` (or of the only
        file), else the URL of the package's tier. A ``Package`` is used as given."""
        package = reference if isinstance(reference, Package) else self.describe(reference)
        backend = self.tiers.for_reading(package)
        if path is None and len(package.files) != 1:
            return backend.url
        return backend.uri(package.file(path).blob.blake3)

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
        package = self.reading.readable(reference)
        self.reading.export(package, destination, force=force, progress=progress)
        if record:
            self.record_retrieval(package, actor=actor, purpose=purpose, run_id=run_id)
        return package

    def list_packages(
        self, where: queries.PackageFilter | None = None, **filters: Any
    ) -> list[Package]:
        """Packages matching the filters (see ``PackageFilter``), by name and version."""
        return self.reading.list_packages(where or queries.PackageFilter(**filters))

    def lineage(
        self, reference: Reference, *, downstream: bool = False, depth: int | None = None
    ) -> list[tuple[queries.LineageEdge, Package]]:
        """Upstream inputs (or downstream consumers) of a package, with the related package."""
        if depth is not None and depth < 1:
            raise InvalidInputError(f"lineage depth must be at least 1, got {depth}")
        return self.reading.lineage(reference, downstream=downstream, depth=depth)

    def schemas(self) -> dict[str, dict[str, Any]]:
        """The registered metadata schemas by kind."""
        with self.ledger.reading() as conn:
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
        return commands.set_retention(
            self.ledger, reference, retention_class=retention_class, expires_at=expires_at,
            never_expires=never_expires, override=override, reason=reason, actor=actor,
        )  # fmt: skip

    def place_hold(
        self, reference: Reference, *, reason: str, kind: str = "legal", actor: str | None = None
    ) -> Hold:
        """Place a hold: the package never expires and keeps its bytes until released."""
        return commands.place_hold(
            self.ledger, self.tiers, reference, reason=reason, kind=kind, hold_id=self.new_id(),
            actor=actor,
        )  # fmt: skip

    def release_hold(
        self,
        reference: Reference,
        hold_id: uuid.UUID | str,
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Package:
        """Release one hold of a package; ``NotFoundError`` if it has no such hold."""
        return commands.release_hold(self.ledger, reference, hold_id, reason=reason, actor=actor)

    def set_keep_rule(
        self,
        selector: str,
        keep_latest: int = 1,
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> KeepRule:
        """Keep the newest ``keep_latest`` live versions of each name ``selector`` matches
        (``class:<retention class>`` or ``prefix:<name>``) whatever their expiry: the
        current version of a name never expires while the rule stands. Setting the same
        rule again records nothing; lowering its count needs a ``reason``."""
        return keep.set_rule(self.ledger, selector, keep_latest, reason=reason, actor=actor)

    def remove_keep_rule(
        self, selector: str, *, reason: str | None = None, actor: str | None = None
    ) -> None:
        """Remove keep rule ``selector`` (needs a ``reason``: its packages may then expire)."""
        keep.remove_rule(self.ledger, selector, reason=reason, actor=actor)

    def keep_rules(self) -> list[KeepRule]:
        """The keep rules in force, by selector."""
        with self.ledger.reading() as conn:
            return keep.load_rules(conn)

    def plan_sweep(
        self,
        now: dt.datetime | None = None,
        *,
        grace: dt.timedelta | None = None,
        limit: int | None = None,
        batch_size: int = sweeping.BATCH_SIZE,
    ) -> sweeping.SweepPlan:
        """Exactly what a sweep at ``now`` does (``sweep(plan=...)`` carries it out)."""
        now = None if now is None else check_time(now, "sweep time")
        if limit is not None and limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}")
        return sweeping.plan_sweep(
            self.ledger, self.tiers, now or self.clock(), batch_size=batch_size, limit=limit,
            grace=self.gc_grace if grace is None else grace,
        )  # fmt: skip

    def sweep(
        self,
        now: dt.datetime | None = None,
        *,
        plan: sweeping.SweepPlan | None = None,
        dry_run: bool = False,
        grace: dt.timedelta | None = None,
        limit: int | None = None,
        batch_size: int = sweeping.BATCH_SIZE,
        actor: str | None = None,
        progress: sweeping.Progress | None = None,
    ) -> sweeping.SweepResult:
        """Expire due packages, move tiers by class rules, then collect unneeded blobs and
        expired upload sessions.

        With ``dry_run`` nothing changes and the result's ``plan`` is exactly what a
        sweep at the same ``now`` does; a ``plan`` (from ``plan_sweep``) is carried out
        as given. Two sweeps never run at once (``ConflictError``).
        """
        if plan is None:
            plan = self.plan_sweep(now, grace=grace, limit=limit, batch_size=batch_size)
        liveness = sweeping.check_plan(self.ledger, plan)
        if dry_run:
            return sweeping.SweepResult(plan, dry_run=True)
        result = sweeping.execute_sweep(
            self.ledger, self.tiers, plan, liveness, actor=actor, batch_size=batch_size,
            progress=progress,
        )  # fmt: skip
        result.uploads_collected = self.uploads.collect(plan.now)
        if self.log_signer is not None:
            result.checkpoint = self.checkpoint()
        return result

    def plan_tier_moves(
        self,
        tier: str,
        *,
        older_than: dt.timedelta,
        where: queries.PackageFilter | None = None,
        limit: int | None = None,
    ) -> list[tiering.TierMove]:
        """Active packages older than ``older_than`` (matching ``where``) not yet in ``tier``."""
        return tiering.plan_tier_moves(
            self.ledger, tier, older_than=older_than, where=where, limit=limit
        )

    def move_tier(self, reference: Reference, tier: str, *, actor: str | None = None) -> Package:
        """Move a package's bytes to ``tier`` (``hot``, ``cold`` or ``archive``), verified."""
        return tiering.move_tier(self.ledger, self.tiers, reference, tier, actor=actor)

    def restore(self, reference: Reference, *, actor: str | None = None) -> Package:
        """Copy an archived package's bytes back to the hot tier so it can be read."""
        return tiering.restore(self.ledger, self.tiers, reference, actor=actor)

    def explain(self, reference: Reference, *, now: dt.datetime | None = None) -> Explanation:
        """Why a package is kept or when it goes: class, expiry, holds, shared blobs."""
        with self.ledger.reading() as conn:
            return explain(conn, queries.load_package(conn, reference), now or self.clock())

    # ------------------------------------------------------------------ integrity
    def verify(
        self,
        reference: Reference | None = None,
        *,
        where: queries.PackageFilter | None = None,
        references: Sequence[Reference] | None = None,
        rehash: bool = True,
        repair: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyResult:
        """Check the stored bytes of one package, of the packages ``where`` selects, of the
        active ones among ``references`` (the result lists expired and unknown ones), or of
        every active package; each blob once, in every tier that holds it.

        With ``rehash`` each blob's size and BLAKE3 are re-checked; without, only its presence is
        checked. Missing and corrupt blobs are reported, never raised. With ``repair``
        each is written again from an intact copy in another tier, if one exists (a put
        of the same bytes repairs a blob too); those are listed in ``repaired``.
        """
        return self.integrity.verify(
            reference, where=where, references=references, rehash=rehash, repair=repair,
            progress=progress,
        )  # fmt: skip

    def verify_log(self) -> VerifyReport:
        """Walk the event log's hash chain, its leaf hashes and cached subtree heads, and
        check it against the latest stored checkpoint of each origin
        (``EventLogTamperedError`` on the first break)."""
        with self.ledger.reading(snapshot=True) as conn:
            report = self.log.verify(conn)
            checked = transparency.check_checkpoints(conn, report.head_sequence)
            return dataclasses.replace(report, checkpoints=checked)

    # ------------------------------------------------------------------ transparency
    def checkpoint(self, signer: NoteSigner | None = None) -> SignedCheckpoint:
        """Sign and store a checkpoint of the whole log (or return the latest, if the log
        has not grown); refused with ``IntegrityError`` if the log does not extend the
        latest checkpoint of the same origin."""
        signer = signer or self.log_signer
        if signer is None:
            raise ConfigurationError(
                "no log key: set ARTIFACTSTORE_LOG_KEY and ARTIFACTSTORE_LOG_ORIGIN "
                "(`artifactstore keys generate` writes a key)"
            )
        return transparency.issue_checkpoint(self.ledger, signer)

    def latest_checkpoint(self, origin: str | None = None) -> SignedCheckpoint:
        """The latest stored checkpoint (of ``origin``; by default the configured one)."""
        if origin is None and self.log_signer is not None:
            origin = self.log_signer.name
        found = transparency.latest_checkpoint(self.ledger, origin)
        if found is None:
            raise NotFoundError(
                "no checkpoint has been issued" + (f" for log {origin!r}" if origin else "")
                + ": run `artifactstore log checkpoint`"
            )  # fmt: skip
        return found

    def prove(self, sequence: int) -> TlogProof:
        """The offline proof that event ``sequence`` is in the log: against the latest
        checkpoint, or a new one when the latest does not cover the event yet (and a log
        key is configured)."""
        checkpoint = transparency.latest_checkpoint(
            self.ledger, self.log_signer.name if self.log_signer else None
        )
        if self.log_signer is not None and (
            checkpoint is None or checkpoint.checkpoint.size < sequence
        ):
            checkpoint = self.checkpoint()
        if checkpoint is None:
            raise NotFoundError("no checkpoint has been issued: run `artifactstore log checkpoint`")
        return transparency.inclusion_proof(self.ledger, sequence, checkpoint)

    def prove_package(self, reference: Reference) -> TlogProof:
        """``prove`` for the event that registered the package ``reference`` names."""
        with self.ledger.reading() as conn:
            package_id = queries.resolve(conn, reference)
            sequence = transparency.registration_sequence(conn, package_id)
        return self.prove(sequence)

    def event_payload(self, sequence: int) -> bytes:
        """The CBOR payload of event ``sequence``, as stored (checked against its digest)."""
        with self.ledger.reading() as conn:
            return transparency.event_payload(conn, sequence)

    def attestation_envelopes(self, reference: Reference) -> list[bytes]:
        """The DSSE envelopes of a package's attestations (one per line of their files)."""
        envelopes = []
        for attestation in self.attestations(reference):
            for entry in attestation.files:
                data = self.read_bytes(attestation, entry.path, record=False)
                envelopes += [line for line in data.split(b"\n") if line.strip()]
        return envelopes

    def export_evidence(
        self,
        reference: Reference,
        target: str | Path,
        *,
        signer: Signer | None = None,
        actor: str | None = None,
    ) -> Path:
        """Write the offline evidence bundle of a package to ``target`` (a new directory,
        or a ``.tar`` file): its files, manifest, signed statements (its attestations, and
        one signed now by ``signer``), the proof of its registration in the log and a
        checkpoint (``evidence.bundle``); recorded as a retrieval by ``actor``."""
        # Signing and bundles import securesystemslib (and boto3): only when used.
        from artifactstore_core.evidence.bundle import export_bundle
        from artifactstore_core.evidence.statements import statement_for

        statement = statement_for(self, reference) if signer is not None else None
        return export_bundle(
            self, reference, Path(target), signer=signer, statement=statement,
            log_verifier_key=self.log_signer.verifier_key if self.log_signer else None,
            actor=actor,
        )  # fmt: skip

    def prove_consistency(self, old_note: str, verifier: NoteVerifier) -> transparency.Consistency:
        """Check and prove that the signed checkpoint ``old_note`` is a prefix of the
        latest checkpoint of its log (``IntegrityError`` naming what changed if not). With
        a log key configured, a checkpoint of the log as it is now is signed first."""
        if self.log_signer is not None and self.log_signer.name == verifier.name:
            self.checkpoint()
        return transparency.consistency(self.ledger, old_note, verifier)

    def prove_consistency_from(self, old_size: int) -> transparency.Consistency:
        """The proof that the log's first ``old_size`` events are a prefix of its latest
        checkpoint (of the configured log), for a verifier holding a checkpoint of that size."""
        origin = self.log_signer.name if self.log_signer is not None else None
        return transparency.consistency_from(self.ledger, old_size, origin)

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
        with self.ledger.reading() as conn:
            found = self.log.read(
                conn, since=since, subject_kind=subject_kind, subject_id=subject_id
            )
            return list(itertools.islice(found, limit))
