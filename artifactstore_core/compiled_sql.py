"""Statements compiled once per dialect and executed with pre-converted parameters.

Replays and busy registries execute the same few ``INSERT``/``UPDATE``/``DELETE``
statements thousands of times; compiling them once and applying the dialect's own bind
processors to plain rows (exactly the conversions SQLAlchemy applies) skips the
per-execution statement machinery.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class CompiledStatement:
    """SQL text for one dialect, the parameter names in order, and their processors."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Processor | None, ...]
    positional: bool

    @classmethod
    def build(cls, statement: sa.Executable, dialect: sa.Dialect) -> CompiledStatement:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
        processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        )
        return cls(str(compiled), names, processors, bool(compiled.positional))

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Rows keyed by parameter name, converted for the driver."""
        get = operator.itemgetter(*self.names)
        convert = [(i, p) for i, p in enumerate(self.processors) if p is not None]
        result: list[Any] = []
        for row in rows:
            values = list(get(row)) if len(self.names) > 1 else [get(row)]
            for index, processor in convert:
                values[index] = processor(values[index])
            result.append(
                tuple(values) if self.positional else dict(zip(self.names, values, strict=True))
            )
        return result

    def execute(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row (one ``executemany``)."""
        if rows:
            conn.exec_driver_sql(self.sql, self.parameters(rows))


class WriteBatch:
    """Writes queued in order and sent together by ``run``: with psycopg (PostgreSQL) in
    one pipeline, so the batch waits for the server once instead of once per statement;
    with other drivers one after another. Only writes are queued: nothing is read back."""

    def __init__(self) -> None:
        self._queued: list[tuple[CompiledStatement, Sequence[Mapping[str, Any]]]] = []

    def add(self, statement: CompiledStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue ``statement`` once per row (nothing if ``rows`` is empty)."""
        if rows:
            self._queued.append((statement, rows))

    def run(self, conn: sa.Connection) -> None:
        """Execute everything queued, in order, in ``conn``'s transaction; then start empty."""
        queued, self._queued = self._queued, []
        pipelined = len(queued) > 1 and conn.dialect.driver == "psycopg"
        with _pipeline(conn) if pipelined else contextlib.nullcontext():
            for statement, rows in queued:
                statement.execute(conn, rows)


@contextlib.contextmanager
def _pipeline(conn: sa.Connection) -> Iterator[None]:
    """psycopg's pipeline mode on ``conn``; a failure the closing sync reports is raised
    as SQLAlchemy raises the driver's errors (``sa.exc.IntegrityError`` …)."""
    driver: Any = conn.connection.driver_connection  # a psycopg.Connection
    dbapi = conn.dialect.loaded_dbapi
    try:
        with driver.pipeline():
            yield
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(None, None, exc, dbapi.Error) from exc


_CACHE: dict[tuple[Any, ...], CompiledStatement] = {}


def compiled(
    key: tuple[Any, ...], dialect: sa.Dialect, build: Callable[[], sa.Executable]
) -> CompiledStatement:
    """The statement ``build()`` compiled for ``dialect``, cached under ``key``."""
    full_key = (*key, dialect.name, dialect.driver, str(dialect.paramstyle))
    statement = _CACHE.get(full_key)
    if statement is None:
        statement = _CACHE[full_key] = CompiledStatement.build(build(), dialect)
    return statement


def insert_all(table: sa.Table, dialect: sa.Dialect) -> CompiledStatement:
    """``INSERT`` of every column of ``table``; parameters keyed by column name."""
    names = [c.name for c in table.columns]
    return compiled(
        ("insert", table.name),
        dialect,
        lambda: table.insert().values({n: sa.bindparam(n, type_=table.c[n].type) for n in names}),
    )


def upsert_all(table: sa.Table, dialect: sa.Dialect) -> CompiledStatement:
    """``INSERT`` of every column of ``table`` that replaces the row with the same primary
    key (``ON CONFLICT … DO UPDATE``, SQLite and PostgreSQL); parameters keyed by column."""
    names = [c.name for c in table.columns]
    keys = [c.name for c in table.primary_key]

    insert: Callable[[sa.Table], postgresql.Insert | sqlite.Insert] = (
        postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    )

    def build() -> sa.Executable:
        statement = insert(table).values({n: sa.bindparam(n, type_=table.c[n].type) for n in names})
        return statement.on_conflict_do_update(
            index_elements=keys,
            set_={n: statement.excluded[n] for n in names if n not in keys},
        )

    return compiled(("upsert", table.name), dialect, build)
