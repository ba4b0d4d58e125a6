"""``list_packages`` filters: every combination lists exactly what a scan of all packages
selects, in the same order, on SQLite and PostgreSQL; the run id is a projected column;
on SQLite (no statistics) each filtered listing reads an index in listing order; lineage
walks breadth-first."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from artifactstore_core import ArtifactStore, Package
from artifactstore_core.queries import PackageFilter, list_ids
from artifactstore_core.schema import NAME_STATISTICS, artifact_packages
from artifactstore_core.testing.clock import FrozenClock

NAMES = ["reports/daily", "Reports/daily", "reports/weekly", "reports_x/a", "logs/app", "r"]
KINDS = ["report", "log", "output"]
CLASSES = ["transient", "raw-evidence", "summary-evidence"]


def _registry(database_url: str, tmp_path: Path) -> Iterator[tuple[ArtifactStore, FrozenClock]]:
    """36 packages over six names (two differ only in case) with kinds, classes, run ids,
    moved tags, a hold, and the transient ones not held expired by a sweep."""
    clock = FrozenClock()
    store = ArtifactStore.open(database_url, str(tmp_path / "blobs"), clock=clock)
    try:
        for index in range(36):
            name = NAMES[index % len(NAMES)]
            package = store.put(
                name, {"f": f"{index}".encode()}, kind=KINDS[index % 3],
                retention_class=CLASSES[index // 2 % 3],
                provenance={"run_id": f"run-{index // 4}"} if index % 5 else None,
            )  # fmt: skip
            if index % 4 == 0:
                store.tag(package.id, "production")
            if index == 7:
                store.place_hold(package.id, reason="audit")
            clock.advance(dt.timedelta(hours=1))
        clock.advance(dt.timedelta(days=8))
        store.sweep()
        yield store, clock
    finally:
        store.close()


@pytest.fixture
def registry(database_url: str, tmp_path: Path) -> Iterator[tuple[ArtifactStore, FrozenClock]]:
    yield from _registry(database_url, tmp_path)


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[tuple[ArtifactStore, FrozenClock]]:
    yield from _registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path)


def _matches(package: Package, where: PackageFilter) -> bool:
    created = package.created_at
    return (
        (where.name is None or package.name == where.name)
        and (where.name_prefix is None or package.name.startswith(where.name_prefix))
        and (where.run_id is None or package.provenance.run_id == where.run_id)
        and (where.kind is None or package.kind == where.kind)
        and (where.tag is None or where.tag in package.tags)
        and (where.retention_class is None or package.retention_class == where.retention_class)
        and (where.status is None or package.status == where.status)
        and (where.created_after is None or created >= where.created_after)
        and (where.created_before is None or created < where.created_before)
    )


def _filters(everything: list[Package]) -> Iterator[dict[str, Any]]:
    start = everything[0].created_at
    single: list[dict[str, Any]] = [
        {"name": "reports/daily"}, {"name_prefix": "reports/"}, {"name_prefix": "Reports/"},
        {"name_prefix": "reports_"}, {"name_prefix": "r"}, {"run_id": "run-3"},
        {"kind": "log"}, {"tag": "production"}, {"tag": "latest"},
        {"retention_class": "transient"}, {"status": "expired"}, {"status": "active"},
        {"created_after": start + dt.timedelta(hours=5)},
        {"created_before": start + dt.timedelta(hours=20)},
    ]  # fmt: skip
    yield {}
    yield from single
    for first, second in itertools.combinations(single, 2):
        if first.keys() != second.keys():
            yield first | second


def test_every_filter_lists_what_a_scan_selects_in_listing_order(
    registry: tuple[ArtifactStore, FrozenClock],
) -> None:
    store, _ = registry
    everything = store.list_packages()
    assert len(everything) == 36
    assert {p.status for p in everything} == {"active", "expired"}
    assert len({p.name for p in everything}) == len(NAMES)
    for filters in _filters(everything):
        where = PackageFilter(**filters)
        selected = [p for p in everything if _matches(p, where)]
        assert store.list_packages(where) == selected, filters
        for limit in (1, 3):
            limited = dataclasses.replace(where, limit=limit)
            assert store.list_packages(limited) == selected[:limit], (filters, limit)
        for position, package in enumerate(everything[::7]):
            after = dataclasses.replace(where, after=(package.name, package.version), limit=2)
            later = [p for p in everything[7 * position + 1 :] if _matches(p, where)]
            assert store.list_packages(after) == later[:2], (filters, package.reference)


def test_a_name_prefix_is_case_sensitive_on_every_database(
    registry: tuple[ArtifactStore, FrozenClock],
) -> None:
    """SQLite's LIKE ignores ASCII case: ``ls Reports/`` listed ``reports/...`` there."""
    store, _ = registry
    assert {p.name for p in store.list_packages(name_prefix="Reports/")} == {"Reports/daily"}
    assert {p.name for p in store.list_packages(name_prefix="reports/")} == {
        "reports/daily", "reports/weekly",
    }  # fmt: skip


def _run_ids(store: ArtifactStore) -> dict[str, str | None]:
    p = artifact_packages
    with store.engine.connect() as conn:
        return {
            f"{row.name}@{row.version}": row.run_id
            for row in conn.execute(sa.select(p.c.name, p.c.version, p.c.run_id))
        }


def test_the_run_id_is_projected_from_provenance_and_rebuilt_identically(
    store: ArtifactStore,
) -> None:
    # 4,096 characters (the longest run id) of 3-byte UTF-8: over a B-tree entry's limit
    # on PostgreSQL, so its index there must not be a B-tree.
    long_run = "".join(chr(0x4E00 + i * 7919 % 20000) for i in range(4096))
    store.put("a", {"f": b"1"}, provenance={"run_id": "run-1"})
    store.put("a", {"f": b"2"})
    store.put("b", {"f": b"3"}, provenance={"run_id": long_run, "producer": "p"})
    expected = {"a@1": "run-1", "a@2": None, "b@1": long_run}
    assert _run_ids(store) == expected
    assert [p.reference for p in store.list_packages(run_id=long_run)] == ["b@1"]
    assert store.rebuild_views() > 0
    assert _run_ids(store) == expected
    assert store.check_views() == []
    assert [p.reference for p in store.list_packages(run_id="run-1")] == ["a@1"]


def _plans(store: ArtifactStore, where: PackageFilter) -> list[str]:
    """SQLite's query plan of the first query ``list_packages(where)`` runs: the listing."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.list_packages(where)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    statement, parameters = next(s for s in statements if s[0].startswith("SELECT"))
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    assert rows, statement
    return [row[-1] for row in rows]


@pytest.mark.parametrize(
    "filters",
    [
        {"kind": "log"},
        {"tag": "production"},
        {"retention_class": "raw-evidence", "status": "active"},
        {"status": "expired"},
        {"name_prefix": "reports/"},
        {"name_prefix": "reports/", "status": "active"},
        {"run_id": "run-3"},
        {"name": "reports/daily", "kind": "report"},
    ],
    ids=repr,
)
def test_sqlite_reads_a_filtered_listing_in_index_order(
    sqlite_registry: tuple[ArtifactStore, FrozenClock], filters: dict[str, Any]
) -> None:
    """With a limit, a listing that sorts or scans a table reads all of it first: at a
    million packages, seconds (issue #16: ``ls --kind --limit 100`` took 0.9 s). SQLite
    plans without statistics, so its plan is what it runs; PostgreSQL's depend on its
    statistics and are measured by ``benchmarks/bench_scale.py``."""
    store, _ = sqlite_registry
    plan = _plans(store, PackageFilter(limit=3, **filters))
    assert not [step for step in plan if step.startswith("SCAN")], plan
    if "run_id" not in filters:  # a run's few packages are sorted
        assert not [step for step in plan if "TEMP B-TREE" in step], plan


def _walk(
    inputs: dict[uuid.UUID, list[uuid.UUID]], start: uuid.UUID, downstream: bool, depth: int | None
) -> list[tuple[int, uuid.UUID, uuid.UUID]]:
    """Breadth-first over ``inputs``: each level's edges by source, then target (the
    registry's documented order, for levels of up to 500 sources)."""
    following: dict[uuid.UUID, list[uuid.UUID]] = {}
    for package, its_inputs in inputs.items():
        for source in its_inputs:
            if downstream:
                following.setdefault(source, []).append(package)
            else:
                following.setdefault(package, []).append(source)
    edges, seen, frontier, level = [], {start}, [start], 0
    while frontier and (depth is None or level < depth):
        level += 1
        found = []
        for source in sorted(frontier):
            for target in sorted(following.get(source, ())):
                edges.append((level, target, source) if downstream else (level, source, target))
                if target not in seen:
                    seen.add(target)
                    found.append(target)
        frontier = found
    return edges


def test_lineage_walks_breadth_first_to_the_depth_over_paths_of_any_length(
    store: ArtifactStore,
) -> None:
    """Packages reached by paths of different lengths are walked from their nearest
    distance once; every edge from a package within the depth is listed at its level."""
    rng = random.Random(7)
    ids: list[uuid.UUID] = []
    inputs: dict[uuid.UUID, list[uuid.UUID]] = {}
    for index in range(40):
        chosen = sorted({ids[-1], *rng.sample(ids, min(len(ids), rng.randrange(3)))}) if ids else []
        package = store.put(f"dag/p{index}", {"f": f"{index}".encode()}, inputs=chosen)
        ids.append(package.id)
        inputs[package.id] = list(chosen)
    for start, downstream in ((ids[-1], False), (ids[0], True), (ids[20], False), (ids[5], True)):
        for depth in (1, 2, 5, 20, None):
            got = store.lineage(start, downstream=downstream, depth=depth)
            expected = _walk(inputs, start, downstream, depth)
            assert [(e.depth, e.package_id, e.input_id) for e, _ in got] == expected
            related = [e.package_id if downstream else e.input_id for e, _ in got]
            assert [p.id for _, p in got] == related
    assert len(store.lineage(ids[-1])) > len(store.lineage(ids[-1], depth=5)) > 5


def _name_statistics(store: ArtifactStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT attrelid::regclass::text, attstattarget FROM pg_attribute "
            "WHERE attname = 'name' AND attrelid::regclass::text = ANY(%(tables)s)",
            {"tables": list(NAME_STATISTICS)},
        )
        return dict(rows.all())


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_reads_a_prefix_listing_in_index_order(store: ArtifactStore) -> None:
    """Names sharing long prefixes: with 100 histogram bounds PostgreSQL estimated 1% of a
    prefix's rows and sorted all of them for ``ls PREFIX --limit 100``."""
    p = artifact_packages
    now = dt.datetime.now(dt.UTC)
    rows = [
        {"package_id": uuid.uuid4(), "name": f"team-{i % 100:02d}/dataset-{i // 100 % 100:02d}",
         "version": i // 10_000 + 1, "kind": "report", "digest_primary": "a" * 64,
         "digest_sha256": "b" * 64, "content_address": "blake3:" + "a" * 64, "size": 1,
         "file_count": 0, "metadata": {}, "provenance": {}, "actor": "t", "created_at": now,
         "event_sequence": i}
        for i in range(30_000)
    ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(p.insert(), rows)
        conn.exec_driver_sql("ANALYZE artifact_packages")
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    with store.engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", record)
        ids = list_ids(conn, PackageFilter(name_prefix="team-07/", limit=100))
        statement, parameters = statements[-1]
        plan = [r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)]
    assert len(ids) == 100
    assert "uq_artifact_packages_name_version" in plan[1] and "Sort" not in "".join(plan), plan
    assert _name_statistics(store) == dict.fromkeys(NAME_STATISTICS, 1000)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(p))
    store.rebuild_views()
    assert _name_statistics(store) == dict.fromkeys(NAME_STATISTICS, 1000)
