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

Provider errors are translated here, once, into the ``ArtifactStoreError`` tree, naming the
endpoint and bucket and keeping the original as ``__cause__``. Time is bounded by three
settings: an attempt waits at most ``connect_timeout`` to connect and ``read_timeout``
without progress (no byte of the request body taken, no byte of the answer); a request is
tried ``max_attempts`` times with botocore's jittered backoff (s3fs's own retry loop is
off, so the two never multiply); the clean-up after a failed write gets one more
``connect_timeout + read_timeout``. ``request_bound()`` and ``failure_bound`` give the totals.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn
from urllib.parse import urlparse

from artifactstore_core.errors import (
    ArtifactStoreError,
    BackendUnavailableError,
    ConfigurationError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    MissingExtraError,
)
from artifactstore_core.hashing import (
    BlobHash,
    Digest,
    DigestError,
    DigestMismatchError,
    hash_copy,
    matches,
)
from artifactstore_core.storage.layout import address_from_key, key_for
from artifactstore_core.storage.ports import BlobStore, StoredBlob

if TYPE_CHECKING:
    from artifactstore_core.config import Settings

log = logging.getLogger(__name__)

#: Size of each uploaded part (S3 allows 10,000 parts: 156 GiB at the default).
DEFAULT_PART_SIZE = 16 * 2**20
#: Parts of one write uploaded at once. Memory per write is about one part more than this
#: (the part being filled) plus two hash chunks: 5 x 16 MiB + 8 MiB at the defaults.
DEFAULT_PARTS_IN_FLIGHT = 4
#: S3's limit on the parts of one multipart upload.
_MAX_PARTS = 10_000
#: Size of each ranged GET when reading a blob.
DEFAULT_READ_BLOCK_SIZE = 8 * 2**20
#: Seconds to wait for a TCP connection, per attempt.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds an attempt may go without progress: no byte of the body sent, none received.
DEFAULT_READ_TIMEOUT = 30.0
#: Attempts per request, first try included (botocore "standard" mode, jittered backoff).
DEFAULT_MAX_ATTEMPTS = 3
# s3fs wraps every call in a retry loop of its own, which multiplied botocore's attempts
# (2 x 3 x 30 s + backoff = the 185 s a frozen server used to take); one pass turns it off.
_S3FS_ATTEMPTS = 1
#: botocore "standard" mode waits rand(0, 1) x min(2 ** (attempt - 1), 20) s between attempts.
_MAX_BACKOFF = 20.0
#: CopyObject refuses sources above 5 GiB; larger blobs are copied in parts.
_COPY_OBJECT_LIMIT = 5 * 2**30
_COPY_PART_SIZE = 512 * 2**20
_STAGING = "staging"
#: How long an abort waits for the cancelled part uploads to stop.
_CANCEL_TIMEOUT = 30.0

_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)


class S3BlobStore(BlobStore):
    """Blobs in ``s3://<bucket>/<prefix>``, laid out as ``<prefix>/blake3/ab/cd/<hex>``."""

    hash_before_write = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        part_size: int = DEFAULT_PART_SIZE,
        parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT,
        read_block_size: int = DEFAULT_READ_BLOCK_SIZE,
        conditional_writes: bool = True,
    ) -> None:
        """Connect lazily to ``bucket``; unset options fall back to botocore's defaults
        (``AWS_*`` environment variables, shared config and credential files).

        ``conditional_writes=False`` stops sending ``If-None-Match: *`` for servers that
        reject it; an existing blob may then be overwritten with the same verified bytes.
        """
        filesystem = _filesystem_class()
        if not bucket or "/" in bucket:
            raise ConfigurationError(f"invalid S3 bucket name {bucket!r}")
        if (access_key_id is None) != (secret_access_key is None):
            given, missing = (
                ("access key id", "secret access key")
                if secret_access_key is None
                else ("secret access key", "access key id")
            )
            raise ConfigurationError(
                f"S3 credentials for bucket {bucket!r}: a {given} is set but no {missing}; "
                "set both ARTIFACTSTORE_S3_ACCESS_KEY_ID and ARTIFACTSTORE_S3_SECRET_ACCESS_KEY"
            )
        if addressing_style not in (None, "path", "virtual", "auto"):
            raise ConfigurationError(
                f"S3 addressing style must be path, virtual or auto, got {addressing_style!r}"
            )
        if part_size < 5 * 2**20:
            raise ConfigurationError(f"S3 part size must be at least 5 MiB, got {part_size}")
        if max_attempts < 1:
            raise ConfigurationError(f"S3 max_attempts must be at least 1, got {max_attempts}")
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if not value > 0:
                raise ConfigurationError(f"S3 {name} must be more than 0 s, got {value!r}")
        if parts_in_flight < 1:
            raise ConfigurationError(
                f"S3 parts_in_flight must be at least 1, got {parts_in_flight}"
            )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url
        self.endpoint = endpoint_url or "the AWS S3 endpoint"
        self.part_size = part_size
        self.parts_in_flight = parts_in_flight
        self.read_block_size = read_block_size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._bucket_checked = False
        self._if_none_match: dict[str, str] = {"IfNoneMatch": "*"} if conditional_writes else {}
        config: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retries": {"mode": "standard", "total_max_attempts": max_attempts},
            "http_session_cls": _stall_guard_session_class(),
        }
        # A custom endpoint (MinIO, Ceph, a test server) rarely has wildcard DNS.
        style = addressing_style or ("path" if endpoint_url else None)
        if style:
            config["s3"] = {"addressing_style": style}
        self._fs: Any = filesystem(
            key=access_key_id,
            secret=secret_access_key,
            endpoint_url=endpoint_url,
            client_kwargs={"region_name": region} if region else {},
            config_kwargs=config,
            default_block_size=part_size,
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        self._fs.retries = _S3FS_ATTEMPTS

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None, **options: Any) -> S3BlobStore:
        """A store for ``s3://bucket/prefix`` configured from ``settings``.

        Endpoint, region, credentials and addressing style come from the
        ``ARTIFACTSTORE_S3_*`` settings; each one unset falls back to the standard
        ``AWS_*`` environment variables; timeouts and attempts come from
        ``ARTIFACTSTORE_S3_CONNECT_TIMEOUT``, ``_READ_TIMEOUT`` and ``_MAX_ATTEMPTS``.
        ``options`` go to the constructor and win over settings (part size, ...).
        """
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc or parsed.query or parsed.fragment:
            raise ConfigurationError(
                f"S3 storage URL must look like s3://bucket/prefix, got {url!r}"
            )
        if settings is None:
            from artifactstore_core.config import load_settings

            settings = load_settings()
        secret = settings.s3_secret_access_key
        return cls(
            parsed.netloc,
            parsed.path,
            endpoint_url=settings.s3_endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL"),
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            addressing_style=settings.s3_addressing_style,
            **{
                "connect_timeout": settings.s3_connect_timeout,
                "read_timeout": settings.s3_read_timeout,
                "max_attempts": settings.s3_max_attempts,
                **options,
            },
        )

    def __repr__(self) -> str:
        return f"S3BlobStore({self.url!r}, endpoint={self.endpoint!r})"

    @property
    def request_bound(self) -> float:
        """Most seconds one request takes against a frozen or refusing server."""
        return request_bound(self.connect_timeout, self.read_timeout, self.max_attempts)

    @property
    def failure_bound(self) -> float:
        """Most seconds from the moment the server freezes or dies until a call fails:
        the failing request, then the clean-up budget (``connect_timeout + read_timeout``)."""
        return self.request_bound + self._cleanup_budget

    @property
    def _cleanup_budget(self) -> float:
        return self.connect_timeout + self.read_timeout

    def _cleanup(self) -> _Cleanup:
        """Clean-up requests for one write, within one budget."""
        return _Cleanup(self._fs, self.bucket, self.endpoint, self._cleanup_budget)

    # --- keys -------------------------------------------------------------------------

    def key(self, address: Digest) -> str:
        """The object key of a blob: ``<prefix>/blake3/ab/cd/<hex>``."""
        return f"{self._root}{key_for(address)}"

    def uri(self, address: Digest) -> str:
        return f"s3://{self.bucket}/{self.key(address)}"

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    # --- the BlobStore protocol -------------------------------------------------------

    def write(self, source: BinaryIO, expected: BlobHash | Digest | None = None) -> StoredBlob:
        self._ensure_bucket()
        if expected is not None:
            address = expected.blake3 if isinstance(expected, BlobHash) else expected
            if address.algorithm == "blake3":
                return self._write_expected(source, address, expected)
        # The address is known only once every byte is hashed: stage, then publish.
        staging = f"{self._root}{_STAGING}/{uuid.uuid4().hex}"
        cleanup = self._cleanup()
        try:
            actual, _ = self._upload(
                source, staging, expected=expected, create_only=False, cleanup=cleanup
            )
            stored = self._publish(staging, actual, cleanup)
        except BaseException as exc:
            cleanup.call(
                exc, f"delete staging object s3://{self.bucket}/{staging}",
                "delete_object", Key=staging,
            )  # fmt: skip
            raise
        self._delete_quietly(staging)
        return stored

    def open_raw(self, address: Digest) -> BinaryIO:
        self._ensure_bucket()
        uri = self.uri(address)
        try:
            handle = self._fs.open(
                self._path(self.key(address)), "rb", block_size=self.read_block_size
            )
        except FileNotFoundError:
            raise self.missing(address) from None
        except Exception as exc:
            self._reraise(exc, f"opening {uri}")
        return _S3Reader(handle, uri, self._reraise)  # type: ignore[return-value]

    def exists(self, address: Digest) -> bool:
        self._ensure_bucket()
        return self._head(self.key(address)) is not None

    def delete(self, address: Digest) -> bool:
        self._ensure_bucket()
        key = self.key(address)
        if self._head(key) is None:
            return False
        with self._translated(f"deleting {self.uri(address)}"):
            self._fs.call_s3("delete_object", Bucket=self.bucket, Key=key)
        return True

    def iter_addresses(self) -> Iterator[Digest]:
        self._ensure_bucket()
        for key, _ in self._list(f"{self._root}blake3/"):
            with contextlib.suppress(DigestError):
                yield address_from_key(key[len(self._root) :])

    def modified_at(self, address: Digest) -> datetime | None:
        head = self._head(self.key(address))
        return None if head is None else head.get("LastModified")

    def size_of(self, address: Digest) -> int:
        head = self._head(self.key(address))
        return 0 if head is None else int(head.get("ContentLength", 0))

    def purge_staging(self, older_than: datetime) -> int:
        """Delete staging objects and abort unfinished multipart uploads (of this store's
        blob and staging keys) from before ``older_than``; how many were removed."""
        removed = 0
        for key in list(self.iter_staging(older_than)):
            self.delete_staging(key)
            removed += 1
        for key, upload_id in list(self.iter_unfinished_uploads(older_than)):
            with self._translated(f"aborting the multipart upload to s3://{self.bucket}/{key}"):
                try:
                    self._fs.call_s3(
                        "abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                except Exception as exc:
                    if _error_details(exc)[0] != "NoSuchUpload":  # else finished meanwhile
                        raise
                    continue
            removed += 1
        return removed

    def close(self) -> None:
        """Close the HTTP connections; the store reconnects if used again."""
        creator = getattr(self._fs, "_s3creator", None)
        if creator is not None and getattr(self._fs, "_s3", None) is not None:
            with contextlib.suppress(Exception):
                self._fs.close_session(self._fs.loop, creator)
            self._fs._s3 = None  # noqa: SLF001 (s3fs has no public way to drop its client)

    # --- staging objects, for garbage collection --------------------------------------

    def iter_staging(self, older_than: datetime) -> Iterator[str]:
        """Keys of staging objects last modified before ``older_than`` (timezone-aware).

        Staging objects are left behind only by writers that died between upload and
        clean-up; pass each key to ``delete_staging``.
        """
        if older_than.tzinfo is None:
            raise InvalidInputError(
                f"older_than must be timezone-aware (S3 reports UTC), got {older_than!r}"
            )
        self._ensure_bucket()
        for key, modified in self._list(f"{self._root}{_STAGING}/"):
            if modified < older_than:
                yield key

    def iter_unfinished_uploads(self, older_than: datetime) -> Iterator[tuple[str, str]]:
        """``(key, upload id)`` of multipart uploads to this store's keys (blobs and staging
        objects) started before ``older_than`` and never completed nor aborted: left by
        writers killed mid-upload, or whose abort failed. Other keys under the prefix are
        not the store's and are left alone."""
        if older_than.tzinfo is None:
            raise InvalidInputError(
                f"older_than must be timezone-aware (S3 reports UTC), got {older_than!r}"
            )
        self._ensure_bucket()
        markers: dict[str, str] = {}
        while True:
            with self._translated(
                f"listing multipart uploads under s3://{self.bucket}/{self._root}"
            ):
                page = self._fs.call_s3(
                    "list_multipart_uploads", Bucket=self.bucket, Prefix=self._root, **markers
                )
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < older_than and self._is_own_key(upload["Key"]):
                    yield upload["Key"], upload["UploadId"]
            if not page.get("IsTruncated"):
                return
            markers = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }

    def _is_own_key(self, key: str) -> bool:
        """Whether ``key`` is a blob or staging key of this store."""
        rest = key[len(self._root) :] if key.startswith(self._root) else None
        if rest is None:
            return False
        if rest.startswith(f"{_STAGING}/"):
            return "/" not in rest[len(_STAGING) + 1 :]
        try:
            address_from_key(rest)
        except DigestError:
            return False
        return True

    def delete_staging(self, key: str) -> None:
        """Delete one staging object by key (as ``iter_staging`` yields it)."""
        staging = f"{self._root}{_STAGING}/"
        if not key.startswith(staging) or "/" in key[len(staging) :]:
            raise InvalidInputError(f"{key!r} is not a staging key of {self.url}")
        with self._translated(f"deleting staging object s3://{self.bucket}/{key}"):
            self._fs.call_s3("delete_object", Bucket=self.bucket, Key=key)

    # --- writing ----------------------------------------------------------------------

    def _write_expected(
        self, source: BinaryIO, address: Digest, expected: BlobHash | Digest
    ) -> StoredBlob:
        """Upload straight to the blob's key, completing it only if the bytes match."""
        key = self.key(address)
        uri = self.uri(address)
        if self._head(key) is not None:
            # Stored already: check the caller's bytes without sending them again.
            actual = hash_copy(source)
            if not matches(expected, actual):
                raise self.mismatch(DigestMismatchError(expected, actual))
            return StoredBlob(actual, uri, created=False)
        actual, created = self._upload(
            source, key, expected=expected, create_only=True, cleanup=self._cleanup()
        )
        return StoredBlob(actual, uri, created)

    def _upload(
        self,
        source: BinaryIO,
        key: str,
        *,
        expected: BlobHash | Digest | None,
        create_only: bool,
        cleanup: _Cleanup,
    ) -> tuple[BlobHash, bool]:
        """Stream ``source`` to ``key``; the upload completes only if it matches ``expected``.

        Returns the hash and whether the object was created (``False`` when create-only
        found it present). Any failure aborts the upload (within ``cleanup``'s budget)
        before raising.
        """
        upload = _PartUpload(
            self._fs, self.bucket, key,
            part_size=self.part_size, parts_in_flight=self.parts_in_flight,
            conditions=self._if_none_match if create_only else {},
            reraise=self._reraise, cleanup=cleanup,
        )  # fmt: skip
        try:
            actual = hash_copy(source, upload.write)
            if expected is not None and not matches(expected, actual):
                raise self.mismatch(DigestMismatchError(expected, actual))
            return actual, upload.commit()
        except BaseException as exc:
            upload.abort(exc)
            raise

    def _publish(self, staging: str, actual: BlobHash, cleanup: _Cleanup) -> StoredBlob:
        """Copy a complete staging object to its content address, unless already there."""
        key = self.key(actual.blake3)
        uri = self.uri(actual.blake3)
        head = self._head(staging)
        size = None if head is None else head.get("ContentLength")
        if size != actual.size:
            raise IntegrityError(
                f"upload to s3://{self.bucket}/{staging} holds {size} bytes after sending "
                f"{actual.size}; refusing to publish {actual.content_address}"
            )
        if self._head(key) is not None:
            return StoredBlob(actual, uri, created=False)
        try:
            if actual.size <= _COPY_OBJECT_LIMIT:
                self._fs.call_s3(
                    "copy_object",
                    Bucket=self.bucket,
                    Key=key,
                    CopySource={"Bucket": self.bucket, "Key": staging},
                    **self._if_none_match,
                )
            else:
                self._copy_in_parts(staging, key, actual.size, cleanup)
        except Exception as exc:
            if _precondition_failed(exc):
                return StoredBlob(actual, uri, created=False)
            self._reraise(exc, f"publishing {uri}")
        return StoredBlob(actual, uri, created=True)

    def _copy_in_parts(self, source_key: str, key: str, size: int, cleanup: _Cleanup) -> None:
        """Server-side multipart copy (for sources above CopyObject's 5 GiB limit)."""
        call = self._fs.call_s3
        upload = call("create_multipart_upload", Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, _COPY_PART_SIZE), start=1):
                end = min(start + _COPY_PART_SIZE, size) - 1
                result = call(
                    "upload_part_copy",
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source_key},
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
            call(
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
                **self._if_none_match,
            )
        except BaseException as exc:
            cleanup.call(
                exc, f"abort the copy to s3://{self.bucket}/{key}",
                "abort_multipart_upload", Key=key, UploadId=upload,
            )  # fmt: skip
            raise

    def _delete_quietly(self, key: str) -> None:
        try:
            self._fs.call_s3("delete_object", Bucket=self.bucket, Key=key)
        except Exception as exc:  # best effort: iter_staging finds what is left
            log.warning("could not delete staging object s3://%s/%s: %s", self.bucket, key, exc)

    # --- requests and error translation -----------------------------------------------

    def _ensure_bucket(self) -> None:
        """Check once per store that the bucket exists and the credentials are accepted."""
        if self._bucket_checked:
            return
        try:
            self._fs.call_s3("head_bucket", Bucket=self.bucket)
        except Exception as exc:
            if isinstance(exc, FileNotFoundError):
                raise self._no_bucket() from exc
            self._reraise(exc, "checking the bucket")
        self._bucket_checked = True

    def _head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata, or ``None`` if there is no such object."""
        try:
            result: dict[str, Any] = self._fs.call_s3("head_object", Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return None
        except Exception as exc:
            self._reraise(exc, f"looking up s3://{self.bucket}/{key}")
        return result

    def _list(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """``(key, last modified)`` of every object under ``prefix``, page by page."""
        token: dict[str, str] = {}
        while True:
            with self._translated(f"listing s3://{self.bucket}/{prefix}"):
                page = self._fs.call_s3(
                    "list_objects_v2", Bucket=self.bucket, Prefix=prefix, **token
                )
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"]
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self._reraise(exc, action)

    def _reraise(self, exc: Exception, action: str) -> NoReturn:
        """Raise ``exc`` translated if it is a provider error, else unchanged."""
        if isinstance(exc, ArtifactStoreError) or not isinstance(exc, _provider_errors()):
            raise exc
        raise self._translate(exc, action) from exc

    def _no_bucket(self) -> ConfigurationError:
        return ConfigurationError(
            f"S3 bucket {self.bucket!r} does not exist at {self.endpoint}; create it, or "
            f"correct the storage URL {self.url!r} or ARTIFACTSTORE_S3_ENDPOINT_URL"
        )

    def _translate(self, exc: BaseException, action: str) -> ArtifactStoreError:
        """The ``ArtifactStoreError`` for a provider error (the caller chains ``exc``)."""
        code, status, message = _error_details(exc)
        where = f"S3 bucket {self.bucket!r} at {self.endpoint}"
        if code == "NoSuchBucket":
            return self._no_bucket()
        if code in _AUTH_CODES or status in (401, 403) or _is_credentials_error(exc):
            return BackendUnavailableError(
                f"{where} refused access while {action} ({message}); check the credentials "
                "(ARTIFACTSTORE_S3_ACCESS_KEY_ID / ARTIFACTSTORE_S3_SECRET_ACCESS_KEY or the "
                "AWS_* variables) and their permissions on the bucket"
            )
        if code == "ConditionalRequestConflict":
            return ConflictError(f"{where}: a concurrent write conflicted while {action}; retry")
        if _is_connection_failure(exc):
            return BackendUnavailableError(f"cannot connect to {where} while {action}: {message}")
        if _is_timeout(exc):
            return BackendUnavailableError(
                f"{where} did not answer in time while {action}: {message}"
            )
        return BackendUnavailableError(f"{where} failed while {action}: {message}")


class _PartUpload:
    """One upload of a stream to ``key``, fed chunk by chunk; nothing is visible before
    ``commit()``.

    The bytes are buffered into parts of ``part_size``. A stream that fits in one part
    is sent by ``commit()`` as a single PutObject. A longer one becomes a multipart upload:
    each full part is uploaded by a task on s3fs's event loop while the caller goes on
    reading and hashing, at most ``parts_in_flight`` at once (``write`` waits for one
    to finish beyond that). ``commit()`` waits for the last parts, then sends
    CompleteMultipartUpload; ``abort()`` cancels the parts in flight, waits for them to stop
    and aborts the multipart upload.

    Parts go through botocore directly, not s3fs's ``_call_s3``: botocore rewinds the body
    before each of its retries, whereas s3fs's retry loop would resend a body from wherever
    the failed attempt left it (for a file-like body, the end: an empty part).
    """

    def __init__(
        self,
        fs: Any,
        bucket: str,
        key: str,
        *,
        part_size: int,
        parts_in_flight: int,
        conditions: dict[str, str],
        reraise: Callable[[Exception, str], NoReturn],
        cleanup: _Cleanup,
    ) -> None:
        """An upload through the s3fs filesystem ``fs``; ``conditions`` go with the request
        that completes it (create-only: ``IfNoneMatch``), ``reraise`` translates provider
        errors, and ``cleanup`` sends the abort after a failure."""
        self._fs = fs
        self._bucket = bucket
        self._key = key
        self._target = f"s3://{bucket}/{key}"
        self._part_size = part_size
        self._parts_in_flight = parts_in_flight
        self._conditions = conditions
        self._reraise = reraise
        self._cleanup = cleanup
        self._buffer = io.BytesIO()
        self._upload_id: str | None = None
        self._parts = 0  # parts handed to the event loop so far
        self._etags: dict[int, str] = {}
        self._pending: dict[concurrent.futures.Future[str], int] = {}
        self._tasks: set[asyncio.Task[str]] = set()  # used on the event loop only

    def write(self, chunk: memoryview) -> None:
        """Add ``chunk`` to the current part; a full part is sent once more bytes follow."""
        size = self._part_size
        while len(chunk):
            if self._buffer.tell() >= size:
                self._send_part()
            room = size - self._buffer.tell()
            self._buffer.write(chunk[:room])
            chunk = chunk[room:]

    def commit(self) -> bool:
        """Complete the upload; ``False`` if create-only found the object present."""
        request: dict[str, Any]
        if self._upload_id is None:
            method, request = "put_object", {"Body": self._buffer.getvalue()}
            self._buffer = io.BytesIO()
        else:
            if self._buffer.tell():
                self._send_part()  # the last, possibly shorter part
            while self._pending:
                self._collect(block=True)
            parts = [{"PartNumber": n, "ETag": self._etags[n]} for n in range(1, self._parts + 1)]
            method = "complete_multipart_upload"
            request = {"UploadId": self._upload_id, "MultipartUpload": {"Parts": parts}}
        try:
            self._fs.call_s3(
                method, Bucket=self._bucket, Key=self._key, **request, **self._conditions
            )
        except Exception as exc:
            if self._conditions and _precondition_failed(exc):
                self.abort()
                return False
            self._reraise(exc, f"completing the upload to {self._target}")
        self._upload_id = None  # complete: nothing left to abort
        return True

    def abort(self, error: BaseException | None = None) -> None:
        """Cancel the parts in flight and abort the multipart upload (best effort: what is
        left, the sweep aborts later). After a failure (``error``) the abort runs within
        the clean-up budget and its own failure is logged and noted on ``error``."""
        self._buffer = io.BytesIO()
        if self._pending:
            waiting = asyncio.run_coroutine_threadsafe(self._cancel_tasks(), self._fs.loop)
            try:
                waiting.result(_CANCEL_TIMEOUT)
            except Exception as exc:
                log.warning("could not cancel the upload of parts to %s: %s", self._target, exc)
            self._pending.clear()
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        self._cleanup.call(
            error, f"abort the multipart upload to {self._target}",
            "abort_multipart_upload", Key=self._key, UploadId=upload_id,
        )  # fmt: skip

    # --- in the calling thread ------------------------------------------------------------

    def _send_part(self) -> None:
        """Hand the current part to the event loop once fewer than the limit are in flight."""
        if self._parts == _MAX_PARTS:
            raise InvalidInputError(
                f"the upload to {self._target} needs more than {_MAX_PARTS} parts of "
                f"{self._part_size} bytes; configure a larger part_size"
            )
        if self._upload_id is None:
            try:
                started = self._fs.call_s3(
                    "create_multipart_upload", Bucket=self._bucket, Key=self._key
                )
            except Exception as exc:
                self._reraise(exc, f"starting an upload to {self._target}")
            self._upload_id = str(started["UploadId"])
        self._collect(block=False)  # a failed part stops the write as soon as it is seen
        while len(self._pending) >= self._parts_in_flight:
            self._collect(block=True)
        body, self._buffer = self._buffer, io.BytesIO()
        body.seek(0)
        self._parts += 1
        self._pending[self._submit(self._send(self._parts, self._upload_id, body))] = self._parts

    def _collect(self, *, block: bool) -> None:
        """Record the parts that are done, first waiting for one if ``block``; a part that
        failed raises its (translated) error."""
        if block:
            concurrent.futures.wait(self._pending, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in [future for future in self._pending if future.done()]:
            number = self._pending.pop(future)
            try:
                self._etags[number] = future.result()
            except Exception as exc:
                self._reraise(exc, f"uploading part {number} to {self._target}")

    def _submit(self, work: Coroutine[Any, Any, str]) -> concurrent.futures.Future[str]:
        """Run ``work`` as a task on the event loop, kept track of for ``abort()``."""
        loop = self._fs.loop
        future: concurrent.futures.Future[str] = concurrent.futures.Future()

        def finished(task: asyncio.Task[str]) -> None:
            self._tasks.discard(task)
            if task.cancelled():
                future.cancel()
            elif (error := task.exception()) is not None:
                future.set_exception(error)
            else:
                future.set_result(task.result())

        def start() -> None:
            task = loop.create_task(work)
            self._tasks.add(task)
            task.add_done_callback(finished)

        try:
            loop.call_soon_threadsafe(start)
        except BaseException:
            work.close()
            raise
        return future

    # --- on the event loop ----------------------------------------------------------------

    async def _send(self, number: int, upload_id: str, body: io.BytesIO) -> str:
        """Upload one part; its ETag."""
        try:
            response = await self._upload_part(number, upload_id, body)
            return str(response["ETag"])
        finally:
            body.close()  # frees the part's bytes at once

    async def _upload_part(self, number: int, upload_id: str, body: io.BytesIO) -> Any:
        await self._fs.set_session()
        client = await self._fs.get_s3(self._bucket)
        return await client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _S3Reader(io.RawIOBase):
    """An s3fs file whose provider errors are translated as they surface."""

    def __init__(
        self, handle: Any, uri: str, reraise: Callable[[Exception, str], NoReturn]
    ) -> None:
        super().__init__()
        self._handle = handle
        self._uri = uri
        self._reraise = reraise

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self._handle.read(size)
        except Exception as exc:
            if type(exc).__name__ == "FileExpired":
                raise IntegrityError(
                    f"blob {self._uri} was replaced while it was being read"
                ) from exc
            self._reraise(exc, f"reading {self._uri}")
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._handle.close()
        finally:
            super().close()


class _Cleanup:
    """Best-effort clean-up requests after one failed write, all within one time budget
    (``connect_timeout + read_timeout``) so that the failure is reported in bounded time.

    A clean-up that fails is logged and noted on the original error (``add_note``); the
    error's message stays the original one. What is left, the sweep removes later.
    """

    def __init__(self, fs: Any, bucket: str, endpoint: str, budget: float) -> None:
        self._fs = fs
        self._bucket = bucket
        self._endpoint = endpoint
        self._budget = budget
        self._deadline: float | None = None  # set by the first clean-up request

    def call(self, error: BaseException | None, what: str, method: str, **kwargs: Any) -> None:
        """Send ``method`` (on the bucket) to ``what`` (for messages)."""
        from fsspec.asyn import sync

        if error is None:  # not after a failure: an ordinary request
            timeout = None
        else:
            if self._deadline is None:
                self._deadline = time.monotonic() + self._budget
            timeout = self._deadline - time.monotonic()
        try:
            if timeout is not None and timeout <= 0:
                raise TimeoutError("no time left for clean-up")
            # s3fs's coroutine: its public sync wrapper takes no timeout.
            call_s3 = self._fs._call_s3  # noqa: SLF001
            sync(self._fs.loop, call_s3, method, timeout=timeout, Bucket=self._bucket, **kwargs)
        except Exception as exc:
            if method == "abort_multipart_upload" and _error_details(exc)[0] == "NoSuchUpload":
                return  # gone already (completed or aborted)
            detail = (
                f"no answer within {self._budget:g} s"
                if isinstance(exc, TimeoutError) and not str(exc)
                else _error_details(exc)[2]
            )
            log.warning("could not %s at %s: %s", what, self._endpoint, detail)
            if error is not None:
                error.add_note(f"could not {what}: {detail}")


_FILESYSTEM: list[type] = []


def _filesystem_class() -> type:
    """``s3fs.S3FileSystem``, imported lazily."""
    if _FILESYSTEM:
        return _FILESYSTEM[0]
    try:
        import s3fs
    except ImportError as exc:
        raise MissingExtraError("the S3 storage backend", "s3", "s3fs") from exc
    filesystem: type = s3fs.S3FileSystem
    _FILESYSTEM.append(filesystem)
    return filesystem


_SESSION: list[type] = []


def _stall_guard_session_class() -> type:
    """aiobotocore's HTTP session, with a read timeout that also covers sending a body.

    aiohttp starts its socket read timeout only once the whole request body is written, so
    an upload to a server that stopped reading (its TCP window full) would wait forever.
    Here an attempt whose seekable body has not moved for ``read_timeout`` seconds fails
    with botocore's ``ReadTimeoutError``, which botocore retries like any other timeout.
    """
    if _SESSION:
        return _SESSION[0]
    from aiobotocore.httpsession import AIOHTTPSession  # type: ignore[import-untyped]
    from botocore.exceptions import ReadTimeoutError  # type: ignore[import-untyped]

    class StallGuardSession(AIOHTTPSession):  # type: ignore[misc]
        async def send(self, request: Any) -> Any:
            body = request.body
            timeout = self._get_request_timeout(request) or self._timeout
            limit = timeout.sock_read
            if not limit or not isinstance(body, io.IOBase) or not body.seekable():
                return await super().send(request)
            task = asyncio.ensure_future(super().send(request))
            mark, since = _position(body), time.monotonic()
            try:
                while True:
                    wait = since + limit - time.monotonic()
                    done, _ = await asyncio.wait({task}, timeout=max(wait, 0.0))
                    if done:
                        return task.result()
                    position = _position(body)
                    if position != mark:
                        mark, since = position, time.monotonic()
                    elif time.monotonic() - since >= limit:
                        raise ReadTimeoutError(
                            endpoint_url=request.url,
                            error=f"the request body did not move for {limit} s",
                        )
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.wait({task})

    _SESSION.append(StallGuardSession)
    return StallGuardSession


def _position(body: io.IOBase) -> int | None:
    try:
        return body.tell()
    except (ValueError, OSError):  # closed
        return None


def request_bound(connect_timeout: float, read_timeout: float, max_attempts: int) -> float:
    """Most seconds one request takes when the server is frozen (accepts connections,
    never answers) or refuses them: ``max_attempts x (connect_timeout + read_timeout)``
    plus botocore's backoff, at most ``min(2 ** (i - 1), 20)`` s before attempt ``i + 1``."""
    backoff = sum(min(2.0**i, _MAX_BACKOFF) for i in range(max_attempts - 1))
    return max_attempts * (connect_timeout + read_timeout) + backoff


def _provider_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the storage service failed (not a bug in the caller)."""
    import aiohttp
    import botocore.exceptions  # type: ignore[import-untyped]

    return (
        OSError,
        aiohttp.ClientError,
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _error_details(exc: BaseException) -> tuple[str | None, int | None, str]:
    """The S3 error code, HTTP status and a one-line message found along ``exc``'s chain."""
    for error in _chain(exc):
        response = getattr(error, "response", None)
        if isinstance(response, dict) and "Error" in response:
            code = response["Error"].get("Code")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            text = response["Error"].get("Message") or code
            return code, status, f"{code}: {text}" if text != code else str(code)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return None, None, f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _precondition_failed(exc: BaseException) -> bool:
    """Whether a create-only write failed because the object exists already."""
    if isinstance(exc, FileExistsError):
        return True
    code, status, _ = _error_details(exc)
    return code in ("PreconditionFailed", "412") or status == 412


def _is_credentials_error(exc: BaseException) -> bool:
    names = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
    return any(
        isinstance(error, PermissionError) or type(error).__name__ in names for error in _chain(exc)
    )


def _is_connection_failure(exc: BaseException) -> bool:
    names = {"EndpointConnectionError", "ClientConnectorError", "ProxyConnectionError"}
    return any(
        isinstance(error, ConnectionRefusedError) or type(error).__name__ in names
        for error in _chain(exc)
    )


def _is_timeout(exc: BaseException) -> bool:
    return any(
        isinstance(error, TimeoutError) or "Timeout" in type(error).__name__
        for error in _chain(exc)
    )
