"""Which blobs a backend holds now, asked in parallel of remote backends (ADR-0005)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from artifactstore_core.hashing import BlobHash
from artifactstore_core.storage.ports import BlobStore

CHECK_THREADS = 4
"""Threads asking a remote backend whether it has each blob."""


def missing_from(backend: BlobStore, blobs: Iterable[BlobHash]) -> list[str]:
    """Addresses of ``blobs`` not in ``backend`` now.

    Asked under the chain lock before bytes are registered somewhere: every sweep deletion
    also happens under that lock, so what is confirmed here stays until the commit.
    """
    unique = {blob.content_address: blob.blake3 for blob in blobs}
    if not backend.hash_before_write or len(unique) < 2:
        present = [backend.exists(address) for address in unique.values()]
    else:
        with ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="blob-check") as pool:
            present = list(pool.map(backend.exists, unique.values()))
    return [address for address, ok in zip(unique, present, strict=True) if not ok]
