"""Rebuild the views from the event log, or replay into scratch tables and compare."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from artifactstore_core.config import (
    DEFAULT_CACHE_KIB,
    READ_ONLY,
    sqlite_foreign_key_violation,
    sqlite_foreign_keys_off,
)
from artifactstore_core.errors import IntegrityError
from artifactstore_core.eventlog import EventLog
from artifactstore_core.projections.projectors import project
from artifactstore_core.projections.writer import ProjectionWriter
from artifactstore_core.schema import PROJECTION_TABLES, set_name_statistics

Progress = Callable[[int], None]
BATCH_SIZE = 5_000
REBUILD_CACHE_KIB = 256 * 1024


@dataclass(frozen=True, slots=True)
class Difference:
    """A row that differs between the live views and a replay of the log."""

    table: str
    key: dict[str, Any]
    live: dict[str, Any] | None
    rebuilt: dict[str, Any] | None


def _replay(
    conn: sa.Connection,
    tables: dict[str, sa.Table],
    batch_size: int,
    progress: Progress | None,
) -> int:
    writer = ProjectionWriter(conn, tables)
    count = 0
    pending = 0
    for recorded in EventLog().read(conn, batch_size=batch_size):
        try:
            operations = project(recorded)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise IntegrityError(
                f"event {recorded.sequence} ({recorded.event.event_type}) cannot be "
                f"projected: {type(exc).__name__}: {exc}"
            ) from exc
        writer.add(operations)
        count += 1
        pending += 1
        if pending >= batch_size:
            writer.flush()
            pending = 0
            if progress:
                progress(count)
    writer.flush()
    if progress:
        progress(count)
    return count


def rebuild_views(
    engine: sa.Engine, *, batch_size: int = BATCH_SIZE, progress: Progress | None = None
) -> int:
    """Drop the view tables and replay the whole log in one transaction; returns events.

    The tables are recreated without their secondary indexes, which are built once the
    rows are in (much faster than maintaining them row by row). Readers see the old
    views until the transaction commits (on PostgreSQL they wait for it).
    """
    with engine.connect() as conn, _sqlite_bulk_mode(conn):
        with conn.begin():
            for table in reversed(PROJECTION_TABLES):
                table.drop(conn)
            for table in PROJECTION_TABLES:
                conn.execute(CreateTable(table))
                set_name_statistics(conn, table.name)
            tables = {t.name: t for t in PROJECTION_TABLES}
            try:
                count = _replay(conn, tables, batch_size, progress)
            except sa.exc.IntegrityError as exc:
                raise IntegrityError(
                    f"replaying the log breaks a constraint of the views ({exc.orig}); "
                    "nothing was changed"
                ) from exc
            for table in PROJECTION_TABLES:
                for index in sorted(table.indexes, key=lambda i: str(i.name)):
                    index.create(conn)
            _check_foreign_keys(conn)
        return count


@contextmanager
def _sqlite_bulk_mode(conn: sa.Connection) -> Iterator[None]:
    """On SQLite, replay without per-row foreign-key checks and with a larger page cache.

    The replay writes parents before children (events are in causal order), so the keys
    are checked once at the end instead (`_check_foreign_keys`).
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    dbapi.execute(f"PRAGMA cache_size={-REBUILD_CACHE_KIB}")
    try:
        with sqlite_foreign_keys_off(conn):
            yield
    finally:
        dbapi.execute(f"PRAGMA cache_size={-DEFAULT_CACHE_KIB}")


def _check_foreign_keys(conn: sa.Connection) -> None:
    violation = sqlite_foreign_key_violation(conn)
    if violation is not None:
        raise IntegrityError(
            f"the rebuilt views break a foreign key: {violation}; nothing was changed"
        )


def _scratch_tables() -> dict[str, sa.Table]:
    scratch = sa.MetaData()
    return {
        table.name: sa.Table(
            f"scratch_{table.name}",
            scratch,
            *(sa.Column(c.name, c.type, primary_key=c.primary_key) for c in table.columns),
            prefixes=["TEMPORARY"],
        )
        for table in PROJECTION_TABLES
    }


def check_views(
    engine: sa.Engine,
    *,
    batch_size: int = BATCH_SIZE,
    limit: int = 50,
    progress: Progress | None = None,
) -> list[Difference]:
    """Replay the log into scratch tables and list rows that differ from the live views.

    Everything happens in one transaction that is rolled back: nothing is left behind.
    The scratch tables are temporary, so on SQLite the check takes no write lock (writers
    go on meanwhile) and works on a read-only registry.
    """
    scratch = _scratch_tables()
    reading = engine.connect().execution_options(**{READ_ONLY: True})
    with reading as conn, conn.begin() as transaction:
        for table in scratch.values():
            table.create(conn)
        _replay(conn, scratch, batch_size, progress)
        differences: list[Difference] = []
        for live in PROJECTION_TABLES:
            differences.extend(_compare(conn, live, scratch[live.name], limit))
        transaction.rollback()
    return differences[:limit]


def _compare(
    conn: sa.Connection, live: sa.Table, rebuilt: sa.Table, limit: int
) -> list[Difference]:
    key_columns = [c.name for c in live.primary_key]
    only_live = conn.execute(
        sa.select(*live.c).except_(sa.select(*rebuilt.c)).limit(limit)
    ).mappings()
    only_rebuilt = conn.execute(
        sa.select(*rebuilt.c).except_(sa.select(*live.c)).limit(limit)
    ).mappings()
    by_key: dict[tuple[Any, ...], list[dict[str, Any] | None]] = {}
    for index, rows in enumerate((only_live, only_rebuilt)):
        for row in rows:
            key = tuple(row[c] for c in key_columns)
            by_key.setdefault(key, [None, None])[index] = dict(row)
    return [
        Difference(live.name, dict(zip(key_columns, key, strict=True)), pair[0], pair[1])
        for key, pair in by_key.items()
    ]
