"""``verify`` of many packages: what it reads from the views and what it reports, on SQLite
and PostgreSQL (its rate against ``hashlib.sha256``: ``benchmarks/bench_scale.py``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from artifactstore_core import ArtifactStore, Package, PackageFilter, PutRequest
from artifactstore_core.integrity import SMALL
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.storage.s3 import S3BlobStore
from artifactstore_core.testing.servers import create_s3_bucket, s3_client
from tests.storage.test_s3_registry import s3_settings

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


def _put(store: ArtifactStore, count: int, size: int) -> list[Path]:
    """``count`` one-file packages of ``size`` random bytes; the paths of their blobs."""
    for first in range(0, count, 250):
        store.put_many(
            PutRequest(f"many/p{i}", {"f.bin": os.urandom(size)})
            for i in range(first, min(count, first + 250))
        )
    assert isinstance(store.blobs, LocalBlobStore)
    return [p for p in (store.blobs.root / "blake3").rglob("*") if p.is_file()]


@pytest.fixture
def statements(store: ArtifactStore) -> Iterator[list[str]]:
    """The SQL statements the store's engine runs from now on."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)


def test_verify_of_every_package_reads_only_what_it_checks_in_two_queries(
    store: ArtifactStore, statements: list[str]
) -> None:
    _put(store, 600, 16)  # more packages than one IN (...) list takes
    statements.clear()
    result = store.verify()
    assert (result.ok, result.packages, result.blobs) == (True, 600, 600)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2, selects  # the packages, their files: not chunk by chunk
    for table in ("package_tags", "retention_holds", "package_attestations", "metadata"):
        assert not any(table in s for s in selects), table  # not whole packages
    by_filter = store.verify(where=PackageFilter(name_prefix="many/p1"))  # 111, by id
    assert (by_filter.ok, by_filter.packages, by_filter.blobs) == (True, 111, 111)
    named = [f"many/p{i}" for i in range(599, -1, -1)]  # two IN (...) lists, given order
    listed = store.verify(references=[*named, "many/none"])
    assert listed.references == tuple(f"{name}@1" for name in named)
    assert (listed.blobs, listed.unknown, listed.ok) == (600, ("many/none",), False)


@pytest.mark.timeout(30)  # hashing the sparse 64 GiB takes minutes; the size check, no time
def test_verify_reports_a_blob_of_the_wrong_size_without_hashing_it(
    store: ArtifactStore,
) -> None:
    package = store.put("v/sized", {"short": b"ten bytes!", "long": b"ten bytes?"})
    blobs = store.blobs
    assert isinstance(blobs, LocalBlobStore)
    blobs.path(package.file("short").blob.blake3).write_bytes(b"nine byte")
    with blobs.path(package.file("long").blob.blake3).open("ab") as grown:
        grown.truncate(64 * 1024**3)  # sparse: hashing it would take a minute
    result = store.verify()
    details = {p.content_address: p.detail for p in result.problems}
    assert [p.problem for p in result.problems] == ["corrupt", "corrupt"]
    for name, size in (("short", 9), ("long", 64 * 1024**3)):
        blob = package.file(name).blob
        assert details[blob.content_address] == (
            f"corrupt: stored blob {blob.content_address} at {blobs.uri(blob.blake3)} "
            f"has {size} bytes, expected 10"
        )


def test_verify_reports_each_problem_of_many_large_and_small_blobs(store: ArtifactStore) -> None:
    small = [store.put(f"mix/s{i}", {"f": os.urandom(100 + i)}) for i in range(40)]
    large = [store.put(f"mix/l{i}", {"f": os.urandom(SMALL + 1 + i)}) for i in range(20)]
    shared = store.put("mix/shared", {"a": store.read_bytes(large[2].reference), "b": b""})
    blobs = store.blobs
    assert isinstance(blobs, LocalBlobStore)

    def path(package: Package) -> Path:
        return blobs.path(package.files[0].blob.blake3)

    path(small[3]).unlink()
    path(large[2]).unlink()
    for package in (small[5], large[4]):  # same size, other bytes
        data = bytearray(path(package).read_bytes())
        data[-1] ^= 1
        path(package).write_bytes(bytes(data))
    with path(large[0]).open("ab") as grown:
        grown.write(b"!")
    result = store.verify()  # the large ones in two batches, on threads
    assert (result.packages, result.blobs) == (61, 61)  # shared: one blob of l2, one empty
    assert {(p.packages, p.problem) for p in result.problems} == {
        ((small[3].reference,), "missing"),
        ((large[2].reference, shared.reference), "missing"),
        ((small[5].reference,), "corrupt"),
        ((large[4].reference,), "corrupt"),
        ((large[0].reference,), "corrupt"),
    }
    broken = {3, 5} | {40 + i for i in (0, 2, 4)}
    assert result.bytes_verified == sum(
        p.size for i, p in enumerate([*small, *large]) if i not in broken
    )
    assert [p.problem for p in store.verify(rehash=False).problems] == ["missing", "missing"]


@pytest.fixture
def s3_registry(database_url: str, s3_endpoint: str) -> Iterator[ArtifactStore]:
    bucket = create_s3_bucket(s3_endpoint, f"v-{uuid.uuid4().hex[:16]}")
    settings = s3_settings(s3_endpoint, database_url=database_url, storage_url=f"s3://{bucket}/b")
    store = ArtifactStore.from_settings(settings)
    try:
        yield store
    finally:
        store.close()


@pytest.mark.s3
def test_verify_on_s3_checks_blobs_on_threads_and_reports_each_problem(
    s3_registry: ArtifactStore, s3_endpoint: str
) -> None:
    packages = s3_registry.put_many(
        PutRequest(f"s3/p{i}", {"f": os.urandom(50 + i)}) for i in range(40)
    )
    blobs = s3_registry.blobs
    assert isinstance(blobs, S3BlobStore)
    client = s3_client(s3_endpoint)

    def key(package: Package) -> str:
        return blobs.key(package.files[0].blob.blake3)

    client.delete_object(Bucket=blobs.bucket, Key=key(packages[7]))
    client.put_object(Bucket=blobs.bucket, Key=key(packages[20]), Body=b"tampered")
    client.put_object(Bucket=blobs.bucket, Key=key(packages[33]), Body=os.urandom(83))
    result = s3_registry.verify()
    assert (result.packages, result.blobs) == (40, 40)
    found = {p.packages[0]: (p.problem, p.detail) for p in result.problems}
    assert sorted(found) == sorted(packages[i].reference for i in (7, 20, 33))
    assert found[packages[7].reference] == ("missing", f"missing from {blobs.url}")
    uri = blobs.uri(packages[20].files[0].blob.blake3)
    assert found[packages[20].reference][1].endswith(f"at {uri} has 8 bytes, expected 70")
    assert "hashes to blake3:" in found[packages[33].reference][1]
    assert len(s3_registry.verify(rehash=False).problems) == 1
