"""The conformance suite every ``BlobStore`` passes.

Subclass ``BlobStoreContract`` in a test module and provide two fixtures: ``blob_store``
(a new, empty backend) and ``tamper`` (a function that overwrites a stored blob's bytes
behind the backend's back)::

    class TestLocal(BlobStoreContract):
        @pytest.fixture
        def blob_store(self, tmp_path): return LocalBlobStore(tmp_path)
        @pytest.fixture
        def tamper(self, blob_store): return lambda address, data: ...
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable

import pytest

from artifactstore_core.errors import IntegrityError, MissingBlobError
from artifactstore_core.hashing import BlobHash, Digest, hash_bytes
from artifactstore_core.storage.ports import BlobStore

Tamper = Callable[[Digest, bytes], None]


class BlobStoreContract:
    """Behaviour shared by every blob backend: atomic, idempotent, deduplicated, verified."""

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
