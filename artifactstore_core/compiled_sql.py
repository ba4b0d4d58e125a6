"""Statements compiled once per dialect and executed with pre-converted parameters.

Replays and busy registries execute the same few ``INSERT``/``UPDATE``/``DELETE``
statements thousands of times; compiling them once and applying the dialect's own bind
processors to plain rows (exactly the conversions SQLAlchemy applies) skips the
per-execution statement machinery.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
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
