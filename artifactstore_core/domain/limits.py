"""The bounds on every value a caller hands in, in one place (documented in README.md).

Whatever passes these checks can be written to the event log, read back (the CBOR
decoder refuses nesting deeper than 400), projected on SQLite and PostgreSQL (which
refuses NUL in text) and compared by ``views check``. They are applied at the door
(``put``, ``register_schema``, retention, holds, the CLI) and once more, as a backstop,
to every event payload before it is appended.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from artifactstore_core.errors import InvalidInputError

MAX_JSON_DEPTH = 64
"""Nesting of maps and lists in metadata, provenance attributes and schemas."""
MAX_JSON_BYTES = 1024 * 1024
"""Size of one metadata, provenance or schema value as compact UTF-8 JSON."""
MAX_TEXT = 4096
"""Characters in free text: reasons, actors, run ids, producers, code versions, purposes."""
MAX_CLASS_NAME = 128
"""Characters in a retention class name."""
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Integers anywhere (metadata, versions, sequences, limits) are signed 64-bit."""
MAX_READ_BYTES = 16 * 1024 * 1024
"""Bytes read from a file named by a CLI option (``--metadata @file``, schema files,
each line of a ``put-many`` spec)."""
MAX_DURATION_SECONDS = 1000 * 366 * 86_400
"""Durations (a GC grace period) are at most about 1,000 years."""
MAX_PAYLOAD_DEPTH = MAX_JSON_DEPTH + 8
"""Nesting of a whole event payload: a user value plus the event's own structure."""
_MIN_TIME = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_MAX_TIME = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


def check_text(value: Any, what: str, *, max_length: int = MAX_TEXT) -> str:
    """``value`` if it is text without NUL or lone surrogates and at most ``max_length``
    characters; otherwise ``InvalidInputError`` naming ``what`` and the value."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be text, got {type(value).__name__} {value!r:.60}")
    if len(value) > max_length:
        raise InvalidInputError(f"{what} is longer than {max_length} characters: {value[:40]!r}…")
    _check_characters(value, what)
    return value


def _check_characters(value: str, what: str) -> None:
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL character: {value[:60]!r}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"{what} is not valid Unicode text (lone surrogate at index {exc.start}): "
                f"{value[:60]!r}"
            ) from None


def check_optional_text(value: Any, what: str, *, max_length: int = MAX_TEXT) -> str | None:
    """``check_text`` for a value that may be ``None``."""
    return None if value is None else check_text(value, what, max_length=max_length)


def check_int(value: Any, what: str, *, minimum: int = INT_MIN, maximum: int = INT_MAX) -> int:
    """``value`` if it is an integer (not a bool) within ``minimum``..``maximum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(
            f"{what} must be an integer, got {type(value).__name__} {value!r:.60}"
        )
    if not minimum <= value <= maximum:
        shown = (
            str(value) if value.bit_length() < 200 else f"an integer of {value.bit_length()} bits"
        )
        raise InvalidInputError(f"{what} is {shown}, outside {minimum}..{maximum}")
    return value


def parse_int(text: str, what: str, *, minimum: int = INT_MIN, maximum: int = INT_MAX) -> int:
    """Decimal ASCII digits (an optional leading ``-``) as a bounded integer."""
    digits = text.removeprefix("-")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidInputError(f"{what} {text[:60]!r} is not a decimal integer")
    if len(digits) > 19:
        raise InvalidInputError(f"{what} {text[:40]!r}… is outside {minimum}..{maximum}")
    return check_int(int(text), what, minimum=minimum, maximum=maximum)


def check_json_value(value: Any, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse anything but JSON values the log and both databases store faithfully:
    text keys, text without NUL or lone surrogates, 64-bit integers, finite floats, and at
    most ``max_depth`` levels of maps and lists. The error names the first offending path."""
    # An explicit stack, not recursion: arbitrarily deep input must not raise RecursionError.
    stack: list[tuple[Any, str, int]] = [(value, what, 0)]
    while stack:
        item, where, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            _check_characters(item, where)
        elif isinstance(item, int):
            check_int(item, where)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInputError(f"{where} is {item!r}, which JSON cannot represent")
        elif isinstance(item, Mapping | list | tuple):
            if depth >= max_depth:
                raise InvalidInputError(
                    f"{what} is nested deeper than {max_depth} levels (at {where[:80]}…)"
                )
            if isinstance(item, Mapping):
                children = []
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidInputError(f"{where} has a non-text key {key!r:.60}")
                    _check_characters(key, f"{where} key")
                    children.append((child, f"{where}.{key}", depth + 1))
                stack.extend(reversed(children))
            else:
                stack.extend(
                    (child, f"{where}[{index}]", depth + 1)
                    for index, child in reversed(list(enumerate(item)))
                )
        else:
            raise InvalidInputError(
                f"{where} is a {type(item).__name__} ({item!r:.60}), which is not JSON-serialisable"
            )


def check_json_size(value: Any, what: str, *, max_bytes: int = MAX_JSON_BYTES) -> str:
    """``value`` as compact JSON text, refused above ``max_bytes`` of UTF-8."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    size = len(text) if text.isascii() else len(text.encode())
    if size > max_bytes:
        raise InvalidInputError(
            f"{what} is {size:,} bytes as JSON; the limit is {max_bytes:,} bytes"
        )
    return text


def check_time(value: dt.datetime, what: str) -> dt.datetime:
    """An aware timestamp, in UTC, between years 1 and 9999 (with a day to spare on each
    side, so that arithmetic on it never overflows)."""
    if not isinstance(value, dt.datetime):
        raise InvalidInputError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} {value.isoformat()} has no time zone")
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or not _MIN_TIME <= utc <= _MAX_TIME:
        raise InvalidInputError(
            f"{what} {value.isoformat()} is outside the supported range "
            f"({_MIN_TIME.date()} to {_MAX_TIME.date()} in UTC)"
        )
    return utc


def parse_time(text: str, what: str) -> dt.datetime:
    """ISO 8601 text as an aware UTC datetime (no zone means UTC), bounded as ``check_time``."""
    check_text(text, what, max_length=64)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInputError(f"{what} {text!r} is not an ISO 8601 timestamp") from exc
    return check_time(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC), what)
