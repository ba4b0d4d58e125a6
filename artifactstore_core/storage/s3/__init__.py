"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW), through s3fs.

Keys follow the shared layout under the URL's prefix: ``<prefix>/blake3/ab/cd/<hex>``.
A write streams the source once, hashing BLAKE3 and SHA-256 as the bytes pass into parts
that are uploaded concurrently (a few at a time, on s3fs's event loop) while the hashing goes
on, so memory stays bounded by a few parts whatever the blob's size; a stream shorter than a
part is a single PutObject. Nothing is ever visible under a content address unless it is
complete and verified:

* without an expected hash the bytes go to ``<prefix>/staging/<uuid>`` first; once the
  upload is complete and its size checked, a server-side copy publishes them under their
  address (create-only: skipped if the blob exists, ``If-None-Match: *`` on the copy) and
  the staging object is deleted;
* with an expected hash the bytes go straight to the final key, but the upload is only
  completed (``If-None-Match: *``) after the digests matched; a mismatch aborts it.

Provider errors are translated once, into the ``ArtifactStoreError`` tree, naming the
endpoint and bucket and keeping the original as ``__cause__``. Time is bounded by three
settings: an attempt waits at most ``connect_timeout`` to connect and ``read_timeout``
without progress (no byte of the request body taken, no byte of the answer); a request is
tried ``max_attempts`` times with botocore's jittered backoff (s3fs's own retry loop is
off, so the two never multiply); the clean-up after a failed write gets one more
``connect_timeout + read_timeout``. ``request_bound()`` and ``failure_bound`` give the totals.

Modules: ``_store`` (``S3BlobStore``: configuration, the port's methods, staging GC, the
write algorithms), ``_upload`` (the concurrent multipart upload, the publishing copy, the
bounded clean-up), ``_client`` (the s3fs filesystem, its time bounds, the reader) and
``_errors`` (the translation). Only the names below are public.
"""

from artifactstore_core.storage.s3._client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_BLOCK_SIZE,
    DEFAULT_READ_TIMEOUT,
    request_bound,
)
from artifactstore_core.storage.s3._store import S3BlobStore
from artifactstore_core.storage.s3._upload import DEFAULT_PART_SIZE, DEFAULT_PARTS_IN_FLIGHT

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PARTS_IN_FLIGHT",
    "DEFAULT_PART_SIZE",
    "DEFAULT_READ_BLOCK_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "S3BlobStore",
    "request_bound",
]
