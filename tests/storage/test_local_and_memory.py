"""The local and in-memory backends pass the shared conformance suite."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from artifactstore_core.errors import ConfigurationError
from artifactstore_core.storage import open_blob_store
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.storage.memory import MemoryBlobStore
from artifactstore_core.testing.blobstore_contract import (
    BlobStoreContract,
    LeaveStaging,
    Plant,
)

pytestmark = pytest.mark.integration


class TestLocalBlobStore(BlobStoreContract):
    supports_modified_at = supports_size_of = supports_staging = True

    @pytest.fixture
    def blob_store(self, tmp_path: Path) -> LocalBlobStore:
        return LocalBlobStore(tmp_path / "blobs")

    @pytest.fixture
    def plant(self, blob_store: LocalBlobStore) -> Plant:
        def write(key: str, data: bytes) -> None:
            path = blob_store.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return write

    @pytest.fixture
    def leave_staging(self, blob_store: LocalBlobStore) -> LeaveStaging:
        """The temporary file of a writer that died (its lock went with it)."""

        def leave() -> None:
            (blob_store.root / "staging").mkdir(exist_ok=True)
            (blob_store.root / "staging" / f".tmp-{os.urandom(4).hex()}").write_bytes(b"part")

        return leave

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
    supports_modified_at = supports_size_of = True
    supports_staging = False  # a write is one dict assignment: nothing is ever staged

    @pytest.fixture
    def blob_store(self) -> MemoryBlobStore:
        return MemoryBlobStore(os.urandom(4).hex())

    @pytest.fixture
    def plant(self, blob_store: MemoryBlobStore) -> Plant:
        return blob_store.blobs.__setitem__


def test_factory_picks_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(str(tmp_path)), LocalBlobStore)
    assert isinstance(open_blob_store(tmp_path.as_uri()), LocalBlobStore)
    assert open_blob_store("memory://a") is open_blob_store("memory://a")
    with pytest.raises(ConfigurationError, match="ftp://x"):
        open_blob_store("ftp://x")
