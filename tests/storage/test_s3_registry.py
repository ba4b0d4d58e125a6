"""The registry with S3 storage (a real moto server), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from artifactstore_core import ArtifactStore, PutRequest, Settings
from artifactstore_core.errors import BackendUnavailableError, IntegrityError, MissingBlobError
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.schema import storage_locations
from artifactstore_core.storage.s3 import S3BlobStore
from artifactstore_core.testing.clock import FrozenClock
from artifactstore_core.testing.servers import (
    S3_TEST_ACCESS_KEY,
    S3_TEST_REGION,
    S3_TEST_SECRET_KEY,
    create_s3_bucket,
    s3_client,
    s3_server,
)
from tests.registry.conftest import event_count

pytestmark = [pytest.mark.s3, pytest.mark.integration]


def s3_settings(endpoint: str, **values: Any) -> Settings:
    return Settings(
        s3_endpoint_url=endpoint,
        s3_region=S3_TEST_REGION,
        s3_access_key_id=S3_TEST_ACCESS_KEY,
        s3_secret_access_key=S3_TEST_SECRET_KEY,  # type: ignore[arg-type]
        **values,
    )


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    return create_s3_bucket(s3_endpoint, f"r-{uuid.uuid4().hex[:16]}")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime.now(dt.UTC))


@pytest.fixture
def s3_store(
    database_url: str, s3_endpoint: str, bucket: str, tmp_path: Path, clock: FrozenClock
) -> Iterator[ArtifactStore]:
    settings = s3_settings(
        s3_endpoint,
        database_url=database_url,
        storage_url=f"s3://{bucket}/hot",
        tier_cold_url=f"s3://{bucket}/cold",
        gc_grace_seconds=0,
    )
    store = ArtifactStore.from_settings(settings, clock=clock)
    try:
        yield store
    finally:
        store.close()


def test_put_read_verify_on_s3(s3_store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "report.csv").write_bytes(b"a,b\n" * 1000)
    (tmp_path / "bundle" / "big.bin").write_bytes(bytes(range(256)) * 40_000)  # ~10 MB
    package = s3_store.put("s3/bundle", tmp_path / "bundle", kind="evidence")
    assert isinstance(s3_store.blobs, S3BlobStore)
    assert s3_store.read_bytes("s3/bundle", "report.csv") == b"a,b\n" * 1000
    s3_store.export("s3/bundle", tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == bytes(range(256)) * 40_000
    result = s3_store.verify(package.id)
    assert result.ok and result.bytes_verified == package.size
    uris = {
        e.event.to_payload()["uri"] for e in s3_store.events() if e.event.event_type == "BlobStored"
    }
    assert all(uri.startswith("s3://") for uri in uris)


def test_known_bytes_are_not_uploaded_again(s3_store: ArtifactStore, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"uploaded once" * 1000)
    uploads: list[str] = []
    backend = s3_store.blobs
    original = backend.write

    def counting(source: Any, expected: Any = None) -> Any:
        uploads.append("write")
        return original(source, expected)

    backend.write = counting  # type: ignore[method-assign]
    s3_store.put("dedup/a", data)
    s3_store.put("dedup/b", data)
    s3_store.put("dedup/c", {"copy.bin": data})
    assert uploads == ["write"]
    assert len([e for e in s3_store.events() if e.event.event_type == "BlobStored"]) == 1


def test_put_many_on_s3(s3_store: ArtifactStore, tmp_path: Path) -> None:
    """Blobs uploaded on threads, one transaction; bytes in the bucket are not sent again."""
    s3_store.put("many/before", {"f": b"already there"})
    packages = s3_store.put_many(
        PutRequest(f"many/{i}", {"f": b"already there", "g": f"part {i}".encode()})
        for i in range(6)
    )
    assert [p.version for p in packages] == [1] * 6
    for i, package in enumerate(packages):
        assert s3_store.read_bytes(package.reference, "g", record=False) == f"part {i}".encode()
    stored = [e for e in s3_store.events() if e.event.event_type == "BlobStored"]
    assert len(stored) == 7  # "already there" once, six parts
    assert s3_store.verify().ok
    assert s3_store.check_views() == []


def test_object_changed_in_the_bucket_is_reported(
    s3_store: ArtifactStore, s3_endpoint: str, bucket: str
) -> None:
    package = s3_store.put("s3/x", {"f": b"original"})
    blob = package.files[0].blob
    assert isinstance(s3_store.blobs, S3BlobStore)
    s3_client(s3_endpoint).put_object(
        Bucket=bucket, Key=s3_store.blobs.key(blob.blake3), Body=b"tampered"
    )
    with pytest.raises(IntegrityError, match="corrupt"):
        s3_store.read_bytes("s3/x")
    result = s3_store.verify()
    assert [(p.problem, p.content_address) for p in result.problems] == [
        ("corrupt", blob.content_address)
    ]


def test_sweep_and_tier_moves_on_s3(s3_store: ArtifactStore, clock: FrozenClock) -> None:
    s3_store.put("gone", {"f": b"temporary bytes"}, retention_class="transient")
    raw = s3_store.put("raw", {"f": b"raw bytes"}, retention_class="raw-evidence")
    s3_store.blobs.write(io.BytesIO(b"orphan upload"))  # a put that never registered
    clock.advance(dt.timedelta(days=31))
    plan = s3_store.sweep(dry_run=True).plan
    assert {d.content_address for d in plan.delete} == {
        hash_bytes(b"temporary bytes").content_address,
        hash_bytes(b"orphan upload").content_address,
    }
    assert [m.reference for m in plan.tier_moves] == ["raw@1"]
    s3_store.sweep(plan.now)
    assert not s3_store.blobs.exists(hash_bytes(b"temporary bytes").blake3)
    assert not s3_store.blobs.exists(hash_bytes(b"orphan upload").blake3)
    assert s3_store.describe(raw.id).retrieval_tier == "cold"
    assert s3_store.tiers["cold"].exists(hash_bytes(b"raw bytes").blake3)
    assert not s3_store.blobs.exists(hash_bytes(b"raw bytes").blake3)
    assert s3_store.read_bytes("raw") == b"raw bytes"
    assert s3_store.check_views() == []


def test_local_hot_tier_with_s3_cold_tier(
    database_url: str, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    settings = s3_settings(
        s3_endpoint, database_url=database_url, storage_url=str(tmp_path / "hot"),
        tier_cold_url=f"s3://{bucket}/cold",
    )  # fmt: skip
    with ArtifactStore.from_settings(settings) as store:
        store.put("mixed", {"f": b"moves to s3"})
        assert store.move_tier("mixed", "cold").retrieval_tier == "cold"
        assert isinstance(store.tiers["cold"], S3BlobStore)
        assert store.read_bytes("mixed") == b"moves to s3"
        assert not store.blobs.exists(hash_bytes(b"moves to s3").blake3)


def test_server_gone_registers_nothing(database_url: str, tmp_path: Path) -> None:
    with s3_server() as server:
        bucket = create_s3_bucket(server.endpoint_url, "short-lived")
        settings = s3_settings(server.endpoint_url, database_url=database_url,
                               storage_url=f"s3://{bucket}/hot")  # fmt: skip
        store = ArtifactStore.from_settings(settings)
        store.put("before", {"f": b"stored while up"})
        events = event_count(store)
        server.kill()
        with pytest.raises(BackendUnavailableError, match=server.endpoint_url.split("//")[1]):
            store.put("after", {"f": b"never stored"})
        assert event_count(store) == events
        assert [p.name for p in store.list_packages()] == ["before"]
        store.close()


def test_a_put_uploads_again_bytes_deleted_behind_the_registry(
    s3_store: ArtifactStore, s3_endpoint: str, bucket: str
) -> None:
    """A location row is not proof of bytes: the backend is asked, and heals by upload."""
    first = s3_store.put("oob/a", {"f": b"deleted out of band"})
    assert isinstance(s3_store.blobs, S3BlobStore)
    key = s3_store.blobs.key(first.files[0].blob.blake3)
    s3_client(s3_endpoint).delete_object(Bucket=bucket, Key=key)

    second = s3_store.put("oob/b", {"f": b"deleted out of band"})

    assert s3_store.read_bytes(second.reference) == b"deleted out of band"
    assert s3_store.read_bytes(first.reference) == b"deleted out of band"
    assert s3_store.verify().ok


def test_a_moved_storage_url_gets_the_bytes_and_old_reads_say_where_they_are(
    database_url: str, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    old = s3_settings(s3_endpoint, database_url=database_url, storage_url=f"s3://{bucket}/old")
    with ArtifactStore.from_settings(old) as store:
        store.put("moved/a", {"f": b"bytes in the old prefix"})
        only_old = store.put("moved/only-old", {"f": b"never put again"})
    new = s3_settings(s3_endpoint, database_url=database_url, storage_url=f"s3://{bucket}/new")
    with ArtifactStore.from_settings(new) as store:
        again = store.put("moved/b", {"f": b"bytes in the old prefix"})
        assert store.read_bytes(again.reference) == b"bytes in the old prefix"
        assert store.read_bytes("moved/a") == b"bytes in the old prefix"
        with pytest.raises(MissingBlobError, match=rf"moved/only-old@1.*s3://{bucket}/old/"):
            store.read_bytes(only_old.reference)
        assert store.check_views() == []


def test_a_location_left_by_a_killed_sweep_does_not_stop_the_upload(
    s3_store: ArtifactStore, s3_endpoint: str, bucket: str, clock: FrozenClock
) -> None:
    """A sweep killed between deleting the object and recording the purge leaves a row."""
    s3_store.put("gone", {"f": b"purge half done"}, retention_class="transient")
    clock.advance(dt.timedelta(days=8))
    s3_store.sweep(dry_run=False)  # expires the package and purges the blob
    assert isinstance(s3_store.blobs, S3BlobStore)
    blob = hash_bytes(b"purge half done")
    with s3_store.engine.begin() as conn:  # the row the killed sweep never removed
        conn.execute(
            sa.insert(storage_locations).values(
                content_address=blob.content_address, backend="hot",
                digest_primary=blob.blake3.hex, digest_sha256=blob.sha256.hex,
                size=blob.size, uri=s3_store.blobs.uri(blob.blake3), stored_at=clock(),
            )
        )  # fmt: skip
    package = s3_store.put("again", {"f": b"purge half done"})
    assert s3_store.read_bytes(package.reference) == b"purge half done"
