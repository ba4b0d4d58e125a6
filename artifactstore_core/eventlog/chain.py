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


def chain_input(previous: str | None, header: EventHeader) -> bytes:
    """The bytes an event's chain digest covers: the previous chain digest and the
    header's fields, each prefixed with its length (no two headers give the same bytes).
    They are also the event's leaf in the log's Merkle tree (``eventlog.tree``)."""
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
    parts: list[bytes] = []
    for value in fields:
        data = value.encode()
        parts += (len(data).to_bytes(8, "big"), data)
    return b"".join(parts)


def chain_digest(previous: str | None, header: EventHeader) -> str:
    """``blake3:<hex>`` over the previous chain digest and this event's header."""
    return input_digest(chain_input(previous, header))


def input_digest(data: bytes) -> str:
    """The chain digest of a chain input: ``blake3:<hex>``."""
    return "blake3:" + blake3.blake3(data).hexdigest()


CHAIN_INPUT_FIELDS = (
    "previous_digest", "sequence", "created_at", "event_type", "schema_version",
    "subject_kind", "subject_id", "actor", "payload_digest",
)  # fmt: skip
"""The names of the fields of a chain input, in order."""


def split_chain_input(data: bytes) -> dict[str, str]:
    """The fields of a chain input by name, as text; ``ValueError`` if ``data`` is not one."""
    values: list[str] = []
    offset = 0
    while offset < len(data) and len(values) < len(CHAIN_INPUT_FIELDS):
        length = int.from_bytes(data[offset : offset + 8], "big")
        end = offset + 8 + length
        if offset + 8 > len(data) or end > len(data):
            raise ValueError("a field runs past the end of the chain input")
        values.append(data[offset + 8 : end].decode())
        offset = end
    if offset != len(data) or len(values) != len(CHAIN_INPUT_FIELDS):
        raise ValueError(f"a chain input has {len(CHAIN_INPUT_FIELDS)} fields and nothing after")
    return dict(zip(CHAIN_INPUT_FIELDS, values, strict=True))
