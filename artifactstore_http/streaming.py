"""Bytes between the event loop and the sync core, bounded both ways.

Uploads: the request body is read in the event loop (``request.stream()``), gathered into
chunks of about ``CHUNK`` bytes and handed through a memory object stream of ``DEPTH``
chunks to a worker thread, which reads it as a file (``BodyReader``) and calls the sync
core. At most ``DEPTH + 2`` chunks are in memory per request; no body is buffered whole.
Concurrent uploads are bounded by a dedicated ``CapacityLimiter``; a request that finds
every slot taken waits for one (its body unread, so it costs no memory) for up to
``Limits.upload_queue_seconds``, then is refused with 429 and ``Retry-After``.

Downloads: a sync stream from the core is read chunk by chunk in worker threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import ObjectReceiveStream
from starlette.requests import Request

from artifactstore_core.errors import DigestInvalidError
from artifactstore_http.problems import Problem, log

CHUNK = 1024 * 1024
DEPTH = 4
RETRY_AFTER_SECONDS = 1
T = TypeVar("T")


class BodyIncompleteError(OSError):
    """The request body ended early: the client went away, or it passed its limit."""


class BodyReader(io.RawIOBase):
    """A blocking, read-only file over chunks sent from the event loop (worker side).

    A body cut short raises ``BodyIncompleteError`` from every later read instead of
    looking like a clean end, so the core never commits a truncated upload.
    """

    def __init__(self, chunks: ObjectReceiveStream[bytes | BaseException]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._done = False
        self._error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        while not self._pending:
            if self._error is not None:
                raise BodyIncompleteError(f"request body incomplete: {self._error}")
            if self._done:
                return False
            try:
                item = anyio.from_thread.run(self._chunks.receive)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self._done = True
                return False
            if isinstance(item, BaseException):
                self._error = item
            else:
                self._pending = memoryview(item)
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._fill():
            return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not self._fill():
            return b""
        data = bytes(self._pending[:size])
        self._pending = self._pending[size:]
        return data


class Sha256Checked(io.RawIOBase):
    """A body whose SHA-256 must be ``expected`` (``sha256:<hex>``, from ``Content-Digest``):
    at its end a mismatch raises ``DigestInvalidError``, so the write it feeds fails and
    nothing is stored or registered."""

    def __init__(self, body: BinaryIO, expected: str) -> None:
        super().__init__()
        self._body = body
        self._expected = expected
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._body.read(-1 if size is None else size)
        if data:
            self._hash.update(data)
        elif (actual := f"sha256:{self._hash.hexdigest()}") != self._expected:
            raise DigestInvalidError(self._expected, actual)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass
class Limits:
    """Bounds of the gateway; ``create_app`` takes them."""

    max_json_bytes: int = 16 * 1024 * 1024
    max_single_put_bytes: int = 256 * 1024 * 1024
    upload_concurrency: int = 8
    #: How long an upload waits for a free slot before the answer is 429.
    upload_queue_seconds: float = 10.0


class Bridge:
    """Runs a sync consumer of a request body in a worker thread, bounded (see module doc)."""

    def __init__(self, concurrency: int, queue_seconds: float = 10.0) -> None:
        self.admission = anyio.CapacityLimiter(concurrency)
        self.threads = anyio.CapacityLimiter(concurrency)
        self.queue_seconds = queue_seconds

    async def consume(
        self, request: Request, consumer: Callable[[BinaryIO], T], *, limit: int | None = None
    ) -> T:
        """``consumer(body)`` in a worker thread; 429 when ``concurrency`` run already and
        none ends within ``queue_seconds``; 413 once the body passes ``limit`` bytes (the
        consumer sees a failed read)."""
        try:
            self.admission.acquire_nowait()
            admitted = True
        except anyio.WouldBlock:
            admitted = False
            with anyio.move_on_after(self.queue_seconds):
                await self.admission.acquire()
                admitted = True
        if not admitted:
            raise Problem(
                429,
                f"all {int(self.admission.total_tokens)} upload slots are busy; retry shortly",
                code="TOOMANYREQUESTS",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                retry_after=RETRY_AFTER_SECONDS,
            ) from None
        try:
            return await self._run(request, consumer, limit)
        finally:
            self.admission.release()

    async def _run(
        self, request: Request, consumer: Callable[[BinaryIO], T], limit: int | None
    ) -> T:
        send, receive = anyio.create_memory_object_stream[bytes | BaseException](DEPTH)
        # Why the body stopped short, if it did: that, not the consumer's failed read, is
        # the answer (413 over a limit, the client gone, a middleware's HTTP error).
        cut: list[Exception] = []

        async def produce() -> None:
            total = 0
            gathered: list[bytes] = []
            size = 0
            async with send:
                try:
                    async for part in request.stream():
                        total += len(part)
                        if limit is not None and total > limit:
                            raise Problem(413, f"request body over the limit of {limit} bytes")
                        gathered.append(part)
                        size += len(part)
                        if size >= CHUNK:
                            await send.send(b"".join(gathered))
                            gathered, size = [], 0
                    if gathered:
                        await send.send(b"".join(gathered))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return  # the consumer stopped early (it failed); its error is reported
                except Exception as exc:
                    cut.append(exc)
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await send.send(exc)

        def run() -> T:
            with BodyReader(receive) as reader:
                try:
                    return consumer(reader)  # type: ignore[arg-type]
                finally:
                    anyio.from_thread.run(receive.aclose)

        outcome: list[T] = []
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            try:
                outcome.append(await anyio.to_thread.run_sync(run, limiter=self.threads))
            except Exception as exc:  # raised below, outside the group: not wrapped
                failure = exc
                group.cancel_scope.cancel()
        if failure is not None:
            raise cut[0] if cut else failure
        return outcome[0]


async def iterate(stream: BinaryIO, *, length: int | None = None) -> AsyncIterator[bytes]:
    """The bytes of a sync stream (``length`` of them at most), read in worker threads;
    the stream is closed at the end or when the client goes away.

    Each piece is sent only once the next read succeeded: a verifying stream raises at
    its end, and the last piece held back then leaves the response visibly incomplete
    (the server aborts it), so no client takes corrupt bytes for a complete body.
    """
    remaining = length
    held: bytes | None = None
    try:
        while remaining is None or remaining > 0:
            size = CHUNK if remaining is None else min(CHUNK, remaining)
            data = await anyio.to_thread.run_sync(stream.read, size)
            if not data:
                break
            if remaining is not None:
                remaining -= len(data)
            if held is not None:
                yield held
            held = data
        if held is not None:
            yield held
    except Exception:
        log.error("aborting a response body", exc_info=True)
        raise
    finally:
        with anyio.CancelScope(shield=True):  # also when the client went away (cancelled)
            await anyio.to_thread.run_sync(stream.close)


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _unsatisfiable(detail: str, size: int) -> Problem:
    return Problem(
        416, detail, code="RANGE_NOT_SATISFIABLE", headers={"Content-Range": f"bytes */{size}"}
    )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(start, end)`` of a single-range ``Range`` header for a body of
    ``size`` bytes; ``None`` to send it whole (no header, or several ranges, which RFC 9110
    lets a server ignore); 416 ``Problem`` when it cannot be satisfied."""
    if header is None:
        return None
    shown = repr(header[:100])
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        if header.strip().startswith("bytes=") and "," in header:
            return None
        raise _unsatisfiable(f"unsupported Range {shown}; use bytes=<start>-<end>", size)
    first, last = match.groups()
    if not first and not last:
        raise _unsatisfiable(f"empty Range {shown}", size)
    if not first:  # the last N bytes
        if int(last) == 0 or size == 0:
            raise _unsatisfiable(f"Range {shown} selects no byte of {size}", size)
        return max(0, size - int(last)), size - 1
    start = int(first)
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(f"Range {shown} is outside the {size} bytes", size)
    return start, min(int(last), size - 1) if last else size - 1
