"""The core pieces the HTTP gateway stands on: upload sessions staged in the blob backend,
registration from stored blobs, blob ``stat``, ranged reads and idempotency keys — on
SQLite and PostgreSQL, with blobs on the local file system and on a real S3 server."""

from __future__ import annotations

import datetime as dt
import io
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactstore_core import ArtifactStore, PutRequest, RegisterRequest
from artifactstore_core.errors import (
    BlobUnknownError,
    DigestInvalidError,
    IdempotencyConflictError,
    InvalidInputError,
    SizeInvalidError,
    UploadRangeError,
    UploadUnknownError,
)
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.testing.clock import FrozenClock
from artifactstore_core.testing.servers import create_s3_bucket
from tests.registry.conftest import event_count
from tests.storage.test_s3_registry import s3_settings

pytestmark = pytest.mark.integration

DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[ArtifactStore]:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    if request.param == "local":
        opened = ArtifactStore.open(database_url, str(tmp_path / "blobs"), clock=clock)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = create_s3_bucket(endpoint, f"u-{uuid.uuid4().hex[:16]}")
        settings = s3_settings(
            endpoint, database_url=database_url, storage_url=f"s3://{bucket}/hot"
        )
        opened = ArtifactStore.from_settings(settings, clock=clock)
    try:
        yield opened
    finally:
        opened.close()


def _clock(store: ArtifactStore) -> FrozenClock:
    assert isinstance(store.clock, FrozenClock)
    return store.clock


def _upload(store: ArtifactStore, data: bytes, chunk: int) -> str:
    session = store.uploads.open(actor="alice")
    for start in range(0, len(data), chunk):
        session = store.uploads.append(session.id, start, io.BytesIO(data[start : start + chunk]))
    assert session.received == len(data)
    return session.id


def test_a_chunked_upload_commits_one_verified_blob_that_registers(store: ArtifactStore) -> None:
    expected = hash_bytes(DATA)
    upload = _upload(store, DATA, 300_000)  # four chunks, the last one short
    status = store.uploads.status(upload)
    assert (status.state, status.received, status.actor) == ("open", len(DATA), "alice")

    blob = store.uploads.commit(
        upload, digests=[str(expected.blake3), str(expected.sha256)], size=len(DATA)
    )
    assert blob == expected
    assert store.stat(str(expected.blake3)) == expected
    assert store.stat(str(expected.sha256)) == expected  # by either digest
    assert store.uploads.status(upload).state == "committed"
    assert list(store.blobs.iter_uploads()) == []  # staging removed

    package = store.register("gw/report", {"data.bin": str(expected.sha256)}, actor="alice")
    assert package.files[0].blob == expected and package.actor == "alice"
    assert store.read_bytes("gw/report") == DATA
    assert store.verify().ok


def test_committing_twice_answers_the_same_blob_and_records_nothing_new(
    store: ArtifactStore,
) -> None:
    upload = _upload(store, DATA, len(DATA))
    first = store.uploads.commit(upload)
    events = event_count(store)
    assert store.uploads.commit(upload, digests=[str(first.blake3)], size=len(DATA)) == first
    assert event_count(store) == events
    with pytest.raises(DigestInvalidError):  # a retry must not claim other bytes
        store.uploads.commit(upload, digests=[str(hash_bytes(b"other").sha256)])


def test_a_commit_with_the_last_chunk_in_it(store: ArtifactStore) -> None:
    session = store.uploads.open(actor="bob")
    store.uploads.append(session.id, 0, io.BytesIO(DATA[:1000]))
    blob = store.uploads.commit(session.id, last=io.BytesIO(DATA[1000:]), size=len(DATA))
    assert blob == hash_bytes(DATA)


@pytest.mark.parametrize("start", [0, 999, 1001])
def test_a_chunk_with_a_gap_or_an_overlap_is_refused_and_changes_nothing(
    store: ArtifactStore, start: int
) -> None:
    session = store.uploads.open(actor="bob")
    store.uploads.append(session.id, 0, io.BytesIO(DATA[:1000]))
    with pytest.raises(UploadRangeError, match="resume at byte 1000") as caught:
        store.uploads.append(session.id, start, io.BytesIO(DATA[start : start + 10]))
    assert caught.value.received == 1000
    assert store.uploads.status(session.id).received == 1000
    blob = store.uploads.commit(session.id, last=io.BytesIO(DATA[1000:]))
    assert blob == hash_bytes(DATA)


def test_a_chunk_shorter_than_announced_leaves_the_session_where_it_was(
    store: ArtifactStore,
) -> None:
    session = store.uploads.open(actor="a")
    store.uploads.append(session.id, 0, io.BytesIO(DATA[:100]), length=100)
    with pytest.raises(SizeInvalidError):  # the connection was cut after 50 of 200 bytes
        store.uploads.append(session.id, 100, io.BytesIO(b"x" * 50), length=200)
    assert store.uploads.status(session.id).received == 100
    store.uploads.append(session.id, 100, io.BytesIO(DATA[100:]), length=len(DATA) - 100)
    assert store.uploads.commit(session.id) == hash_bytes(DATA)


def test_a_digest_or_size_mismatch_stores_and_registers_nothing(store: ArtifactStore) -> None:
    events = event_count(store)
    wrong = hash_bytes(b"something else")
    upload = _upload(store, DATA, 400_000)
    with pytest.raises(DigestInvalidError) as caught:
        store.uploads.commit(upload, digests=[str(wrong.blake3)])
    assert caught.value.expected == str(wrong.blake3)
    assert caught.value.actual == str(hash_bytes(DATA).blake3)
    with pytest.raises(UploadUnknownError):  # the session ended with the mismatch
        store.uploads.append(upload, len(DATA), io.BytesIO(b"x"))

    upload = _upload(store, DATA, 400_000)
    with pytest.raises(SizeInvalidError):
        store.uploads.commit(upload, size=len(DATA) + 1)
    assert event_count(store) == events
    assert list(store.blobs.iter_addresses()) == []
    assert list(store.blobs.iter_uploads()) == []


def test_unknown_cancelled_and_expired_sessions_are_refused(store: ArtifactStore) -> None:
    for bad in ("nope", str(uuid.uuid4()), "../../etc"):
        with pytest.raises(UploadUnknownError):
            store.uploads.status(bad)
    cancelled = store.uploads.open(actor="a")
    store.uploads.append(cancelled.id, 0, io.BytesIO(b"abc"))
    store.uploads.cancel(cancelled.id)
    with pytest.raises(UploadUnknownError, match="cancelled"):
        store.uploads.commit(cancelled.id)

    stale = store.uploads.open(actor="a")
    store.uploads.append(stale.id, 0, io.BytesIO(b"abc"))
    _clock(store).advance(store.uploads.ttl + dt.timedelta(seconds=1))
    with pytest.raises(UploadUnknownError, match="expired"):
        store.uploads.append(stale.id, 3, io.BytesIO(b"def"))


def test_the_sweep_collects_expired_sessions_and_stray_chunks(store: ArtifactStore) -> None:
    kept = store.uploads.open(actor="a")
    store.uploads.append(kept.id, 0, io.BytesIO(b"fresh"))
    _clock(store).advance(dt.timedelta(hours=1))
    stale = store.uploads.open(actor="a")
    store.uploads.append(stale.id, 0, io.BytesIO(b"stale"))
    _clock(store).advance(store.uploads.ttl - dt.timedelta(minutes=30))  # only `kept` expired

    result = store.sweep()
    assert result.uploads_collected == 1
    assert [name for name, _ in store.blobs.iter_uploads()] == [uuid.UUID(stale.id).hex]
    assert store.uploads.status(stale.id).received == 5
    with pytest.raises(UploadUnknownError):
        store.uploads.status(kept.id)


def test_sessions_continue_in_another_process_view_of_the_registry(
    store: ArtifactStore, database_url: str
) -> None:
    """A second ``ArtifactStore`` on the same database and backend (another server worker)
    continues and commits a session the first one opened."""
    session = store.uploads.open(actor="a")
    store.uploads.append(session.id, 0, io.BytesIO(DATA[:5000]))
    other = ArtifactStore(store.engine, store.blobs, clock=store.clock)
    other.uploads.append(session.id, 5000, io.BytesIO(DATA[5000:]))
    assert other.uploads.commit(session.id) == hash_bytes(DATA)
    assert store.uploads.commit(session.id) == hash_bytes(DATA)


def test_concurrent_chunks_at_the_same_offset_extend_the_session_once(
    store: ArtifactStore,
) -> None:
    session = store.uploads.open(actor="a")
    outcomes: list[object] = []

    def send(byte: bytes) -> None:
        try:
            outcomes.append(store.uploads.append(session.id, 0, io.BytesIO(byte * 100_000)))
        except UploadRangeError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=send, args=(b,)) for b in (b"a", b"b", b"c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(o, UploadRangeError) for o in outcomes) == 2
    blob = store.uploads.commit(session.id)
    assert blob.size == 100_000
    assert len(set(store.open_blob(str(blob.blake3)).read())) == 1  # one sender's bytes


def test_a_monolithic_put_blob_checks_digests(store: ArtifactStore) -> None:
    expected = hash_bytes(DATA)
    assert store.uploads.put_blob(io.BytesIO(DATA), digests=[str(expected.sha256)]) == expected
    with pytest.raises(DigestInvalidError):
        store.uploads.put_blob(io.BytesIO(b"x"), digests=[str(expected.sha256)])
    with pytest.raises(BlobUnknownError):
        store.stat(str(hash_bytes(b"x").blake3))


def test_registering_unknown_blobs_lists_them_and_registers_nothing(
    store: ArtifactStore,
) -> None:
    known = store.uploads.put_blob(io.BytesIO(b"known"))
    missing = hash_bytes(b"never uploaded")
    events = event_count(store)
    with pytest.raises(BlobUnknownError) as caught:
        store.register("gw/x", {"a": str(known.blake3), "b": str(missing.blake3)})
    assert caught.value.addresses == (str(missing.blake3),)
    with pytest.raises(InvalidInputError, match="blob digest of file 'a'"):
        store.register("gw/x", {"a": "md5:abc"})
    with pytest.raises(InvalidInputError):
        store.register("gw/x", {"../etc/passwd": str(known.blake3)})
    assert event_count(store) == events


def test_a_blob_deleted_before_registration_is_reported_unknown(store: ArtifactStore) -> None:
    blob = store.uploads.put_blob(io.BytesIO(b"soon gone"))
    store.blobs.delete(blob.blake3)
    with pytest.raises(BlobUnknownError):
        store.stat(str(blob.blake3))
    with pytest.raises(BlobUnknownError):
        store.register("gw/gone", {"f": str(blob.blake3)})


def test_an_idempotency_key_makes_a_retry_return_the_first_package(
    store: ArtifactStore,
) -> None:
    blob = store.uploads.put_blob(io.BytesIO(b"payload"))
    first = store.register("gw/idem", {"f": str(blob.blake3)}, idempotency_key="req-1")
    again = store.register("gw/idem", {"f": str(blob.blake3)}, idempotency_key="req-1")
    assert again == first and first.version == 1
    put_again = store.put("gw/idem", {"f": b"payload"}, idempotency_key="req-1")
    assert put_again.id == first.id  # the same package, whichever verb retried
    assert store.register("gw/idem", {"f": str(blob.blake3)}, idempotency_key="req-2").version == 2
    assert store.register("gw/idem", {"f": str(blob.blake3)}).version == 3  # no key: new
    with pytest.raises(IdempotencyConflictError, match="req-1"):
        store.put("gw/idem", {"f": b"other bytes"}, idempotency_key="req-1")
    assert [p.version for p in store.list_packages()] == [1, 2, 3]
    # The key survives a rebuild of the views from the log.
    store.rebuild_views()
    assert store.register("gw/idem", {"f": str(blob.blake3)}, idempotency_key="req-2").version == 2


def test_ranged_reads_of_blobs_and_package_files(store: ArtifactStore) -> None:
    package = store.put("gw/ranged", {"d.bin": DATA})
    address = str(package.files[0].blob.blake3)
    assert store.open_blob(address, start=10, end=19).read() == DATA[10:20]
    assert store.open_blob(address, start=len(DATA) - 5).read() == DATA[-5:]
    assert store.open_blob(address, end=len(DATA) + 100).read() == DATA  # clamped to the end
    with store.open_file("gw/ranged", "d.bin", start=4096, end=8191, record=False) as part:
        assert part.read() == DATA[4096:8192]
    for start, end in ((len(DATA), None), (20, 10), (-1, 5)):
        with pytest.raises(InvalidInputError, match="not satisfiable"):
            store.open_blob(address, start=start, end=end)
    assert store.open_blob(address).read() == DATA


def test_put_many_mixes_new_files_and_stored_blobs_all_or_none(store: ArtifactStore) -> None:
    stored = store.uploads.put_blob(io.BytesIO(b"uploaded earlier"))
    events = event_count(store)
    with pytest.raises(BlobUnknownError):  # checked before any byte is written
        store.put_many(
            [
                PutRequest("mix/new", {"f": b"fresh bytes"}),
                RegisterRequest("mix/old", {"f": str(hash_bytes(b"never").blake3)}),
            ]
        )
    assert event_count(store) == events
    assert {str(a) for a in store.blobs.iter_addresses()} == {str(stored.blake3)}
    made = store.put_many(
        [PutRequest("mix/new", {"f": b"fresh bytes"}), RegisterRequest("mix/old", {"f": stored})]
    )
    assert [p.reference for p in made] == ["mix/new@1", "mix/old@1"]
    assert store.read_bytes("mix/old", record=False) == b"uploaded earlier"
    assert event_count(store) == events + 3  # two registrations, one new blob location
