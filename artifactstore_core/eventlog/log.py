"""Append events in the caller's transaction, read them back, verify the chain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from artifactstore_core.compiled_sql import WriteBatch, insert_all
from artifactstore_core.domain import merkle
from artifactstore_core.domain.events import EVENT_TYPES, Event, MalformedPayloadError
from artifactstore_core.domain.limits import (
    MAX_PAYLOAD_DEPTH,
    check_json_value,
    check_optional_text,
    check_text,
)
from artifactstore_core.errors import EventLogTamperedError, IntegrityError
from artifactstore_core.eventlog import codec
from artifactstore_core.eventlog.chain import EventHeader, chain_input, input_digest
from artifactstore_core.eventlog.tree import TILE, LogTree, check_subtrees
from artifactstore_core.schema import events as events_table

# Key of the transaction-scoped advisory lock that serialises the chain head on PostgreSQL.
_CHAIN_LOCK_KEY = 0x4172_7469_6661_6374  # "Artifact"
BATCH_SIZE = 5_000
_HEAD = (
    sa.select(events_table.c.sequence, events_table.c.chain_digest)
    .order_by(events_table.c.sequence.desc())
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its envelope and the domain event."""

    sequence: int
    created_at: dt.datetime
    actor: str
    event: Event
    payload_digest: str
    chain_digest: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of a chain verification."""

    checked: int
    head_sequence: int
    head_digest: str | None
    #: How many origins' latest checkpoints the log was checked against.
    checkpoints: int = 0


class EventLog:
    """The append-only log in table ``events``; never updates or deletes a row."""

    def append(
        self,
        conn: sa.Connection,
        new_events: Sequence[Event],
        *,
        actor: str,
        at: dt.datetime,
        writes: WriteBatch | None = None,
    ) -> list[RecordedEvent]:
        """Append ``new_events`` in order, within the caller's transaction, which holds
        the chain lock (``lock_head``; ``Ledger.record`` takes it once per commit).

        With ``writes`` the rows are queued there, for the caller to run with its own
        writes; otherwise they are written before this returns."""
        if not new_events:
            return []
        head = conn.execute(_HEAD).first()
        sequence, previous = (head.sequence, head.chain_digest) if head else (0, None)
        rows: list[dict[str, Any]] = []
        recorded: list[RecordedEvent] = []
        check_text(actor, "actor")
        for event in new_events:
            sequence += 1
            values = event.to_payload()
            # The backstop of the bounds checked at the door: nothing unreadable is appended.
            check_json_value(values, event.event_type, max_depth=MAX_PAYLOAD_DEPTH)
            check_text(event.subject_id, f"{event.event_type} subject")
            payload = codec.encode(values)
            row: dict[str, Any] = {
                "sequence": sequence,
                "created_at": at,
                "event_type": event.event_type,
                "schema_version": event.schema_version,
                "subject_kind": event.subject_kind,
                "subject_id": event.subject_id,
                "actor": actor,
                "payload": payload,
                "payload_digest": codec.payload_digest(payload),
                "previous_digest": previous,
            }
            data = chain_input(previous, EventHeader.from_row(row))
            digest = row["chain_digest"] = input_digest(data)
            row["leaf_hash"] = merkle.leaf_hash(data)
            rows.append(row)
            recorded.append(
                RecordedEvent(sequence, at, actor, event, row["payload_digest"], digest)
            )
            previous = digest
        batch = WriteBatch() if writes is None else writes
        batch.add(insert_all(events_table, conn.dialect), rows)
        LogTree(conn).extend(rows[0]["sequence"] - 1, [row["leaf_hash"] for row in rows], batch)
        if writes is None:
            batch.run(conn)
        return recorded

    @staticmethod
    def lock_head(conn: sa.Connection) -> None:
        """Take the chain lock for the rest of ``conn``'s write transaction."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CHAIN_LOCK_KEY)))
        # SQLite: every write transaction already began with BEGIN IMMEDIATE.

    def read(
        self,
        conn: sa.Connection,
        *,
        since: int = 0,
        until: int | None = None,
        subject_kind: str | None = None,
        subject_id: str | None = None,
        event_types: Sequence[str] | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> Iterator[RecordedEvent]:
        """Events with ``sequence > since`` in order, fetched in batches (keyset pagination).

        Payload digests are checked as events are decoded.
        """
        check_optional_text(subject_kind, "subject kind")
        check_optional_text(subject_id, "subject id")
        table = events_table
        columns = [table.c[name] for name in _DECODED_COLUMNS]
        last = since
        while True:
            query = sa.select(*columns).where(table.c.sequence > last)
            if until is not None:
                query = query.where(table.c.sequence <= until)
            if subject_kind is not None:
                query = query.where(table.c.subject_kind == subject_kind)
            if subject_id is not None:
                query = query.where(table.c.subject_id == subject_id)
            if event_types:
                query = query.where(table.c.event_type.in_(list(event_types)))
            rows = conn.execute(query.order_by(table.c.sequence).limit(batch_size)).all()
            for row in rows:
                yield _decode(*row)
            if len(rows) < batch_size:
                return
            last = rows[-1][0]

    def head(self, conn: sa.Connection) -> int:
        """The highest sequence number, 0 for an empty log."""
        return int(conn.execute(sa.select(sa.func.max(events_table.c.sequence))).scalar() or 0)

    def verify(self, conn: sa.Connection, *, batch_size: int = BATCH_SIZE) -> VerifyReport:
        """Walk the whole chain; ``EventLogTamperedError`` names the first bad sequence."""
        table = events_table
        expected_sequence, previous, checked = 1, None, 0
        last, tile, tile_heads = 0, [], []
        while True:
            rows = (
                conn.execute(
                    sa.select(table)
                    .where(table.c.sequence > last)
                    .order_by(table.c.sequence)
                    .limit(batch_size)
                )
                .mappings()
                .all()
            )
            for row in rows:
                tile.append(_verify_row(row, expected_sequence, previous))
                if len(tile) == TILE:
                    tile_heads.append(merkle.root(tile))
                    tile = []
                previous = row["chain_digest"]
                expected_sequence = row["sequence"] + 1
                checked += 1
            if len(rows) < batch_size:
                check_subtrees(conn, tile_heads)
                return VerifyReport(checked, expected_sequence - 1, previous)
            last = rows[-1]["sequence"]


def _verify_row(row: sa.RowMapping, expected_sequence: int, previous: str | None) -> bytes:
    """The row's leaf hash once its chain links and digests check out."""
    sequence = row["sequence"]
    if sequence != expected_sequence:
        raise EventLogTamperedError(
            expected_sequence,
            f"event {expected_sequence} is missing (next present is {sequence})",
        )
    if row["previous_digest"] != previous:
        raise EventLogTamperedError(sequence, "previous digest does not match the chain")
    if codec.payload_digest(row["payload"]) != row["payload_digest"]:
        raise EventLogTamperedError(sequence, "payload does not match its payload digest")
    data = chain_input(previous, EventHeader.from_row(row))
    if input_digest(data) != row["chain_digest"]:
        raise EventLogTamperedError(sequence, "header fields do not match the chain digest")
    leaf = merkle.leaf_hash(data)
    if bytes(row["leaf_hash"]) != leaf:
        raise EventLogTamperedError(sequence, "leaf hash does not match the chain input")
    return leaf


_DECODED_COLUMNS = (
    "sequence", "created_at", "event_type", "actor", "payload", "payload_digest", "chain_digest"
)  # fmt: skip


def _decode(
    sequence: int,
    created_at: dt.datetime,
    event_type: str,
    actor: str,
    payload: bytes,
    payload_digest: str,
    chain: str,
) -> RecordedEvent:
    if codec.payload_digest(payload) != payload_digest:
        raise EventLogTamperedError(sequence, "payload does not match its payload digest")
    event_class = EVENT_TYPES.get(event_type)
    if event_class is None:
        raise IntegrityError(f"event {sequence} has unknown type {event_type!r}")
    try:
        event = event_class.from_payload(codec.decode(payload, sequence=sequence))
    except MalformedPayloadError as exc:
        raise IntegrityError(
            f"event {sequence} ({event_type}) has a malformed payload: {exc}"
        ) from exc
    return RecordedEvent(sequence, created_at, actor, event, payload_digest, chain)
