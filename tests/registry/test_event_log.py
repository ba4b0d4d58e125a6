"""The hash-chained event log: tampering is detected at the right sequence; appends from
many processes stay one linear chain; projections equal a replay of the log."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from artifactstore_core import ArtifactStore
from artifactstore_core.errors import EventLogTamperedError, IntegrityError
from artifactstore_core.eventlog import codec
from artifactstore_core.schema import artifact_packages, events, package_tags, retention_state
from artifactstore_core.seed import RETENTION_CLASS_SEEDS

pytestmark = pytest.mark.integration
#: Events every registry starts with: its retention class definitions.
D = len(RETENTION_CLASS_SEEDS)


@pytest.fixture
def history(store: ArtifactStore) -> ArtifactStore:
    """Six events after the class definitions: two packages (with blobs), a tag, a read."""
    store.put("t/a", {"f": b"one"})  # D+1 PackageRegistered, D+2 BlobStored
    store.put("t/b", {"f": b"two"})  # D+3, D+4
    store.tag("t/a", "production")  # D+5
    store.read_bytes("t/b")  # D+6
    assert store.verify_log().checked == D + 6
    return store


def _tamper(store: ArtifactStore, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


TAMPERING: list[tuple[str, str, int, str]] = [
    (
        "edited payload",
        f"UPDATE events SET payload = :p WHERE sequence = {D + 3}",
        D + 3,
        "payload",
    ),
    (
        "edited actor",
        f"UPDATE events SET actor = 'mallory' WHERE sequence = {D + 4}",
        D + 4,
        "header",
    ),
    (
        "edited type",
        f"UPDATE events SET event_type = 'TagMoved' WHERE sequence = {D + 2}",
        D + 2,
        "header",
    ),
    ("edited time", f"UPDATE events SET created_at = :t WHERE sequence = {D + 5}", D + 5, "header"),
    ("deleted event", f"DELETE FROM events WHERE sequence = {D + 3}", D + 3, "missing"),
    ("deleted first", "DELETE FROM events WHERE sequence = 1", 1, "missing"),
]


@pytest.mark.parametrize(("what", "statement", "bad", "reason"), TAMPERING)
def test_tampering_is_detected_at_the_first_bad_sequence(
    history: ArtifactStore, what: str, statement: str, bad: int, reason: str
) -> None:
    import datetime as dt

    params = {"p": codec.encode({"package_id": str(uuid.uuid4())}), "t": dt.datetime(2020, 1, 1)}
    _tamper(history, statement, **{k: v for k, v in params.items() if f":{k}" in statement})
    with pytest.raises(EventLogTamperedError, match=reason) as caught:
        history.verify_log()
    assert caught.value.sequence == bad, what
    assert f"sequence {bad}" in str(caught.value)


def test_inserted_event_is_detected(history: ArtifactStore) -> None:
    with history.engine.begin() as conn:
        row = conn.execute(sa.select(events).where(events.c.sequence == D + 4)).one()._asdict()
        conn.execute(
            sa.update(events)
            .where(events.c.sequence >= D + 4)
            .values(sequence=events.c.sequence + 100)
        )
        conn.execute(
            events.insert().values({**row, "sequence": D + 4, "chain_digest": "blake3:" + "f" * 64})
        )
    with pytest.raises(EventLogTamperedError) as caught:
        history.verify_log()
    assert caught.value.sequence == D + 4


def test_reordered_events_are_detected(history: ArtifactStore) -> None:
    _tamper(history, f"UPDATE events SET sequence = -3 WHERE sequence = {D + 3}")
    _tamper(history, f"UPDATE events SET sequence = {D + 3} WHERE sequence = {D + 4}")
    _tamper(history, f"UPDATE events SET sequence = {D + 4} WHERE sequence = -3")
    with pytest.raises(EventLogTamperedError) as caught:
        history.verify_log()
    assert caught.value.sequence == D + 3


def test_tampered_payload_refuses_replay(history: ArtifactStore) -> None:
    _tamper(history, "UPDATE events SET payload = :p WHERE sequence = 1", p=b"\xff\x00")
    with pytest.raises(IntegrityError, match="sequence 1"):
        history.rebuild_views()
    assert history.describe("t/a").name == "t/a"  # rebuild rolled back, views intact


def test_views_check_reports_an_edited_projection(history: ArtifactStore) -> None:
    assert history.check_views() == []
    with history.engine.begin() as conn:
        conn.execute(
            sa.update(artifact_packages).where(artifact_packages.c.name == "t/a").values(kind="log")
        )
        conn.execute(sa.delete(package_tags).where(package_tags.c.tag == "production"))
    differences = history.check_views()
    assert {d.table for d in differences} == {"artifact_packages", "package_tags"}
    edited = next(d for d in differences if d.table == "artifact_packages")
    assert edited.live is not None and edited.live["kind"] == "log"
    assert edited.rebuilt is not None and edited.rebuilt["kind"] == "output"
    removed = next(d for d in differences if d.table == "package_tags")
    assert removed.live is None and removed.rebuilt is not None
    history.rebuild_views()
    assert history.check_views() == []
    assert history.describe("t/a").kind == "output"
    assert history.describe("t/a:production").name == "t/a"


def _snapshot(store: ArtifactStore) -> dict[str, list[tuple[object, ...]]]:
    from artifactstore_core.schema import PROJECTION_TABLES

    with store.engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr)
            for t in PROJECTION_TABLES
        }


def test_rebuild_gives_identical_rows(history: ArtifactStore) -> None:
    history.register_schema("report", {"type": "object"})
    before = _snapshot(history)
    assert sum(map(len, before.values())) > 10
    assert history.rebuild_views() == D + 7
    assert _snapshot(history) == before


def test_rebuild_in_small_batches(history: ArtifactStore) -> None:
    from artifactstore_core.projections import rebuild_views

    before = _snapshot(history)
    assert rebuild_views(history.engine, batch_size=2) == D + 6
    assert _snapshot(history) == before


def _put_many(database_url: str, storage: str, worker: int, count: int) -> None:
    with ArtifactStore.open(database_url, storage, migrate=False) as store:
        for index in range(count):
            store.put("shared/name", {"f": f"{worker}-{index}".encode()})


def test_appends_from_many_processes_stay_one_chain(
    store: ArtifactStore, database_url: str, tmp_path: Path
) -> None:
    storage = str(tmp_path / "blobs")
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_put_many, args=(database_url, storage, w, 15)) for w in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    report = store.verify_log()
    assert report.checked == D + 4 * 15 * 2
    versions = [p.version for p in store.list_packages(name_prefix="shared/")]
    assert versions == list(range(1, 61))
    assert store.check_views() == []


def test_projection_rows_are_in_the_same_transaction(store: ArtifactStore) -> None:
    """A failure while projecting leaves neither the event nor any row behind."""
    original: Callable[..., object] = store.log.append

    def failing_append(*args: object, **kwargs: object) -> object:
        original(*args, **kwargs)
        raise RuntimeError("crash after append")

    store.log.append = failing_append  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        store.put("crash", {"f": b"x"})
    store.log.append = original  # type: ignore[method-assign]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == D
        assert conn.execute(sa.select(sa.func.count()).select_from(retention_state)).scalar() == 0


def test_rebuild_recreates_the_exact_schema(history: ArtifactStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from artifactstore_core.schema import metadata

    history.rebuild_views()
    with history.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []
    history.put("t/after", {"f": b"after the rebuild"})
    assert history.check_views() == []


def test_rebuild_refuses_a_log_that_breaks_a_foreign_key(history: ArtifactStore) -> None:
    """An event naming a package the log never registered: typed error, old views kept."""
    import datetime as dt

    from artifactstore_core.domain.events import TagMoved

    ghost = str(uuid.uuid4())
    with history.engine.begin() as conn:
        history.log.append(
            conn,
            [TagMoved(package_id=ghost, name="t/ghost", tag="production")],
            actor="test",
            at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
    before = _snapshot(history)
    with pytest.raises(IntegrityError, match="nothing was changed"):
        history.rebuild_views()
    assert _snapshot(history) == before
    if history.engine.dialect.name == "sqlite":  # pooled connections check keys again
        with history.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    history.put("t/after", {"f": b"still writable"})
