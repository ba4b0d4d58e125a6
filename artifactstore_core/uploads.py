"""Upload sessions: one blob sent in chunks, over many requests and server processes.

A session is a row of ``upload_sessions`` (working state, like ``leases``: not an event).
Its chunks are staged in the hot blob backend (``BlobStore.stage_chunk``), so any process
can continue or commit it. A chunk must start where the session stands (``received``);
the row moves forward only by compare-and-set on that offset, so two racing requests
cannot both extend it.

Committing re-reads the staged chunks in order and writes them to the blob's address,
hashing as they stream (hash state cannot move between processes: "mind the gap"), checks
the caller's digests and size, and records ``BlobStored`` under the chain lock (ADR-0005).
The blob can then be registered (``ArtifactStore.register``). Committing again answers
the same blob. Sessions past their expiry, and chunks no session owns, are collected by
the sweep (``Uploads.collect``).
"""

from __future__ import annotations

import datetime as dt
import io
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import sqlalchemy as sa

from artifactstore_core import queries
from artifactstore_core.domain.package import iso
from artifactstore_core.domain.retention import HOT
from artifactstore_core.errors import (
    ConflictError,
    DigestInvalidError,
    InvalidInputError,
    SizeInvalidError,
    UploadRangeError,
    UploadUnknownError,
)
from artifactstore_core.eventlog import RecordedEvent
from artifactstore_core.hashing import BlobHash, Digest, DigestError, HashingWriter, matches
from artifactstore_core.ledger import Ledger, blob_stored_events
from artifactstore_core.schema import upload_sessions
from artifactstore_core.storage import BlobStore, StoredBlob
from artifactstore_core.tiers import Tiers

DEFAULT_TTL = dt.timedelta(hours=24)
"""How long a session may stay open: long enough for a multi-GiB upload on a slow link."""

OPEN, COMMITTED, CANCELLED = "open", "committed", "cancelled"


@dataclass(frozen=True)
class UploadSession:
    """A chunked upload: who opened it, how many bytes arrived, and its blob once committed."""

    id: str
    actor: str
    token_id: str | None
    state: str
    received: int
    content_address: str | None
    created_at: dt.datetime
    expires_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "actor": self.actor,
            "state": self.state,
            "received": self.received,
            "content_address": self.content_address,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
        }


def parse_digests(digests: Iterable[str | Digest]) -> list[Digest]:
    """The caller's digests of a blob (``blake3:<hex>``, ``sha256:<hex>``), one per algorithm."""
    parsed: dict[str, Digest] = {}
    for value in digests:
        try:
            digest = value if isinstance(value, Digest) else Digest.parse(value)
        except DigestError as exc:
            raise InvalidInputError(f"invalid digest {value!r:.100}: {exc}") from exc
        if parsed.get(digest.algorithm, digest) != digest:
            raise InvalidInputError(f"two different {digest.algorithm} digests given")
        parsed[digest.algorithm] = digest
    return list(parsed.values())


def check_blob(blob: BlobHash, expected: Sequence[Digest], size: int | None) -> None:
    """``DigestInvalidError``/``SizeInvalidError`` unless ``blob`` is what the caller said."""
    if size is not None and blob.size != size:
        raise SizeInvalidError(size, blob.size)
    for digest in expected:
        if not matches(digest, blob):
            actual = blob.blake3 if digest.algorithm == "blake3" else blob.sha256
            raise DigestInvalidError(str(digest), str(actual))


class Uploads:
    """Open, extend, commit and collect upload sessions (see the module docstring)."""

    def __init__(self, ledger: Ledger, tiers: Tiers, *, ttl: dt.timedelta = DEFAULT_TTL) -> None:
        self.ledger = ledger
        self.tiers = tiers
        self.ttl = ttl
        self._hashes = _RunningHashes()

    @property
    def _hot(self) -> BlobStore:
        return self.tiers.hot

    # ------------------------------------------------------------------ sessions
    def open(self, *, actor: str, token_id: str | None = None) -> UploadSession:
        """A new empty session, open until ``ttl`` from now."""
        now = self.ledger.clock()
        row = {
            "upload_id": uuid.uuid4(),
            "actor": actor,
            "token_id": token_id,
            "state": OPEN,
            "received": 0,
            "chunks": [],
            "content_address": None,
            "created_at": now,
            "updated_at": now,
            "expires_at": now + self.ttl,
        }
        with self.ledger.engine.begin() as conn:
            conn.execute(sa.insert(upload_sessions), row)
        return _session(row)

    def status(self, upload_id: str) -> UploadSession:
        """The session (open or committed); ``UploadUnknownError`` if none is usable."""
        return _session(self._row(upload_id, states=(OPEN, COMMITTED)))

    def append(
        self, upload_id: str, start: int, stream: BinaryIO, *, length: int | None = None
    ) -> UploadSession:
        """Stage the bytes of ``stream`` as the next chunk, which must begin at ``start``
        (``UploadRangeError`` names the resume offset otherwise). With ``length``, a stream
        that gives another number of bytes (a cut connection) raises ``SizeInvalidError``
        and leaves the session where it was."""
        upload = self._row(upload_id, states=(OPEN,))["upload_id"].hex
        with self._hot.staging_lock(upload):
            row = self._row(upload_id, states=(OPEN,))
            if start != row["received"]:
                raise UploadRangeError(upload_id, start, row["received"])
            hasher = self._hashes.take(upload, start)
            hashed = cast(BinaryIO, _Hashed(stream, hasher))
            name, count = self._hot.stage_chunk(upload, start, hashed)
            if length is not None and count != length:
                raise SizeInvalidError(length, count)
            if count == 0:
                return _session(row)
            changes = {
                "received": start + count,
                "chunks": [*row["chunks"], [start, name, count]],
                "updated_at": self.ledger.clock(),
            }
            with self.ledger.engine.begin() as conn:
                moved = conn.execute(
                    sa.update(upload_sessions)
                    .where(
                        upload_sessions.c.upload_id == row["upload_id"],
                        upload_sessions.c.state == OPEN,
                        upload_sessions.c.received == start,
                    )
                    .values(changes)
                ).rowcount
            if moved == 1:
                self._hashes.keep(upload, start + count, hasher)
        if moved != 1:  # another request extended (or ended) the session meanwhile
            current = self._row(upload_id, states=(OPEN,))
            raise UploadRangeError(upload_id, start, current["received"])
        return _session({**row, **changes})

    def commit(
        self,
        upload_id: str,
        *,
        digests: Iterable[str | Digest] = (),
        size: int | None = None,
        last: BinaryIO | None = None,
        actor: str | None = None,
    ) -> BlobHash:
        """Store the staged bytes (and ``last``, a final chunk) as one blob and record it.

        The blob must match every digest given and ``size``, else ``DigestInvalidError`` or
        ``SizeInvalidError`` and the session is cancelled, its chunks removed. A committed
        session answers its blob again (the same digests must be given, if any).
        """
        expected = parse_digests(digests)
        row = self._row(upload_id, states=(OPEN, COMMITTED))
        if row["state"] == OPEN and last is not None:
            self.append(upload_id, row["received"], last)
            row = self._row(upload_id, states=(OPEN, COMMITTED))
        if row["state"] == COMMITTED:
            blob = self._stored(row["content_address"])
            check_blob(blob, expected, size)
            return blob
        try:
            if size is not None and row["received"] != size:
                raise SizeInvalidError(size, row["received"])
            with self._hot.staging_lock(row["upload_id"].hex):
                blob = self._record(self._staged_writer(row), expected, size, row, actor)
        except (DigestInvalidError, SizeInvalidError):
            self._end(row["upload_id"])
            raise
        self._hot.drop_upload(row["upload_id"].hex)
        return blob

    def put_blob(
        self,
        stream: BinaryIO,
        *,
        digests: Iterable[str | Digest] = (),
        size: int | None = None,
        actor: str | None = None,
    ) -> BlobHash:
        """Store the bytes of ``stream`` as one blob in a single call (a monolithic upload)."""
        expected = parse_digests(digests)
        streams = iter([stream])

        def write() -> StoredBlob:
            again = next(streams, None)
            if again is None:
                raise ConflictError(
                    "the uploaded blob was deleted before it could be recorded, and its "
                    "bytes cannot be read again; nothing was recorded, upload it again"
                )
            return self._hot.write(again)

        return self._record(write, expected, size, None, actor)

    def cancel(self, upload_id: str) -> None:
        """End an open session and remove its chunks (``UploadUnknownError`` if none)."""
        row = self._row(upload_id, states=(OPEN,))
        self._end(row["upload_id"])

    def cancel_for_token(self, token_id: str) -> int:
        """End every open session opened with access token ``token_id`` (it was revoked)."""
        with self.ledger.engine.begin() as conn:
            ids = list(
                conn.execute(
                    sa.select(upload_sessions.c.upload_id).where(
                        upload_sessions.c.token_id == token_id, upload_sessions.c.state == OPEN
                    )
                ).scalars()
            )
        for upload in ids:
            self._end(upload)
        return len(ids)

    def collect(self, now: dt.datetime | None = None) -> int:
        """Remove sessions past their expiry and their chunks, and chunks staged by no
        session for longer than ``ttl``; how many sessions or strays were removed."""
        now = now or self.ledger.clock()
        with self.ledger.engine.begin() as conn:
            expired = list(
                conn.execute(
                    sa.delete(upload_sessions)
                    .where(upload_sessions.c.expires_at <= now)
                    .returning(upload_sessions.c.upload_id)
                ).scalars()
            )
            live = {u.hex for u in conn.execute(sa.select(upload_sessions.c.upload_id)).scalars()}
        for upload in expired:
            self._hot.drop_upload(upload.hex)
        strays = [
            name
            for name, written in self._hot.iter_uploads()
            if name not in live and written <= now - self.ttl
        ]
        for name in strays:
            self._hot.drop_upload(name)
        return len(expired) + len(strays)

    # ------------------------------------------------------------------ internals
    def _row(self, upload_id: str, *, states: Collection[str]) -> dict[str, Any]:
        try:
            key = uuid.UUID(upload_id)
        except (ValueError, TypeError, AttributeError):
            raise UploadUnknownError(f"no upload session {upload_id!r:.80}") from None
        with self.ledger.reading() as conn:
            row = (
                conn.execute(sa.select(upload_sessions).where(upload_sessions.c.upload_id == key))
                .mappings()
                .first()
            )
        if row is None or row["state"] not in states:
            state = "" if row is None else f" ({row['state']})"
            raise UploadUnknownError(f"no open upload session {upload_id}{state}")
        if row["state"] == OPEN and row["expires_at"] <= self.ledger.clock():
            raise UploadUnknownError(
                f"upload session {upload_id} expired at {row['expires_at'].isoformat()}"
            )
        return dict(row)

    def _staged_writer(self, row: Mapping[str, Any]) -> Callable[[], StoredBlob]:
        """Writes the session's staged parts as one blob (``BlobStore.write_staged``)."""
        upload = row["upload_id"].hex
        parts = [(name, count) for _, name, count in row["chunks"]]
        hasher = self._hashes.take(upload, row["received"])
        known = None if hasher is None else hasher.result()
        return lambda: self._hot.write_staged(upload, parts, known=known)

    def _stored(self, content_address: str) -> BlobHash:
        with self.ledger.reading() as conn:
            blob = queries.stored_blob(conn, Digest.parse(content_address), HOT)
        if blob is None:
            raise UploadUnknownError(
                f"the blob {content_address} this upload stored is no longer stored; "
                "upload it again"
            )
        return blob

    def _end(self, upload: uuid.UUID) -> None:
        with self.ledger.engine.begin() as conn:
            conn.execute(
                sa.update(upload_sessions)
                .where(upload_sessions.c.upload_id == upload, upload_sessions.c.state == OPEN)
                .values(state=CANCELLED, updated_at=self.ledger.clock())
            )
        self._hot.drop_upload(upload.hex)

    def _record(
        self,
        write_blob: Callable[[], StoredBlob],
        expected: Sequence[Digest],
        size: int | None,
        row: Mapping[str, Any] | None,
        actor: str | None,
    ) -> BlobHash:
        """Write the blob with ``write_blob``, check it, record ``BlobStored`` (and the
        session's commit) under the chain lock, healing a blob a sweep deleted meanwhile."""
        hot = self._hot

        def write(_gone: Collection[str]) -> list[StoredBlob]:
            stored = write_blob()
            try:
                check_blob(stored.hash, expected, size)
            except (DigestInvalidError, SizeInvalidError):
                if stored.created:  # bytes nobody asked for: remove them again
                    hot.delete(stored.hash.blake3)
                raise
            return [stored]

        def decide(conn: sa.Connection, now: dt.datetime, stored: list[StoredBlob]) -> list[Any]:
            if row is not None:
                conn.execute(
                    sa.update(upload_sessions)
                    .where(upload_sessions.c.upload_id == row["upload_id"])
                    .values(
                        state=COMMITTED,
                        content_address=stored[0].hash.content_address,
                        updated_at=now,
                    )
                )
            return blob_stored_events(conn, stored, HOT)

        def then(_conn: sa.Connection, _recorded: list[RecordedEvent]) -> None:
            return None

        stored: list[StoredBlob] = []

        def remember(gone: Collection[str]) -> list[StoredBlob]:
            stored[:] = write(gone)
            return stored

        what = f"upload {row['upload_id']}" if row is not None else "this upload"
        self.ledger.record_stored(hot, remember, decide, then, actor=actor, what=what)
        return stored[0].hash


def _session(row: Mapping[str, Any]) -> UploadSession:
    return UploadSession(
        id=str(row["upload_id"]),
        actor=row["actor"],
        token_id=row["token_id"],
        state=row["state"],
        received=row["received"],
        content_address=row["content_address"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


class _Hashed(io.RawIOBase):
    """``stream``, feeding what is read from it to ``hasher`` (if any)."""

    def __init__(self, stream: BinaryIO, hasher: HashingWriter | None) -> None:
        super().__init__()
        self._stream = stream
        self._hasher = hasher

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data and self._hasher is not None:
            self._hasher.write(data)
        return data


class _RunningHashes:
    """The hash of each upload's parts so far, kept by the process that received them:
    a commit in the same process then adopts the staged bytes without reading them again
    (hash state cannot be handed to another process; one that lacks it re-reads)."""

    LIMIT = 1024
    """Sessions remembered at once (the oldest are forgotten first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, tuple[int, HashingWriter]] = {}

    def take(self, upload: str, offset: int) -> HashingWriter | None:
        """The hasher of ``upload`` if it has hashed exactly ``offset`` bytes, a new one at
        offset 0, else ``None`` (the parts before ``offset`` were received elsewhere)."""
        with self._lock:
            state = self._states.pop(upload, None)
        if state is not None and state[0] == offset:
            return state[1]
        return HashingWriter() if offset == 0 else None

    def keep(self, upload: str, offset: int, hasher: HashingWriter | None) -> None:
        if hasher is None:
            return
        with self._lock:
            self._states[upload] = (offset, hasher)
            while len(self._states) > self.LIMIT:
                del self._states[next(iter(self._states))]
