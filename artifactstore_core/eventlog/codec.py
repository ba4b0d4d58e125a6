"""Canonical CBOR (RFC 8949 §4.2): the same payload always gives the same bytes."""

from __future__ import annotations

from typing import Any

import blake3
import cbor2

from artifactstore_core.errors import IntegrityError


def encode(payload: dict[str, Any]) -> bytes:
    """Deterministic CBOR bytes of a payload of plain values."""
    return cbor2.dumps(payload, canonical=True)


def decode(data: bytes, *, sequence: int | None = None) -> dict[str, Any]:
    """The payload encoded in ``data``; corrupt bytes raise ``IntegrityError``."""
    try:
        value = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        where = f" at sequence {sequence}" if sequence is not None else ""
        raise IntegrityError(f"event payload{where} is not valid CBOR: {exc}") from exc
    if not isinstance(value, dict):
        raise IntegrityError(f"event payload at sequence {sequence} is not a map")
    if not all(type(key) is str for key in value):
        raise IntegrityError(f"event payload at sequence {sequence} has a non-text key")
    return value


def payload_digest(data: bytes) -> str:
    """``blake3:<hex>`` of the payload bytes."""
    return "blake3:" + blake3.blake3(data).hexdigest()
