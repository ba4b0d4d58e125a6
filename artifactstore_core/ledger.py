"""The unit of work: read transactions, and recording events under the chain lock.

Every change to the registry is one ``Ledger.record(decide)``: lock the chain head, let
``decide`` look at the views and return events, append them to the log, project them,
commit (ADR-0002). ``decide`` runs under the lock, so what it reads stays true until the
commit; it may also delete bytes there, as the sweep does (ADR-0003), never write views.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.compiled_sql import WriteBatch
from artifactstore_core.config import READ_ONLY
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.references import Reference
from artifactstore_core.errors import ConflictError
from artifactstore_core.eventlog import EventLog, RecordedEvent
from artifactstore_core.projections import ProjectionWriter, project
from artifactstore_core.schema import storage_locations
from artifactstore_core.storage import HEAL_ATTEMPTS, BlobsGone, BlobStore, StoredBlob
from artifactstore_core.storage.presence import missing_from

Clock = Callable[[], dt.datetime]
Decide = Callable[[sa.Connection, dt.datetime], Sequence[ev.Event]]
T = TypeVar("T")

_KNOWN_LOCATIONS = sa.select(storage_locations.c.content_address, storage_locations.c.uri).where(
    storage_locations.c.backend == sa.bindparam("backend"),
    storage_locations.c.content_address.in_(sa.bindparam("addresses", expanding=True)),
)


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class Ledger:
    """Transactions over one registry database: ``reading`` and ``record``.

    ``clock`` stamps recorded events; ``actor`` is recorded when a command names none.
    """

    def __init__(
        self, engine: sa.Engine, *, clock: Clock = utcnow, actor: str = "artifactstore"
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.actor = actor
        self.log = EventLog()

    @contextlib.contextmanager
    def reading(self, *, snapshot: bool = False) -> Iterator[sa.Connection]:
        """A read transaction; with ``snapshot`` every statement sees the same state (SQLite
        read transactions always do; PostgreSQL then runs at REPEATABLE READ)."""
        options: dict[str, Any] = {READ_ONLY: True}
        if snapshot and self.engine.dialect.name == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def locked(self) -> Iterator[sa.Connection]:
        """A write transaction holding the chain lock: appends and other lock holders (the
        sweep lease, class definitions) wait for it to commit or roll back."""
        with self.engine.begin() as conn:
            EventLog.lock_head(conn)
            yield conn

    def record(
        self,
        decide: Decide,
        *,
        actor: str | None = None,
    ) -> list[RecordedEvent]:
        """One transaction: lock the chain head, decide events, append, project, commit."""
        return self.record_then(decide, lambda _conn, recorded: recorded, actor=actor)

    def record_then(
        self,
        decide: Decide,
        then: Callable[[sa.Connection, list[RecordedEvent]], T],
        *,
        actor: str | None = None,
    ) -> T:
        """``record``, returning what ``then`` reads in the same transaction after the
        events are projected: the exact state the commit makes visible."""
        with self.locked() as conn:
            now = self.clock()
            # The events and their projection are written together (one round trip on
            # PostgreSQL): the lock is held for as few waits on the server as possible.
            writes = WriteBatch()
            recorded = self.log.append(
                conn, decide(conn, now), actor=actor or self.actor, at=now, writes=writes
            )
            writer = ProjectionWriter(conn)
            for item in recorded:
                writer.add(project(item))
            writer.flush(writes)
            writes.run(conn)
            return then(conn, recorded)

    def record_stored(
        self,
        backend: BlobStore,
        write: Callable[[Collection[str]], list[StoredBlob]],
        decide: Callable[[sa.Connection, dt.datetime, list[StoredBlob]], Sequence[ev.Event]],
        then: Callable[[sa.Connection, list[RecordedEvent]], T],
        *,
        actor: str | None = None,
        what: str,
    ) -> T:
        """``record_then`` of events about blobs ``write`` stores in ``backend``, once each
        is confirmed there under the chain lock (ADR-0005).

        ``write(())`` stores every blob; ``write(addresses)`` stores again those a sweep
        deleted between the write and the commit, and returns the whole list. After
        ``HEAL_ATTEMPTS`` such rounds, ``ConflictError`` says nothing of ``what`` was recorded.
        """
        stored = write(())
        for _attempt in range(HEAL_ATTEMPTS):

            def confirmed(
                conn: sa.Connection, now: dt.datetime, stored: list[StoredBlob] = stored
            ) -> Sequence[ev.Event]:
                gone = missing_from(backend, (blob.hash for blob in stored))
                if gone:
                    raise BlobsGone(gone)
                return decide(conn, now, stored)

            try:
                return self.record_then(confirmed, then, actor=actor)
            except BlobsGone as exc:
                stored = write(exc.addresses)
        raise ConflictError(
            f"the bytes of {what} in {backend.url} were deleted {HEAL_ATTEMPTS} times before "
            "they could be recorded (is a sweep with grace 0 running in a loop?); nothing "
            "was recorded"
        )

    def record_on(
        self,
        reference: Reference,
        decide: Callable[[sa.Connection, Package], Sequence[ev.Event]],
        *,
        actor: str | None = None,
    ) -> tuple[Package, list[RecordedEvent]]:
        """``record`` for a command on one package, loaded under the lock; returns the
        package as the commit leaves it, and the recorded events."""
        loaded: list[Package] = []

        def run(conn: sa.Connection, _now: dt.datetime) -> Sequence[ev.Event]:
            loaded.append(queries.load_package(conn, reference))
            return decide(conn, loaded[0])

        def reload(
            conn: sa.Connection, recorded: list[RecordedEvent]
        ) -> tuple[Package, list[RecordedEvent]]:
            return queries.load_packages(conn, [loaded[0].id])[0], recorded

        return self.record_then(run, reload, actor=actor)


def blob_stored_events(
    conn: sa.Connection, stored: Sequence[StoredBlob], tier: str
) -> list[ev.Event]:
    """``BlobStored`` for blobs the registry does not yet record at their URI in ``tier``
    (a location at another URI, from before the tier's URL moved, is replaced: reads look
    where the tier's backend is now)."""
    unique = {blob.hash.content_address: blob for blob in stored}
    known: set[str] = set()
    addresses = list(unique)
    for start in range(0, len(addresses), 500):
        params = {"backend": tier, "addresses": addresses[start : start + 500]}
        known.update(
            row.content_address
            for row in conn.execute(_KNOWN_LOCATIONS, params)
            if row.uri == unique[row.content_address].uri
        )
    return [
        ev.BlobStored(
            content_address=address,
            backend=tier,
            digest_sha256=blob.hash.sha256.hex,
            size=blob.hash.size,
            uri=blob.uri,
        )
        for address, blob in unique.items()
        if address not in known
    ]
