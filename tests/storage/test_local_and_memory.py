"""The local and in-memory backends pass the shared conformance suite."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from artifactstore_core.errors import ConfigurationError
from artifactstore_core.hashing import Digest
from artifactstore_core.storage import key_for, open_blob_store
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.storage.memory import MemoryBlobStore
from artifactstore_core.testing.blobstore_contract import BlobStoreContract, Tamper

pytestmark = pytest.mark.integration


class TestLocalBlobStore(BlobStoreContract):
    @pytest.fixture
    def blob_store(self, tmp_path: Path) -> LocalBlobStore:
        return LocalBlobStore(tmp_path / "blobs")

    @pytest.fixture
    def tamper(self, blob_store: LocalBlobStore) -> Tamper:
        def overwrite(address: Digest, data: bytes) -> None:
            blob_store.path(address).write_bytes(data)

        return overwrite

    def test_layout_is_sharded_by_digest(self, blob_store: LocalBlobStore) -> None:
        stored = blob_store.write(io.BytesIO(b"layout"))
        hexpart = stored.hash.blake3.hex
        expected = blob_store.root / "blake3" / hexpart[:2] / hexpart[2:4] / hexpart
        assert expected.read_bytes() == b"layout"

    def test_failed_write_leaves_no_temporary_file(self, blob_store: LocalBlobStore) -> None:
        class Exploding(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
                raise OSError("disk went away")

        with pytest.raises(OSError, match="disk went away"):
            blob_store.write(Exploding())  # type: ignore[arg-type]
        leftovers = [p for p in blob_store.root.rglob("*") if p.is_file()]
        assert leftovers == []

    def test_a_file_as_root_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("x")
        with pytest.raises(ConfigurationError, match="not a directory"):
            LocalBlobStore(tmp_path / "file")


class TestMemoryBlobStore(BlobStoreContract):
    @pytest.fixture
    def blob_store(self) -> MemoryBlobStore:
        return MemoryBlobStore(os.urandom(4).hex())

    @pytest.fixture
    def tamper(self, blob_store: MemoryBlobStore) -> Tamper:
        def overwrite(address: Digest, data: bytes) -> None:
            blob_store.blobs[key_for(address)] = data

        return overwrite


def test_factory_picks_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(str(tmp_path)), LocalBlobStore)
    assert isinstance(open_blob_store(tmp_path.as_uri()), LocalBlobStore)
    assert open_blob_store("memory://a") is open_blob_store("memory://a")
    with pytest.raises(ConfigurationError, match="ftp://x"):
        open_blob_store("ftp://x")
