"""The hash chain: each event's digest covers the previous one, its header and payload digest.

An edited, deleted, inserted or reordered event breaks the chain at that sequence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import blake3

GENESIS = "blake3:" + "0" * 64


@dataclass(frozen=True, slots=True)
class EventHeader:
    """The envelope fields the chain digest covers."""

    sequence: int
    created_at: dt.datetime
    event_type: str
    schema_version: int
    subject_kind: str
    subject_id: str
    actor: str
    payload_digest: str

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> EventHeader:
        """The header of an ``events`` row, given as a mapping of its columns by name (a
        ``dict`` or SQLAlchemy's ``RowMapping``)."""
        return cls(**{name: row[name] for name in _HEADER_FIELDS})


_HEADER_FIELDS = tuple(field.name for field in fields(EventHeader))


def chain_digest(previous: str | None, header: EventHeader) -> str:
    """``blake3:<hex>`` over the previous chain digest and this event's header."""
    created = header.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    fields = (
        previous or GENESIS,
        str(header.sequence),
        created,
        header.event_type,
        str(header.schema_version),
        header.subject_kind,
        header.subject_id,
        header.actor,
        header.payload_digest,
    )
    # Length-prefixed fields: no two different headers serialise to the same bytes.
    hasher = blake3.blake3()
    for value in fields:
        data = value.encode()
        hasher.update(len(data).to_bytes(8, "big"))
        hasher.update(data)
    return "blake3:" + hasher.hexdigest()
