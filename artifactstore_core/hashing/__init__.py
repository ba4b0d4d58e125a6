"""Digests and one-pass BLAKE3 + SHA-256 hashing (standard library and blake3 only)."""

from artifactstore_core.hashing.digest import BlobHash, Digest, DigestError, matches
from artifactstore_core.hashing.stream import (
    CHUNK_SIZE,
    DigestMismatchError,
    HashingWriter,
    VerifyingReader,
    hash_bytes,
    hash_copy,
)

__all__ = [
    "CHUNK_SIZE",
    "BlobHash",
    "Digest",
    "DigestError",
    "DigestMismatchError",
    "HashingWriter",
    "VerifyingReader",
    "hash_bytes",
    "hash_copy",
    "matches",
]
