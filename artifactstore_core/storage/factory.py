"""Build a blob backend from a storage URL."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from artifactstore_core.errors import ConfigurationError
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.storage.memory import MemoryBlobStore
from artifactstore_core.storage.ports import BlobStore

if TYPE_CHECKING:
    from artifactstore_core.config import Settings

_MEMORY_STORES: dict[str, MemoryBlobStore] = {}


def open_blob_store(url: str, settings: Settings | None = None) -> BlobStore:
    """A backend for ``url``: a directory path or ``file://``, ``s3://bucket/prefix``,
    or ``memory://name`` (one shared store per name in this process)."""
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):
        fsync = settings.fsync if settings is not None else True
        return LocalBlobStore(parsed.path if scheme == "file" else url, fsync=fsync)
    if scheme == "memory":
        name = parsed.netloc or parsed.path or "default"
        return _MEMORY_STORES.setdefault(name, MemoryBlobStore(name))
    if scheme == "s3":
        from artifactstore_core.storage.s3 import S3BlobStore

        return S3BlobStore.from_url(url, settings)
    raise ConfigurationError(
        f"unsupported storage URL {url!r}; use a directory path, file://, s3:// or memory://"
    )
