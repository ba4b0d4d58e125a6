"""The registry end to end on SQLite and PostgreSQL: put, read, list, tag, lineage, verify."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from pathlib import Path

import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.errors import IntegrityError, MissingBlobError, NotFoundError
from artifactstore_core.hashing import hash_bytes

from .conftest import blob_count, event_count

pytestmark = pytest.mark.integration


def test_put_records_identity_provenance_and_retention(store: ArtifactStore) -> None:
    before = dt.datetime.now(dt.UTC)
    package = store.put(
        "reports/daily_summary",
        {"summary.csv": b"a,b\n1,2\n", "notes/readme.txt": "hello"},
        kind="report",
        metadata={"rows": 1},
        retention_class="summary-evidence",
        provenance={"producer": "tests", "run_id": "run-1", "code_version": "abc"},
    )
    assert package.version == 1
    assert package.tags == ("latest",)
    assert [f.path for f in package.files] == ["notes/readme.txt", "summary.csv"]
    assert package.files[1].blob == hash_bytes(b"a,b\n1,2\n")
    assert package.content_address.startswith("blake3:")
    assert package.size == len(b"a,b\n1,2\n") + len(b"hello")
    assert package.provenance.run_id == "run-1"
    assert package.provenance.actor == "artifactstore"
    assert package.expires_at is not None
    expected = package.created_at + dt.timedelta(days=365)
    assert package.expires_at == expected
    assert package.created_at >= before
    assert store.describe(package.id) == package


def test_versions_increase_and_latest_follows(store: ArtifactStore) -> None:
    first = store.put("logs/app", {"log.txt": b"one"}, kind="log")
    second = store.put("logs/app", {"log.txt": b"two"}, kind="log")
    assert (first.version, second.version) == (1, 2)
    assert store.describe("logs/app").id == second.id
    assert store.describe("logs/app:latest").id == second.id
    assert store.describe("logs/app@1").id == first.id
    assert store.describe(str(first.id)).id == first.id
    assert store.describe(first.content_address).id == first.id
    assert store.describe(f"sha256:{second.digest_sha256}").id == second.id
    assert store.describe("logs/app@1").tags == ()


def test_equal_content_gives_equal_package_digest(store: ArtifactStore) -> None:
    a = store.put("a/x", {"f": b"same"}, metadata={"k": 1})
    b = store.put("b/y", {"f": b"same"}, metadata={"k": 1})
    c = store.put("c/z", {"f": b"same"}, metadata={"k": 2})
    assert a.content_address == b.content_address != c.content_address


def test_bytes_are_deduplicated_across_packages(store: ArtifactStore) -> None:
    store.put("one", {"a": b"shared", "b": b"only-one"})
    store.put("two", {"c": b"shared"})
    assert blob_count(store) == 2
    stored = [e for e in store.events() if e.event.event_type == "BlobStored"]
    assert len(stored) == 2


def test_put_accepts_paths_directories_and_streams(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "bundle" / "sub").mkdir(parents=True)
    (tmp_path / "bundle" / "a.txt").write_text("A")
    (tmp_path / "bundle" / "sub" / "b.txt").write_text("B")
    single = tmp_path / "single.bin"
    single.write_bytes(b"\x00\x01")
    from_dir = store.put("bundles/x", tmp_path / "bundle", kind="evidence")
    assert [f.path for f in from_dir.files] == ["a.txt", "sub/b.txt"]
    from_file = store.put("files/x", single)
    assert [f.path for f in from_file.files] == ["single.bin"]
    from_list = store.put("files/y", [single, tmp_path / "bundle"])
    assert [f.path for f in from_list.files] == ["bundle/a.txt", "bundle/sub/b.txt", "single.bin"]
    from_stream = store.put("streams/x", io.BytesIO(b"streamed"))
    assert store.read_bytes(from_stream.id) == b"streamed"
    from_bytes = store.put("bytes/x", b"raw")
    assert [f.path for f in from_bytes.files] == ["data"]


def test_read_and_export_are_verified_and_recorded(store: ArtifactStore, tmp_path: Path) -> None:
    package = store.put("r/x", {"a.txt": b"alpha", "d/b.txt": b"beta"})
    assert store.read_bytes("r/x", "d/b.txt", purpose="audit", run_id="run-9") == b"beta"
    store.export("r/x", tmp_path / "out")
    assert (tmp_path / "out" / "d" / "b.txt").read_bytes() == b"beta"
    retrievals = [e for e in store.events() if e.event.event_type == "PackageRetrieved"]
    assert [(r.event.path, r.event.purpose, r.event.run_id) for r in retrievals] == [  # type: ignore[attr-defined]
        ("d/b.txt", "audit", "run-9"),
        (None, None, None),
    ]
    count = event_count(store)
    assert store.read_bytes(package.id, "a.txt", record=False) == b"alpha"
    assert store.get(package.id, record=False) == package
    assert event_count(store) == count


def test_export_refuses_to_overwrite_unless_forced(store: ArtifactStore, tmp_path: Path) -> None:
    store.put("r/x", {"a.txt": b"new"})
    (tmp_path / "a.txt").write_bytes(b"old")
    with pytest.raises(Exception, match="already exists"):
        store.export("r/x", tmp_path)
    assert (tmp_path / "a.txt").read_bytes() == b"old"
    store.export("r/x", tmp_path, force=True)
    assert (tmp_path / "a.txt").read_bytes() == b"new"


def test_list_filters(store: ArtifactStore) -> None:
    store.put("reports/a", {"f": b"1"}, kind="report")
    store.put("reports/b", {"f": b"2"}, kind="report", retention_class="transient")
    store.put("logs/a", {"f": b"3"}, kind="log")
    store.tag("reports/b", "production")
    names = lambda **kw: [p.reference for p in store.list_packages(**kw)]  # noqa: E731
    assert names() == ["logs/a@1", "reports/a@1", "reports/b@1"]
    assert names(name_prefix="reports/") == ["reports/a@1", "reports/b@1"]
    assert names(kind="log") == ["logs/a@1"]
    assert names(tag="production") == ["reports/b@1"]
    assert names(retention_class="transient") == ["reports/b@1"]
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert names(created_after=future) == []
    assert names(created_before=future, limit=1) == ["logs/a@1"]
    assert names(name_prefix="rep_rts") == []  # '_' is literal, not a wildcard
    assert names(name="reports/a") == ["reports/a@1"]
    store.put("reports/a", {"f": b"4"}, kind="report", provenance={"run_id": "run-7"})
    assert names(run_id="run-7") == ["reports/a@2"]
    assert names(name="reports/a", run_id="other") == []


def test_tags_move_and_are_events(store: ArtifactStore) -> None:
    v1 = store.put("m/x", {"f": b"1"})
    v2 = store.put("m/x", {"f": b"2"})
    store.tag(v1.id, "production")
    assert store.describe("m/x:production").id == v1.id
    store.tag("m/x@2", "production")
    assert store.describe("m/x:production").id == v2.id
    moves = [e.event for e in store.events() if e.event.event_type == "TagMoved"]
    assert [m.previous_package_id for m in moves] == [None, str(v1.id)]  # type: ignore[attr-defined]


def test_lineage_upstream_and_downstream_with_depth(store: ArtifactStore) -> None:
    raw = store.put("raw", {"f": b"raw"})
    summary = store.put("summary", {"f": b"sum"}, inputs=[raw.reference])
    bundle = store.put("bundle", {"f": b"bun"}, inputs=["summary", str(raw.id)])
    assert set(bundle.provenance.inputs) == {str(summary.id), str(raw.id)}
    upstream = store.lineage("bundle")
    assert {(e.depth, p.name) for e, p in upstream} == {(1, "summary"), (1, "raw"), (2, "raw")}
    assert [(e.depth, p.name) for e, p in store.lineage("bundle", depth=1)] == sorted(
        [(1, "summary"), (1, "raw")], key=lambda x: str(summary.id if x[1] == "summary" else raw.id)
    )
    downstream = store.lineage("raw", downstream=True)
    assert {(e.depth, p.name) for e, p in downstream} == {
        (1, "summary"),
        (1, "bundle"),
        (2, "bundle"),
    }


def test_verify_reports_corrupt_and_missing_blobs(store: ArtifactStore) -> None:
    good = store.put("v/good", {"f": b"good bytes"})
    bad = store.put("v/bad", {"f": b"bad bytes", "g": b"gone bytes"})
    result = store.verify()
    assert result.ok and result.blobs == 3 and result.bytes_verified == 29
    local = store.blobs
    (local.root / "blake3").exists()  # layout exists
    path_bad = local.path(bad.file("f").blob.blake3)  # type: ignore[attr-defined]
    path_bad.write_bytes(b"BAD bytes")
    local.path(bad.file("g").blob.blake3).unlink()  # type: ignore[attr-defined]
    result = store.verify()
    assert not result.ok
    problems = {(p.problem, p.packages) for p in result.problems}
    assert problems == {("corrupt", ("v/bad@1",)), ("missing", ("v/bad@1",))}
    assert store.verify(good.reference).ok
    with pytest.raises(IntegrityError, match="corrupt"):
        store.read_bytes("v/bad", "f")
    with pytest.raises(MissingBlobError, match=r"v/bad@1, file 'g': .* is missing"):
        store.read_bytes("v/bad", "g")
    assert store.verify("v/bad", rehash=False).problems[0].problem == "missing"


def test_schema_validation_by_kind(store: ArtifactStore) -> None:
    store.register_schema(
        "metrics",
        {
            "type": "object",
            "required": ["accuracy"],
            "properties": {"accuracy": {"type": "number", "minimum": 0, "maximum": 1}},
        },
    )
    ok = store.put("m/run", {"f": b"1"}, kind="metrics", metadata={"accuracy": 0.9})
    assert ok.kind == "metrics"
    assert store.schemas()["metrics"]["required"] == ["accuracy"]


def test_open_with_unknown_package_id_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFoundError, match="no package matches"):
        store.describe(uuid.uuid4())
