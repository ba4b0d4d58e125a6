"""The conformance suite every ``BlobStore`` passes.

Subclass ``BlobStoreContract`` in a test module, declare what the backend supports and
provide the fixtures: ``blob_store`` (a new, empty backend), ``plant`` (a function that
writes bytes at a key relative to the backend's root behind its back: a foreign object,
or a stored blob overwritten) and, for a backend with staging, ``leave_staging`` (a
function that leaves what an interrupted write leaves behind)::

    class TestLocal(BlobStoreContract):
        supports_modified_at = supports_size_of = supports_staging = True

        @pytest.fixture
        def blob_store(self, tmp_path): return LocalBlobStore(tmp_path)
        @pytest.fixture
        def plant(self, blob_store): return lambda key, data: ...
        @pytest.fixture
        def leave_staging(self, blob_store): return lambda: ...

A capability a backend lacks is declared ``False``; the suite then checks the port's
neutral answer instead (``None``, 0), never a wrong one. The registry depends on them:
the sweep ages orphaned blobs by ``modified_at`` and keeps every blob whose age is
unknown, so **a backend without ``modified_at`` never has its orphans collected**;
``size_of`` sizes the sweep's report, and ``purge_staging`` removes the leftovers of
interrupted writes.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import threading
from collections.abc import Callable
from functools import partial
from typing import BinaryIO

import pytest

from artifactstore_core.errors import IntegrityError, MissingBlobError
from artifactstore_core.hashing import BlobHash, Digest, hash_bytes
from artifactstore_core.storage.layout import key_for
from artifactstore_core.storage.ports import BlobStore, BlobWrite

Plant = Callable[[str, bytes], None]
Tamper = Callable[[Digest, bytes], None]
LeaveStaging = Callable[[], None]

#: Leeway for clocks: file systems stamp times a little behind the wall clock, S3 to the second.
CLOCK_SLACK = dt.timedelta(seconds=2)
HOUR = dt.timedelta(hours=1)


def blob_writes(*contents: bytes, stream: bool = False) -> list[BlobWrite]:
    """``BlobWrite`` items of ``contents``: re-readable with their size, or (``stream``)
    streams of unknown size that may be opened only once."""
    if stream:
        return [BlobWrite(_once(data)) for data in contents]
    return [BlobWrite(partial(io.BytesIO, data), None, len(data)) for data in contents]


def _once(data: bytes) -> Callable[[], BinaryIO]:
    opened: list[bool] = []

    def open_stream() -> BinaryIO:
        assert not opened, "a stream of unknown size was opened twice"
        opened.append(True)
        return io.BytesIO(data)

    return open_stream


class BlobStoreContract:
    """Behaviour shared by every blob backend: atomic, idempotent, deduplicated, verified."""

    #: ``modified_at`` tells when a blob was written (else ``None``: orphans never age).
    supports_modified_at: bool = True
    #: ``size_of`` tells a blob's stored size (else 0).
    supports_size_of: bool = True
    #: Writes may leave staging behind when interrupted, and ``purge_staging`` removes it
    #: (else nothing is ever staged and ``purge_staging`` returns 0).
    supports_staging: bool = True

    @pytest.fixture
    def tamper(self, plant: Plant) -> Tamper:
        """Overwrite a stored blob's bytes behind the backend's back."""
        return lambda address, data: plant(key_for(address), data)

    @pytest.fixture
    def leave_staging(self) -> LeaveStaging:
        """Leave what an interrupted write leaves; a backend with staging overrides it."""

        def unsupported() -> None:
            raise NotImplementedError(f"{type(self).__name__} declares no staging")

        return unsupported

    def test_write_returns_both_digests_and_size(self, blob_store: BlobStore) -> None:
        data = b"hello artifact-store\n"
        stored = blob_store.write(io.BytesIO(data))
        assert stored.hash == hash_bytes(data)
        assert stored.created is True
        assert stored.uri == blob_store.uri(stored.hash.blake3)

    def test_round_trip_is_verified(self, blob_store: BlobStore) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        stored = blob_store.write(io.BytesIO(data))
        with blob_store.open(stored.hash) as reader:
            assert reader.read() == data
        assert blob_store.exists(stored.hash.blake3)

    def test_empty_blob(self, blob_store: BlobStore) -> None:
        stored = blob_store.write(io.BytesIO(b""))
        assert stored.hash.size == 0
        with blob_store.open(stored.hash) as reader:
            assert reader.read() == b""

    def test_same_bytes_are_stored_once(self, blob_store: BlobStore) -> None:
        first = blob_store.write(io.BytesIO(b"same"))
        second = blob_store.write(io.BytesIO(b"same"))
        assert (first.created, second.created) == (True, False)
        assert first.hash == second.hash
        assert list(blob_store.iter_addresses()) == [first.hash.blake3]

    def test_expected_hash_mismatch_stores_nothing(self, blob_store: BlobStore) -> None:
        expected = hash_bytes(b"what we were promised")
        with pytest.raises(IntegrityError, match=expected.content_address):
            blob_store.write(io.BytesIO(b"what we got"), expected)
        assert list(blob_store.iter_addresses()) == []
        assert not blob_store.exists(hash_bytes(b"what we got").blake3)

    def test_expected_hash_match_is_accepted(self, blob_store: BlobStore) -> None:
        data = b"promised"
        assert blob_store.write(io.BytesIO(data), hash_bytes(data)).hash == hash_bytes(data)

    def test_missing_blob_is_an_integrity_failure(self, blob_store: BlobStore) -> None:
        absent = hash_bytes(b"never stored")
        assert not blob_store.exists(absent.blake3)
        with pytest.raises(MissingBlobError, match=absent.content_address):
            blob_store.open(absent)

    def test_delete_is_idempotent(self, blob_store: BlobStore) -> None:
        stored = blob_store.write(io.BytesIO(b"to delete"))
        assert blob_store.delete(stored.hash.blake3) is True
        assert blob_store.delete(stored.hash.blake3) is False
        assert not blob_store.exists(stored.hash.blake3)

    def test_tampered_bytes_fail_the_read(self, blob_store: BlobStore, tamper: Tamper) -> None:
        stored = blob_store.write(io.BytesIO(b"original bytes"))
        tamper(stored.hash.blake3, b"modified bytes")
        with pytest.raises(IntegrityError, match="corrupt"), blob_store.open(stored.hash) as r:
            r.read()

    def test_truncated_bytes_fail_the_read(self, blob_store: BlobStore, tamper: Tamper) -> None:
        stored = blob_store.write(io.BytesIO(b"original bytes"))
        tamper(stored.hash.blake3, b"original")
        with pytest.raises(IntegrityError), blob_store.open(stored.hash) as reader:
            reader.read()

    def test_concurrent_writers_of_the_same_bytes(self, blob_store: BlobStore) -> None:
        data = os.urandom(512 * 1024)
        results: list[BlobHash] = []
        errors: list[BaseException] = []

        def write() -> None:
            try:
                results.append(blob_store.write(io.BytesIO(data)).hash)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=write) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert set(results) == {hash_bytes(data)}
        with blob_store.open(hash_bytes(data)) as reader:
            assert reader.read() == data

    def test_iter_addresses_lists_every_blob(self, blob_store: BlobStore) -> None:
        written = {blob_store.write(io.BytesIO(bytes([i]) * 10)).hash.blake3 for i in range(5)}
        assert set(blob_store.iter_addresses()) == written

    def test_iter_addresses_ignores_foreign_keys(
        self, blob_store: BlobStore, plant: Plant, leave_staging: LeaveStaging
    ) -> None:
        stored = blob_store.write(io.BytesIO(b"the one blob"))
        hexpart = stored.hash.blake3.hex
        for key in (
            "README",
            "blake3/notes.txt",
            f"blake3/{hexpart[:2]}/{hexpart[2:4]}/not-a-digest",
            f"blake3/{hexpart[:2]}/{hexpart[2:4]}/{hexpart}.bak",
            f"blake3/00/00/{hash_bytes(b'wrong shard').blake3.hex}",
        ):
            plant(key, b"not a blob")
        if self.supports_staging:
            leave_staging()
        assert list(blob_store.iter_addresses()) == [stored.hash.blake3]

    def test_modified_at_is_when_the_blob_was_written(self, blob_store: BlobStore) -> None:
        before = dt.datetime.now(dt.UTC) - CLOCK_SLACK
        stored = blob_store.write(io.BytesIO(b"dated"))
        after = dt.datetime.now(dt.UTC) + CLOCK_SLACK
        written = blob_store.modified_at(stored.hash.blake3)
        if self.supports_modified_at:
            assert written is not None and written.utcoffset() == dt.timedelta(0)
            assert before <= written <= after
        else:
            assert written is None
        blob_store.delete(stored.hash.blake3)
        assert blob_store.modified_at(stored.hash.blake3) is None
        assert blob_store.modified_at(hash_bytes(b"never stored").blake3) is None

    def test_size_of_is_the_stored_size(self, blob_store: BlobStore) -> None:
        stored = blob_store.write(io.BytesIO(b"x" * 1234))
        assert blob_store.size_of(stored.hash.blake3) == (1234 if self.supports_size_of else 0)
        blob_store.delete(stored.hash.blake3)
        assert blob_store.size_of(stored.hash.blake3) == 0
        assert blob_store.size_of(hash_bytes(b"never stored").blake3) == 0

    def test_purge_staging_removes_only_older_leftovers_and_never_a_blob(
        self, blob_store: BlobStore, leave_staging: LeaveStaging
    ) -> None:
        stored = blob_store.write(io.BytesIO(b"kept"))
        now = dt.datetime.now(dt.UTC)
        if self.supports_staging:
            leave_staging()
            assert blob_store.purge_staging(now - HOUR) == 0  # younger than the cut-off
            assert blob_store.purge_staging(now + HOUR) == 1
            assert blob_store.purge_staging(now + HOUR) == 0
        else:
            assert blob_store.purge_staging(now + HOUR) == 0
        assert list(blob_store.iter_addresses()) == [stored.hash.blake3]
        with blob_store.open(stored.hash) as reader:
            assert reader.read() == b"kept"

    def test_close_is_idempotent_and_a_closed_store_reconnects(self, blob_store: BlobStore) -> None:
        stored = blob_store.write(io.BytesIO(b"before close"))
        blob_store.close()
        blob_store.close()
        with blob_store.open(stored.hash) as reader:
            assert reader.read() == b"before close"
        again = blob_store.write(io.BytesIO(b"after close"))
        assert blob_store.exists(again.hash.blake3)

    # ------------------------------------------------------------------ write_many
    def test_write_many_stores_each_item_and_answers_in_order(self, blob_store: BlobStore) -> None:
        contents = [b"", b"a", os.urandom(1000), os.urandom(300_000), os.urandom(1_200_000)]
        streams = [os.urandom(2000), os.urandom(600_000)]
        items = [*blob_writes(*contents), *blob_writes(*streams, stream=True)]
        stored = blob_store.write_many(items)
        assert [s.hash for s in stored] == [hash_bytes(d) for d in [*contents, *streams]]
        assert all(s.created for s in stored)
        assert [s.uri for s in stored] == [blob_store.uri(s.hash.blake3) for s in stored]
        for data, blob in zip([*contents, *streams], stored, strict=True):
            with blob_store.open(blob.hash) as reader:
                assert reader.read() == data
        assert blob_store.write_many([]) == []

    def test_write_many_reuses_what_is_stored_and_stores_equal_bytes_once(
        self, blob_store: BlobStore
    ) -> None:
        old = blob_store.write(io.BytesIO(b"stored before"))
        stored = blob_store.write_many(blob_writes(b"stored before", b"twice", b"twice"))
        assert stored[0] == old.__class__(old.hash, old.uri, created=False)
        assert stored[1].hash == stored[2].hash == hash_bytes(b"twice")
        assert sorted(s.created for s in stored[1:]) == [False, True]
        assert len(list(blob_store.iter_addresses())) == 2

    def test_write_many_refuses_bytes_that_do_not_match(self, blob_store: BlobStore) -> None:
        promised = hash_bytes(b"what we were promised")
        items = blob_writes(b"fine", b"what we got")
        items[1] = BlobWrite(items[1].open, promised, items[1].size_hint)
        with pytest.raises(IntegrityError, match=promised.content_address):
            blob_store.write_many(items)
        assert not blob_store.exists(hash_bytes(b"what we got").blake3)

    def test_write_many_reports_the_bytes_it_reads(self, blob_store: BlobStore) -> None:
        contents = [os.urandom(size) for size in (10, 5000, 400_000)]
        counts: list[int] = []
        lock = threading.Lock()

        def progress(count: int) -> None:
            with lock:
                counts.append(count)

        blob_store.write_many(blob_writes(*contents), progress)
        assert sum(counts) == sum(map(len, contents))
