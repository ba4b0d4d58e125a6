"""Blob layout, one pure pair of functions: ``blake3:<hex>`` ⇄ ``blake3/ab/cd/<hex>``.

Used for local paths and S3 keys alike.
"""

from __future__ import annotations

from artifactstore_core.hashing import Digest, DigestError


def key_for(address: Digest) -> str:
    """The relative key of a blob: ``<algorithm>/<hex[0:2]>/<hex[2:4]>/<hex>``."""
    return f"{address.algorithm}/{address.hex[:2]}/{address.hex[2:4]}/{address.hex}"


def address_from_key(key: str) -> Digest:
    """The digest a key names; ``DigestError`` for a key that is not a blob key."""
    parts = key.strip("/").split("/")
    if len(parts) != 4:
        raise DigestError(f"not a blob key: {key!r}")
    algorithm, first, second, hexpart = parts
    digest = Digest.parse(f"{algorithm}:{hexpart}")
    if (first, second) != (hexpart[:2], hexpart[2:4]):
        raise DigestError(f"blob key {key!r} is sharded under the wrong prefix")
    return digest
