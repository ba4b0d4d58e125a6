"""``S3BlobStore``: the ``BlobStore`` port on an S3 bucket (see the package docstring)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

from artifactstore_core.errors import ConfigurationError, IntegrityError, InvalidInputError
from artifactstore_core.hashing import (
    CHUNK_SIZE,
    BlobHash,
    Digest,
    DigestError,
    DigestMismatchError,
    hash_copy,
    matches,
)
from artifactstore_core.storage.layout import address_from_key, key_for
from artifactstore_core.storage.ports import BlobStore, StoredBlob, check_staging_name
from artifactstore_core.storage.s3._client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_BLOCK_SIZE,
    DEFAULT_READ_TIMEOUT,
    S3Reader,
    filesystem_class,
    new_filesystem,
    request_bound,
)
from artifactstore_core.storage.s3._errors import Translator, error_details, precondition_failed
from artifactstore_core.storage.s3._upload import (
    DEFAULT_PART_SIZE,
    DEFAULT_PARTS_IN_FLIGHT,
    Cleanup,
    PartUpload,
    copy,
)

if TYPE_CHECKING:
    from artifactstore_core.config import Settings

# One logger for the whole adapter, as before it became a package.
log = logging.getLogger("artifactstore_core.storage.s3")

_STAGING = "staging"


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
        filesystem = filesystem_class()
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
        self._errors = Translator(bucket, self.endpoint, self.url)
        self._new_filesystem = functools.partial(
            new_filesystem,
            filesystem,
            key=access_key_id,
            secret=secret_access_key,
            endpoint_url=endpoint_url,
            region=region,
            addressing_style=addressing_style,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
            block_size=part_size,
        )
        self._fs: Any = self._new_filesystem()

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

    @property
    def filesystem(self) -> Any:
        """The ``s3fs.S3FileSystem`` this store sends its requests through, for inspection
        and instrumentation (botocore events on ``filesystem.s3.meta.events``). It is
        replaced by a fresh one when the store is closed."""
        return self._fs

    def _cleanup(self) -> Cleanup:
        """Clean-up requests after one failed write, within ``connect_timeout +
        read_timeout`` in all."""
        return Cleanup(self._fs, self.bucket, self.endpoint, self._cleanup_budget)

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
            self._errors.reraise(exc, f"opening {uri}")
        return S3Reader(handle, uri, self._errors.reraise)  # type: ignore[return-value]

    def exists(self, address: Digest) -> bool:
        self._ensure_bucket()
        return self._head(self.key(address)) is not None

    def delete(self, address: Digest) -> bool:
        self._ensure_bucket()
        key = self.key(address)
        if self._head(key) is None:
            return False
        with self._errors.translated(f"deleting {self.uri(address)}"):
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
            with self._errors.translated(
                f"aborting the multipart upload to s3://{self.bucket}/{key}"
            ):
                try:
                    self._fs.call_s3(
                        "abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                except Exception as exc:
                    if error_details(exc)[0] != "NoSuchUpload":  # else finished meanwhile
                        raise
                    continue
            removed += 1
        return removed

    def close(self) -> None:
        """Close the HTTP connections; the store reconnects if used again (through a fresh
        filesystem: s3fs has no public way to forget a closed client)."""
        creator = getattr(self._fs, "_s3creator", None)
        if creator is not None and getattr(self._fs, "_s3", None) is not None:
            with contextlib.suppress(Exception):
                self._fs.close_session(self._fs.loop, creator)
            self._fs = self._new_filesystem()

    # --- chunks of upload sessions (BlobStore.stage_chunk) ------------------------------

    def _chunk_key(self, upload: str, name: str = "") -> str:
        check_staging_name(upload, *([name] if name else []))
        return f"{self._root}uploads/{upload}/{name}"

    def stage_chunk(self, upload: str, start: int, source: BinaryIO) -> tuple[str, int]:
        """See ``BlobStore.stage_chunk``: one object, visible once its upload completes."""
        self._ensure_bucket()
        name = f"{start:016x}-{uuid.uuid4().hex[:12]}"
        key = self._chunk_key(upload, name)
        count = 0
        where = f"staging s3://{self.bucket}/{key}"
        with self._errors.translated(where):
            target = self._fs.open(self._path(key), "wb", block_size=self.part_size)
        try:
            while data := source.read(CHUNK_SIZE):
                with self._errors.translated(where):
                    target.write(data)
                count += len(data)
        except BaseException:
            # Closing would complete the upload: a partial chunk must never be visible.
            with contextlib.suppress(Exception):
                target.discard()
            target.closed = True  # discarded: its finaliser must not try to close it again
            raise
        with self._errors.translated(where):
            target.close()
        return name, count

    def open_chunk(self, upload: str, name: str) -> BinaryIO:
        self._ensure_bucket()
        key = self._chunk_key(upload, name)
        try:
            handle = self._fs.open(self._path(key), "rb", block_size=self.read_block_size)
        except FileNotFoundError:
            raise self.missing_chunk(upload, name) from None
        except Exception as exc:
            self._errors.reraise(exc, f"opening s3://{self.bucket}/{key}")
        return S3Reader(handle, f"s3://{self.bucket}/{key}", self._errors.reraise)  # type: ignore[return-value]

    def drop_upload(self, upload: str) -> None:
        self._ensure_bucket()
        for key, _ in list(self._list(self._chunk_key(upload))):
            self._delete_quietly(key)

    def iter_uploads(self) -> Iterator[tuple[str, datetime]]:
        self._ensure_bucket()
        latest: dict[str, datetime] = {}
        for key, modified in self._list(f"{self._root}uploads/"):
            upload = key[len(self._root) :].split("/")[1]
            latest[upload] = max(modified, latest.get(upload, modified))
        yield from latest.items()

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
            with self._errors.translated(
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
        with self._errors.translated(f"deleting staging object s3://{self.bucket}/{key}"):
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
        cleanup: Cleanup,
    ) -> tuple[BlobHash, bool]:
        """Stream ``source`` to ``key``; the upload completes only if it matches ``expected``.

        Returns the hash and whether the object was created (``False`` when create-only
        found it present). Any failure aborts the upload (within ``cleanup``'s budget)
        before raising.
        """
        upload = PartUpload(
            self._fs,
            self.bucket,
            key,
            part_size=self.part_size,
            parts_in_flight=self.parts_in_flight,
            conditions=self._if_none_match if create_only else {},
            translate=self._errors.reraise,
            cleanup=cleanup,
        )
        try:
            actual = hash_copy(source, upload.write)
            if expected is not None and not matches(expected, actual):
                raise self.mismatch(DigestMismatchError(expected, actual))
            return actual, upload.commit()
        except BaseException as exc:
            upload.abort(exc)
            raise

    def _publish(self, staging: str, actual: BlobHash, cleanup: Cleanup) -> StoredBlob:
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
            copy(
                self._fs,
                self.bucket,
                staging,
                key,
                actual.size,
                conditions=self._if_none_match,
                cleanup=cleanup,
            )
        except Exception as exc:
            if precondition_failed(exc):
                return StoredBlob(actual, uri, created=False)
            self._errors.reraise(exc, f"publishing {uri}")
        return StoredBlob(actual, uri, created=True)

    def _delete_quietly(self, key: str) -> None:
        try:
            self._fs.call_s3("delete_object", Bucket=self.bucket, Key=key)
        except Exception as exc:  # best effort: iter_staging finds what is left
            log.warning("could not delete staging object s3://%s/%s: %s", self.bucket, key, exc)

    # --- requests ---------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        """Check once per store that the bucket exists and the credentials are accepted."""
        if self._bucket_checked:
            return
        try:
            self._fs.call_s3("head_bucket", Bucket=self.bucket)
        except Exception as exc:
            if isinstance(exc, FileNotFoundError):
                raise self._errors.no_bucket() from exc
            self._errors.reraise(exc, "checking the bucket")
        self._bucket_checked = True

    def _head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata, or ``None`` if there is no such object."""
        try:
            result: dict[str, Any] = self._fs.call_s3("head_object", Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return None
        except Exception as exc:
            self._errors.reraise(exc, f"looking up s3://{self.bucket}/{key}")
        return result

    def _list(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """``(key, last modified)`` of every object under ``prefix``, page by page."""
        token: dict[str, str] = {}
        while True:
            with self._errors.translated(f"listing s3://{self.bucket}/{prefix}"):
                page = self._fs.call_s3(
                    "list_objects_v2", Bucket=self.bucket, Prefix=prefix, **token
                )
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"]
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}
