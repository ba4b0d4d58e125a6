"""The writes of one recorded change go to the database together (``WriteBatch``)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from artifactstore_core.compiled_sql import WriteBatch, insert_all
from artifactstore_core.schema import log_subtrees
from artifactstore_core.store import ArtifactStore
from tests.registry.conftest import event_count


def _writes_in_pipeline(store: ArtifactStore) -> list[tuple[str, bool]]:
    """Record, for each write statement ``store`` runs, whether psycopg sent it in
    pipeline mode (without waiting for the previous statement's answer)."""
    seen: list[tuple[str, bool]] = []

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        verb = statement.split(None, 1)[0].upper()
        if verb in {"INSERT", "UPDATE", "DELETE"}:
            pipelined = bool(cursor.connection.pgconn.pipeline_status)
            seen.append((statement.split("(", 1)[0].strip(), pipelined))

    sa.event.listen(store.engine, "before_cursor_execute", before)
    return seen


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_put_sends_its_events_and_views_in_one_pipeline_on_postgresql(
    store: ArtifactStore,
) -> None:
    store.put("warm/a", {"a.txt": b"warm"})
    seen = _writes_in_pipeline(store)
    store.put("reports/daily", {"a.txt": b"alpha", "b.txt": b"beta"})
    tables = {statement.split()[2] for statement, _ in seen}
    assert {"events", "artifact_packages", "artifact_files", "package_tags"} <= tables
    assert all(pipelined for _, pipelined in seen), seen


def test_a_failing_write_in_a_batch_raises_the_database_error_and_writes_nothing(
    store: ArtifactStore,
) -> None:
    row = {"height": 8, "position": 0, "hash": bytes(32)}
    before = event_count(store)
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        batch = WriteBatch()
        statement = insert_all(log_subtrees, conn.dialect)
        batch.add(statement, [row])
        batch.add(statement, [{**row, "position": 1}])
        batch.add(statement, [row])  # the same primary key again
        batch.run(conn)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(log_subtrees)).scalar() == 0
    assert event_count(store) == before
    # The connection went back to the pool usable: the registry still records changes.
    assert store.put("after/failure", {"a.txt": b"x"}).version == 1
