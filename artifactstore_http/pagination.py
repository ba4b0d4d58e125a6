"""Keyset pagination: opaque cursors and the ``Link: <...>; rel="next"`` header."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from artifactstore_http.problems import Problem

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode_cursor(key: Sequence[Any]) -> str:
    """An opaque cursor for a keyset position (URL-safe base64 of its JSON)."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, shape: Sequence[type]) -> list[Any]:
    """The keyset position of ``cursor``; 400 unless it holds values of ``shape``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, f"invalid cursor {cursor[:60]!r}", code="INVALID_INPUT") from None
    if (
        not isinstance(key, list)
        or len(key) != len(shape)
        or not all(type(v) is t for v, t in zip(key, shape, strict=True))
    ):
        raise Problem(400, f"invalid cursor {cursor[:60]!r}", code="INVALID_INPUT")
    return key


def next_link(path: str, params: Mapping[str, Any]) -> str:
    """The ``Link`` header value for the next page (a relative URL)."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
    return f'<{path}?{query}>; rel="next"'
