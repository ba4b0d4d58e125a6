"""Apply row operations to the view tables, coalesced into a few batched statements.

Within one flush, operations on the same primary key are merged in memory; then the
writer runs updates of existing rows, deletes (children first; an upsert deletes the old
row) and inserts (parents first), each as one cached executemany per table, which gives
the same end state as applying the operations one by one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from artifactstore_core.projections.ops import Insert, Op, Row, Update, Upsert
from artifactstore_core.schema import PROJECTION_TABLES

Key = tuple[Any, ...]


@dataclass(frozen=True)
class _InsertPlan:
    """A compiled ``INSERT`` of every column with the dialect's bind processors, so that
    large replays convert values once per row instead of going through statement
    execution machinery row by row (the same conversions SQLAlchemy applies)."""

    sql: str
    columns: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool

    def parameters(self, rows: list[Row]) -> list[Any]:
        get = operator.itemgetter(*self.columns)
        convert = [(i, p) for i, p in enumerate(self.processors) if p is not None]
        converted = []
        for row in rows:
            values = list(get(row)) if len(self.columns) > 1 else [get(row)]
            for index, processor in convert:
                values[index] = processor(values[index])
            converted.append(values)
        if self.positional:
            return [tuple(values) for values in converted]
        return [dict(zip(self.columns, values, strict=True)) for values in converted]


_PLANS: dict[tuple[str, ...], _InsertPlan] = {}


def _insert_plan(table: sa.Table, dialect: sa.Dialect) -> _InsertPlan:
    key = (table.name, dialect.name, dialect.driver, str(dialect.paramstyle))
    plan = _PLANS.get(key)
    if plan is None:
        names = [c.name for c in table.columns]
        compiled = table.insert().compile(dialect=dialect, column_keys=names)
        order = tuple(compiled.positiontup or ()) if compiled.positional else tuple(names)
        processors = tuple(
            table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in order
        )
        plan = _PLANS[key] = _InsertPlan(str(compiled), order, processors, compiled.positional)
    return plan


def _single(column: str) -> Callable[[Mapping[str, Any]], Key]:
    return lambda row: (row[column],)


class ProjectionWriter:
    """Collects row operations and writes them on ``flush`` within the caller's transaction."""

    def __init__(self, conn: sa.Connection, tables: Mapping[str, sa.Table] | None = None) -> None:
        self._conn = conn
        self._tables = dict(tables or {t.name: t for t in PROJECTION_TABLES})
        self._order = list(self._tables)
        self._keys = {name: [c.name for c in t.primary_key] for name, t in self._tables.items()}
        self._key_getters = {
            name: operator.itemgetter(*keys) if len(keys) > 1 else _single(keys[0])
            for name, keys in self._keys.items()
        }
        self._reset()

    def _reset(self) -> None:
        self._pending: dict[str, dict[Key, Row]] = {name: {} for name in self._order}
        self._updates: dict[str, dict[Key, Row]] = {name: {} for name in self._order}
        self._deletes: dict[str, set[Key]] = {name: set() for name in self._order}

    def _key(self, table: str, row: Mapping[str, Any]) -> Key:
        key: Key = self._key_getters[table](row)
        return key

    def add(self, ops: Iterable[Op]) -> None:
        """Queue operations, merging those that touch the same row."""
        for op in ops:
            if isinstance(op, Insert | Upsert):
                key = self._key(op.table, op.row)
                if isinstance(op, Upsert):
                    self._deletes[op.table].add(key)
                    self._updates[op.table].pop(key, None)
                self._pending[op.table][key] = dict(op.row)
            elif isinstance(op, Update):
                key = self._key(op.table, op.key)
                target = self._pending[op.table].get(key)
                if target is None:
                    target = self._updates[op.table].setdefault(key, {})
                target.update(op.values)
            else:
                key = self._key(op.table, op.key)
                self._pending[op.table].pop(key, None)
                self._updates[op.table].pop(key, None)
                self._deletes[op.table].add(key)

    def flush(self) -> None:
        """Write everything queued, then start empty."""
        for name in self._order:
            self._flush_updates(name)
        for name in reversed(self._order):
            self._flush_deletes(name)
        for name in self._order:
            self._flush_inserts(name)
        self._reset()

    def _flush_inserts(self, name: str) -> None:
        rows = list(self._pending[name].values())
        if not rows:
            return
        table = self._tables[name]
        plan = _insert_plan(table, self._conn.dialect)
        if all(len(row) == len(plan.columns) for row in rows):
            self._conn.exec_driver_sql(plan.sql, plan.parameters(rows))
        else:
            self._conn.execute(table.insert(), rows)

    def _where_key(self, name: str) -> list[sa.ColumnElement[bool]]:
        table = self._tables[name]
        return [table.c[column] == sa.bindparam(f"k_{column}") for column in self._keys[name]]

    def _flush_updates(self, name: str) -> None:
        groups: dict[tuple[str, ...], list[Row]] = {}
        for key, values in self._updates[name].items():
            params = {f"k_{c}": v for c, v in zip(self._keys[name], key, strict=True)}
            params.update({f"v_{c}": v for c, v in values.items()})
            groups.setdefault(tuple(sorted(values)), []).append(params)
        table = self._tables[name]
        for columns, batch in groups.items():
            statement = (
                table.update()
                .where(*self._where_key(name))
                .values({c: sa.bindparam(f"v_{c}", type_=table.c[c].type) for c in columns})
            )
            self._conn.execute(statement, batch)

    def _flush_deletes(self, name: str) -> None:
        keys = self._deletes[name]
        if keys:
            params: list[Row] = [
                {f"k_{c}": v for c, v in zip(self._keys[name], key, strict=True)} for key in keys
            ]
            self._conn.execute(self._tables[name].delete().where(*self._where_key(name)), params)
