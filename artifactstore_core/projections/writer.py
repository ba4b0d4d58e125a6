"""Apply row operations to the view tables, coalesced into a few batched statements.

Within one flush, operations on the same primary key are merged in memory; then the
writer runs updates of existing rows, deletes (children first) and inserts (parents
first; an upsert replaces any row with its key in place), each as one cached executemany
per table, which gives the same end state as applying the operations one by one. Upserts
go only to tables no cascading foreign key points at, where replacing a row in place is
the same as deleting and inserting it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from artifactstore_core.compiled_sql import WriteBatch, compiled, insert_all, upsert_all
from artifactstore_core.projections.ops import Insert, Op, Row, Update, Upsert
from artifactstore_core.schema import PROJECTION_TABLES

Key = tuple[Any, ...]
# Tables a cascading foreign key points at: replacing one of their rows in place would
# skip the cascade a delete + insert runs, so upserts into them are refused.
_REFERENCED = {
    fk.column.table.name for t in PROJECTION_TABLES for fk in t.foreign_keys if fk.ondelete
}


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
        self._upserted: dict[str, set[Key]] = {name: set() for name in self._order}
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
                    self._upserted[op.table].add(key)
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
                self._upserted[op.table].discard(key)
                self._updates[op.table].pop(key, None)
                self._deletes[op.table].add(key)

    def flush(self, writes: WriteBatch | None = None) -> None:
        """Write everything queued (or queue the statements in ``writes``, for the caller to
        run with its own), then start empty."""
        batch = WriteBatch() if writes is None else writes
        for name in self._order:
            self._flush_updates(name, batch)
        for name in reversed(self._order):
            self._flush_deletes(name, batch)
        for name in self._order:
            self._flush_inserts(name, batch)
        self._reset()
        if writes is None:
            batch.run(self._conn)

    def _flush_inserts(self, name: str, batch: WriteBatch) -> None:
        pending, upserted = self._pending[name], self._upserted[name]
        if not pending:
            return
        table = self._tables[name]
        replacing = [row for key, row in pending.items() if key in upserted]
        adding = [row for key, row in pending.items() if key not in upserted]
        if replacing and name in _REFERENCED:
            raise ValueError(f"upsert into {name!r}, which other views reference")
        for rows, statement in ((adding, insert_all), (replacing, upsert_all)):
            if not rows:
                continue
            if any(len(row) != len(table.columns) for row in rows):
                raise ValueError(f"a row for {name!r} does not give every column")
            batch.add(statement(table, self._conn.dialect), rows)

    def _where_key(self, name: str) -> list[sa.ColumnElement[bool]]:
        table = self._tables[name]
        return [
            table.c[column] == sa.bindparam(f"k_{column}", type_=table.c[column].type)
            for column in self._keys[name]
        ]

    def _flush_updates(self, name: str, batch: WriteBatch) -> None:
        groups: dict[tuple[str, ...], list[Row]] = {}
        for key, values in self._updates[name].items():
            params = {f"k_{c}": v for c, v in zip(self._keys[name], key, strict=True)}
            params.update({f"v_{c}": v for c, v in values.items()})
            groups.setdefault(tuple(sorted(values)), []).append(params)
        table = self._tables[name]
        for columns, rows in groups.items():
            statement = compiled(
                ("update", table.name, columns),
                self._conn.dialect,
                lambda columns=columns: (
                    table.update()  # type: ignore[misc]
                    .where(*self._where_key(name))
                    .values({c: sa.bindparam(f"v_{c}", type_=table.c[c].type) for c in columns})
                ),
            )
            batch.add(statement, rows)

    def _flush_deletes(self, name: str, batch: WriteBatch) -> None:
        keys = self._deletes[name]
        if keys:
            params: list[Row] = [
                {f"k_{c}": v for c, v in zip(self._keys[name], key, strict=True)} for key in keys
            ]
            table = self._tables[name]
            statement = compiled(
                ("delete", table.name),
                self._conn.dialect,
                lambda: table.delete().where(*self._where_key(name)),
            )
            batch.add(statement, params)
