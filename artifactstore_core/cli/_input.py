"""Reading user input: option types, timestamps, text files and JSON, each bounded
(``domain.limits``) and refused with an ``InvalidInputError`` naming the value."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from artifactstore_core.domain import limits
from artifactstore_core.errors import InvalidInputError

#: A count or sequence that may be 0.
INT = click.IntRange(min=0, max=limits.INT_MAX)
#: A count of at least 1.
COUNT = click.IntRange(min=1, max=limits.INT_MAX)


def parse_time(value: str | None, option: str) -> dt.datetime | None:
    """The ISO 8601 timestamp given to ``option``, or ``None`` if it was not given."""
    return None if value is None else limits.parse_time(value, option)


def read_text(path: str, what: str) -> str:
    """The UTF-8 text of file ``path``, refused beyond ``MAX_READ_BYTES`` (``@/dev/zero``)."""
    try:
        with open(path, "rb") as file:
            data = file.read(limits.MAX_READ_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read {what} {path!r}: {exc}") from exc
    if len(data) > limits.MAX_READ_BYTES:
        raise InvalidInputError(
            f"{what} {path!r} is larger than the limit of {limits.MAX_READ_BYTES:,} bytes"
        )
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what} {path!r} is not UTF-8 text: {exc}") from exc


def load_json(text: str, what: str) -> Any:
    """JSON text as a value; malformed, too deep or huge-integer JSON is ``InvalidInputError``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} is not valid JSON ({exc}): {text[:60]!r}") from exc
    except RecursionError as exc:
        raise InvalidInputError(
            f"{what} is nested too deeply (the limit is {limits.MAX_JSON_DEPTH} levels)"
        ) from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise InvalidInputError(f"{what} is not acceptable JSON: {exc}") from exc
