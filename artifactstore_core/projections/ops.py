"""Row operations a projector yields; pure data, applied by ``ProjectionWriter``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Insert:
    """Add a new row."""

    table: str
    row: Row


@dataclass(frozen=True, slots=True)
class Upsert:
    """Add a row, replacing any row with the same primary key."""

    table: str
    row: Row


@dataclass(frozen=True, slots=True)
class Update:
    """Change some columns of the row with primary key ``key``."""

    table: str
    key: Row
    values: Row


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove the row with primary key ``key`` (if any)."""

    table: str
    key: Row


Op = Insert | Upsert | Update | Delete
