"""Writing objects: the concurrent multipart upload, the server-side copy that publishes a
staged object, and the time-bounded clean-up after a failed write.

These take their collaborators explicitly (the s3fs filesystem, the bucket, the create-only
conditions, a ``translate`` callable that raises the adapter's error for a provider error),
so they know nothing of the store that uses them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from artifactstore_core.errors import InvalidInputError
from artifactstore_core.storage.s3._errors import error_details, precondition_failed

# One logger for the whole adapter, as before it became a package.
log = logging.getLogger("artifactstore_core.storage.s3")

#: Size of each uploaded part (S3 allows 10,000 parts: 156 GiB at the default).
DEFAULT_PART_SIZE = 16 * 2**20
#: Parts of one write uploaded at once. Memory per write is about one part more than this
#: (the part being filled) plus two hash chunks: 5 x 16 MiB + 8 MiB at the defaults.
DEFAULT_PARTS_IN_FLIGHT = 4
#: S3's limit on the parts of one multipart upload.
_MAX_PARTS = 10_000
#: CopyObject refuses sources above 5 GiB; larger objects are copied in parts of this size.
COPY_OBJECT_LIMIT = 5 * 2**30
COPY_PART_SIZE = 512 * 2**20
#: How long an abort waits for the cancelled part uploads to stop.
_CANCEL_TIMEOUT = 30.0

Translate = Callable[[Exception, str], NoReturn]
"""Raises the adapter's error for a failed request: ``translate(exc, action)``."""


class Cleanup:
    """Best-effort clean-up requests after one failed write, all within one time budget
    (``budget`` seconds, the store's ``connect_timeout + read_timeout``) so that the
    failure is reported in bounded time.

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
        """Send ``method`` (on the bucket) to ``what`` (for messages); after ``error`` within
        the budget, else as an ordinary request."""
        if error is None:  # not after a failure: an ordinary request
            timeout = None
        else:
            if self._deadline is None:
                self._deadline = time.monotonic() + self._budget
            timeout = self._deadline - time.monotonic()
        try:
            if timeout is not None and timeout <= 0:
                raise TimeoutError("no time left for clean-up")
            # fsspec's blocking wrappers pass ``timeout`` to ``fsspec.asyn.sync``.
            self._fs.call_s3(method, timeout=timeout, Bucket=self._bucket, **kwargs)
        except Exception as exc:
            if method == "abort_multipart_upload" and error_details(exc)[0] == "NoSuchUpload":
                return  # gone already (completed or aborted)
            detail = (
                f"no answer within {self._budget:g} s"
                if isinstance(exc, TimeoutError) and not str(exc)
                else error_details(exc)[2]
            )
            log.warning("could not %s at %s: %s", what, self._endpoint, detail)
            if error is not None:
                error.add_note(f"could not {what}: {detail}")


def copy(
    fs: Any,
    bucket: str,
    source_key: str,
    key: str,
    size: int,
    *,
    conditions: dict[str, str],
    cleanup: Cleanup,
) -> None:
    """Server-side copy of ``source_key`` (``size`` bytes) to ``key``, with ``conditions``
    (``If-None-Match: *`` for create-only) on the request that makes it visible. Sources
    above CopyObject's limit are copied in parts. Provider errors are raised as they are."""
    if size <= COPY_OBJECT_LIMIT:
        fs.call_s3(
            "copy_object",
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": source_key},
            **conditions,
        )
        return
    call = fs.call_s3
    upload = call("create_multipart_upload", Bucket=bucket, Key=key)["UploadId"]
    try:
        parts = []
        for number, start in enumerate(range(0, size, COPY_PART_SIZE), start=1):
            end = min(start + COPY_PART_SIZE, size) - 1
            result = call(
                "upload_part_copy",
                Bucket=bucket,
                Key=key,
                UploadId=upload,
                PartNumber=number,
                CopySource={"Bucket": bucket, "Key": source_key},
                CopySourceRange=f"bytes={start}-{end}",
            )
            parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
        call(
            "complete_multipart_upload",
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": parts},
            **conditions,
        )
    except BaseException as exc:
        cleanup.call(
            exc, f"abort the copy to s3://{bucket}/{key}",
            "abort_multipart_upload", Key=key, UploadId=upload,
        )  # fmt: skip
        raise


class PartUpload:
    """One upload of a stream to ``key``, fed chunk by chunk; nothing is visible before
    ``commit()``.

    The bytes are buffered into parts of ``part_size``. A stream that fits in one part is
    sent by ``commit()`` as a single PutObject. A longer one becomes a multipart upload:
    each full part is uploaded by a task on s3fs's event loop while the caller goes on
    reading and hashing, at most ``parts_in_flight`` at once (``write`` waits for one to
    finish beyond that). ``commit()`` waits for the last parts, then sends
    CompleteMultipartUpload with ``conditions``; ``abort()`` cancels the parts in flight,
    waits for them to stop and aborts the multipart upload through ``cleanup``.

    Parts go through botocore directly, not s3fs's retrying ``call_s3``: botocore rewinds
    the body before each of its retries, whereas s3fs's retry loop would resend a body from
    wherever the failed attempt left it (for a file-like body, the end: an empty part).
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
        translate: Translate,
        cleanup: Cleanup,
    ) -> None:
        self._fs = fs
        self._bucket = bucket
        self._key = key
        self._target = f"s3://{bucket}/{key}"
        self._part_size = part_size
        self._parts_in_flight = parts_in_flight
        self._conditions = conditions
        self._translate = translate
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
            if self._conditions and precondition_failed(exc):
                self.abort()
                return False
            self._translate(exc, f"completing the upload to {self._target}")
        self._upload_id = None  # complete: nothing left to abort
        return True

    def abort(self, error: BaseException | None = None) -> None:
        """Cancel the parts in flight and abort the multipart upload (best effort: what is
        left, the sweep aborts later). After a failure (``error``) the abort runs within
        the clean-up's budget and its own failure is logged and noted on ``error``."""
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
                self._translate(exc, f"starting an upload to {self._target}")
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
                self._translate(exc, f"uploading part {number} to {self._target}")

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
            await self._fs.set_session()
            client = await self._fs.get_s3(self._bucket)
            response = await client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
            return str(response["ETag"])
        finally:
            body.close()  # frees the part's bytes at once

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
