"""Blob uploads over HTTP: monolithic for small blobs, resumable sessions for the rest.

A session (``POST /v1/blobs/uploads``) takes chunks in order (``PATCH`` with
``Content-Range: <start>-<end>``); after any failure the client asks the server where the
upload stands (``GET``) and continues from there, so a cut connection costs at most the
chunk in flight. The closing ``PUT ?digest=…`` is idempotent on the server; when it still
fails (the commit took longer than the connection lived, jib#4301), the client asks
whether the blob is now stored (``HEAD /v1/blobs/{digest}``) before giving up.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import BinaryIO

from artifactstore_core.client._transport import Transport, retry_after, utcnow
from artifactstore_core.errors import (
    BackendUnavailableError,
    BlobUnknownError,
    IntegrityError,
    InvalidInputError,
    UploadRangeError,
    UploadUnknownError,
)
from artifactstore_core.hashing import BlobHash, Digest, HashingWriter, hash_bytes

UPLOADS = "/v1/blobs/uploads"
CHUNK_SIZE = 8 * 1024 * 1024
SINGLE_PUT_BYTES = 8 * 1024 * 1024
COMMIT_TIMEOUT = 3600.0

Progress = Callable[[int], None] | None


class Uploads:
    """Upload sessions and monolithic uploads of one server."""

    def __init__(
        self,
        transport: Transport,
        *,
        chunk_size: int = CHUNK_SIZE,
        single_put_bytes: int = SINGLE_PUT_BYTES,
    ) -> None:
        if chunk_size < 1:
            raise InvalidInputError(f"chunk size must be at least 1 byte, got {chunk_size}")
        self.transport = transport
        self.chunk_size = chunk_size
        self.single_put_bytes = single_put_bytes

    # ------------------------------------------------------------------ sessions
    def open(self) -> str:
        """Open an upload session; returns its id."""
        response = self.transport.request("POST", UPLOADS, idempotent=False)
        minimum = response.headers.get("Upload-Min-Chunk") or response.headers.get(
            "OCI-Chunk-Min-Length"
        )
        if minimum and minimum.isdigit() and int(minimum) > self.chunk_size:
            self.chunk_size = int(minimum)
        location: str = response.headers.get("Location", "")
        upload_id: str = location.rstrip("/").rpartition("/")[2]
        if not upload_id:
            raise IntegrityError(f"server answered an upload without a Location: {location!r}")
        return upload_id

    def status(self, upload_id: str) -> int:
        """How many bytes the session holds (where the next chunk starts)."""
        response = self.transport.request("GET", f"{UPLOADS}/{upload_id}")
        offset = response.headers.get("Upload-Offset")
        if offset is not None and offset.isdigit():
            return int(offset)
        return _range_end(response.headers.get("Range"))

    def cancel(self, upload_id: str) -> None:
        """Cancel a session and drop its staged bytes."""
        self.transport.request("DELETE", f"{UPLOADS}/{upload_id}", ok=(404,))

    def stat(self, digest: str | Digest) -> BlobHash:
        """The stored blob with this digest (``BlobUnknownError`` if there is none)."""
        response = self.transport.request("HEAD", f"/v1/blobs/{digest}", ok=(404,))
        if response.status_code == 404:
            raise BlobUnknownError([str(digest)])
        etag = response.headers.get("ETag", "").strip('"').removeprefix("W/").strip('"')
        return BlobHash(
            Digest.parse(etag),
            Digest("sha256", _sha256_of(response.headers.get("Repr-Digest", ""))),
            int(response.headers.get("Content-Length", "0")),
        )

    # ------------------------------------------------------------------ whole blobs
    def put_bytes(self, data: bytes) -> BlobHash:
        """Store a small blob in one request (``POST /v1/blobs/uploads?digest=…``)."""
        blob = hash_bytes(data)
        self.transport.request(
            "POST",
            UPLOADS,
            params=_digests(blob),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            idempotent=True,  # content-addressed: storing the same bytes twice is one blob
        )
        return blob

    def upload(
        self,
        stream: BinaryIO,
        *,
        upload_id: str | None = None,
        expected: Callable[[BlobHash], None] | None = None,
        progress: Progress = None,
    ) -> BlobHash:
        """Store the bytes of ``stream``: in one request when small, else through a session.

        Up to ``single_put_bytes`` go in one request; more through a new session, or
        with ``upload_id`` through that one, resumed: the bytes it already holds are read
        from ``stream`` (hashed, not sent) and the rest is sent. ``expected`` may refuse
        the hash (``IntegrityError``) before the blob is committed (the session is then
        cancelled). ``progress`` receives the byte count of each chunk sent.
        """
        hasher = HashingWriter()
        pending = b""
        if upload_id is None:
            pending = _read_up_to(stream, self.single_put_bytes + 1)
            if len(pending) <= self.single_put_bytes:
                blob = hash_bytes(pending)
                if expected:
                    expected(blob)
                self.put_bytes(pending)
                if progress:
                    progress(len(pending))
                return blob
            upload_id, offset = self.open(), 0
        else:
            offset = self.status(upload_id)
            _skip(stream, offset, hasher, upload_id)
        try:
            while True:
                # Whole chunks (a short read is not the end), so that sessions hold
                # multiples of the chunk size until the last one.
                chunk = pending + _read_up_to(stream, max(0, self.chunk_size - len(pending)))
                pending = b""
                if not chunk:
                    break
                hasher.write(chunk)
                self._send(upload_id, offset, chunk)
                offset += len(chunk)
                if progress:
                    progress(len(chunk))
            blob = hasher.result()
            if expected:
                expected(blob)
        except IntegrityError:
            self.cancel(upload_id)
            raise
        return self.commit(upload_id, blob)

    # ------------------------------------------------------------------ steps
    def _send(self, upload_id: str, offset: int, chunk: bytes) -> None:
        """Append ``chunk`` at ``offset``, resuming from the server's offset after a failure."""
        path, sent = f"{UPLOADS}/{upload_id}", 0
        transport = self.transport
        for attempt in transport.attempts():
            end = offset + len(chunk) - 1
            try:
                response = transport.client.patch(
                    path,
                    content=chunk[sent:],
                    headers={
                        "Content-Range": f"{offset + sent}-{end}",
                        "Content-Type": "application/octet-stream",
                    },
                )
            except transport.httpx.TransportError as exc:
                if attempt.last:
                    raise transport.unavailable("PATCH", path, exc) from exc
                attempt.wait(None)
                sent = self._resume_point(upload_id, offset, len(chunk))
                if sent == len(chunk):
                    return
                continue
            if response.is_success:
                return
            error = transport.error(response, "PATCH", path)
            if isinstance(error, UploadRangeError) or response.status_code == 416:
                sent = self._resume_point(upload_id, offset, len(chunk))
                if sent == len(chunk):
                    return
                if attempt.last:
                    raise error
                continue
            if attempt.last or response.status_code not in (429, 502, 503, 504):
                raise error
            attempt.wait(retry_after(response.headers.get("Retry-After"), utcnow))
            sent = self._resume_point(upload_id, offset, len(chunk))
            if sent == len(chunk):
                return
        raise AssertionError("unreachable")  # pragma: no cover

    def _resume_point(self, upload_id: str, offset: int, length: int) -> int:
        """How many bytes of the chunk at ``offset`` the server holds already."""
        received = self.status(upload_id)
        if not offset <= received <= offset + length:
            raise UploadRangeError(upload_id, offset, received)
        return received - offset

    def commit(self, upload_id: str, blob: BlobHash) -> BlobHash:
        """Close the session as ``blob``; a lost commit is confirmed by ``HEAD``."""
        try:
            self.transport.request(
                "PUT",
                f"{UPLOADS}/{upload_id}",
                params=[*_digests(blob), ("size", str(blob.size))],
                read_timeout=COMMIT_TIMEOUT,  # the server may read the whole blob again
            )
        except (UploadUnknownError, BackendUnavailableError) as failure:
            return self._confirm(blob, failure)
        return blob

    def _confirm(self, blob: BlobHash, failure: Exception) -> BlobHash:
        """``blob`` if the server holds it after all, else the commit's ``failure``."""
        try:
            stored = self.stat(blob.blake3)
        except BlobUnknownError:
            raise failure from None
        if stored.size != blob.size:
            raise IntegrityError(
                f"the server holds {blob.content_address} with {stored.size} bytes, "
                f"but {blob.size} were uploaded"
            )
        return blob


def _skip(stream: BinaryIO, count: int, hasher: HashingWriter, upload_id: str) -> None:
    """Read (and hash) the first ``count`` bytes of ``stream``: those the session holds."""
    left = count
    while left:
        data = stream.read(min(left, CHUNK_SIZE))
        if not data:
            raise InvalidInputError(
                f"upload {upload_id} already holds {count} bytes, more than the stream has"
            )
        hasher.write(data)
        left -= len(data)


def _digests(blob: BlobHash) -> list[tuple[str, str]]:
    return [("digest", str(blob.blake3)), ("digest", str(blob.sha256))]


def _range_end(value: str | None) -> int:
    """Bytes held, from ``Range: 0-<end>`` (OCI: ``0-0`` is ambiguous, taken as none;
    the server's ``Upload-Offset`` is preferred)."""
    if not value:
        return 0
    start, _, end = value.removeprefix("bytes=").partition("-")
    if start != "0" or not end.isdigit():
        raise IntegrityError(f"unexpected upload Range header {value!r}")
    return int(end) + 1 if int(end) else 0


def _sha256_of(repr_digest: str) -> str:
    """The SHA-256 hex of a ``Repr-Digest: sha-256=:<base64>:`` header."""
    for item in repr_digest.split(","):
        key, _, value = item.strip().partition("=")
        if key == "sha-256":
            try:
                return base64.b64decode(value.strip(":")).hex()
            except (binascii.Error, ValueError):
                break
    raise IntegrityError(f"blob answer lacks a SHA-256 Repr-Digest: {repr_digest!r}")


def _read_up_to(stream: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes of ``stream`` (fewer only at its end)."""
    parts, left = [], count
    while left > 0:
        data = stream.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)
