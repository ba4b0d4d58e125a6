"""Blobs in a dict: the same rules as the other backends, for tests and examples."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import threading
import uuid
from collections.abc import Iterator
from typing import BinaryIO

from artifactstore_core.hashing import (
    BlobHash,
    Digest,
    DigestError,
    DigestMismatchError,
    hash_copy,
    matches,
)
from artifactstore_core.storage.layout import address_from_key, key_for
from artifactstore_core.storage.ports import BlobStore, StoredBlob, check_staging_name


class MemoryBlobStore(BlobStore):
    """Blobs held in memory under their layout key; ``memory://<name>``."""

    def __init__(self, name: str = "default") -> None:
        self.url = f"memory://{name}"
        self.blobs: dict[str, bytes] = {}
        self.written_at: dict[str, dt.datetime] = {}
        self.chunks: dict[str, dict[str, bytes]] = {}
        self._lock = threading.Lock()

    def uri(self, address: Digest) -> str:
        return f"{self.url}/{key_for(address)}"

    def write(self, source: BinaryIO, expected: BlobHash | Digest | None = None) -> StoredBlob:
        buffer = io.BytesIO()
        actual = hash_copy(source, buffer.write)
        if expected is not None and not matches(expected, actual):
            raise self.mismatch(DigestMismatchError(expected, actual))
        key = key_for(actual.blake3)
        with self._lock:
            created = key not in self.blobs
            if created:
                self.blobs[key] = buffer.getvalue()
                self.written_at[key] = dt.datetime.now(dt.UTC)
        return StoredBlob(actual, self.uri(actual.blake3), created)

    def open_raw(self, address: Digest) -> BinaryIO:
        data = self.blobs.get(key_for(address))
        if data is None:
            raise self.missing(address)
        return io.BytesIO(data)

    def exists(self, address: Digest) -> bool:
        return key_for(address) in self.blobs

    def delete(self, address: Digest) -> bool:
        key = key_for(address)
        with self._lock:
            self.written_at.pop(key, None)
            return self.blobs.pop(key, None) is not None

    def modified_at(self, address: Digest) -> dt.datetime | None:
        return self.written_at.get(key_for(address))

    def size_of(self, address: Digest) -> int:
        return len(self.blobs.get(key_for(address), b""))

    def stage_chunk(self, upload: str, start: int, source: BinaryIO) -> tuple[str, int]:
        name = f"{start:016x}-{uuid.uuid4().hex[:12]}"
        check_staging_name(upload, name)
        data = source.read()
        with self._lock:
            self.chunks.setdefault(upload, {})[name] = data
            self.written_at[f"uploads/{upload}"] = dt.datetime.now(dt.UTC)
        return name, len(data)

    def open_chunk(self, upload: str, name: str) -> BinaryIO:
        check_staging_name(upload, name)
        data = self.chunks.get(upload, {}).get(name)
        if data is None:
            raise self.missing_chunk(upload, name)
        return io.BytesIO(data)

    def drop_upload(self, upload: str) -> None:
        check_staging_name(upload)
        with self._lock:
            self.chunks.pop(upload, None)
            self.written_at.pop(f"uploads/{upload}", None)

    def iter_uploads(self) -> Iterator[tuple[str, dt.datetime]]:
        for upload in list(self.chunks):
            yield upload, self.written_at[f"uploads/{upload}"]

    def iter_addresses(self) -> Iterator[Digest]:
        for key in list(self.blobs):
            with contextlib.suppress(DigestError):  # not a blob key
                yield address_from_key(key)
