"""Blob storage: one small protocol, a digest-sharded layout, and its adapters."""

from artifactstore_core.storage.factory import open_blob_store
from artifactstore_core.storage.layout import address_from_key, key_for
from artifactstore_core.storage.ports import (
    HEAL_ATTEMPTS,
    WRITE_THREADS,
    BlobsGone,
    BlobStore,
    BlobWrite,
    StoredBlob,
)

__all__ = [
    "HEAL_ATTEMPTS",
    "WRITE_THREADS",
    "BlobStore",
    "BlobWrite",
    "BlobsGone",
    "StoredBlob",
    "address_from_key",
    "key_for",
    "open_blob_store",
]
