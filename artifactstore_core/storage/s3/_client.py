"""The s3fs filesystem the adapter talks through, its time bounds, and the blob reader.

s3fs is imported lazily (``filesystem_class``), so the core imports without the ``s3``
extra. Each request is bounded: ``connect_timeout`` to connect, ``read_timeout`` without
progress (``StallGuardSession`` extends it to sending a body), ``max_attempts`` tries with
botocore's jittered backoff, and s3fs's own retry loop off so the two never multiply.
"""

from __future__ import annotations

import asyncio
import functools
import io
import time
from collections.abc import Callable
from typing import Any, NoReturn

from artifactstore_core.errors import IntegrityError, MissingExtraError

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


def request_bound(connect_timeout: float, read_timeout: float, max_attempts: int) -> float:
    """Most seconds one request takes when the server is frozen (accepts connections,
    never answers) or refuses them: ``max_attempts x (connect_timeout + read_timeout)``
    plus botocore's backoff, at most ``min(2 ** (i - 1), 20)`` s before attempt ``i + 1``."""
    backoff = sum(min(2.0**i, _MAX_BACKOFF) for i in range(max_attempts - 1))
    return max_attempts * (connect_timeout + read_timeout) + backoff


def filesystem_class() -> type:
    """``s3fs.S3FileSystem``, imported lazily."""
    try:
        import s3fs
    except ImportError as exc:
        raise MissingExtraError("the S3 storage backend", "s3", "s3fs") from exc
    filesystem: type = s3fs.S3FileSystem
    return filesystem


def new_filesystem(
    filesystem: type,
    *,
    key: str | None,
    secret: str | None,
    endpoint_url: str | None,
    region: str | None,
    addressing_style: str | None,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
    block_size: int,
) -> Any:
    """An unconnected ``filesystem`` (s3fs's class) with the time bounds above; unset
    options fall back to botocore's defaults."""
    config: dict[str, Any] = {
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "retries": {"mode": "standard", "total_max_attempts": max_attempts},
        "http_session_cls": stall_guard_session_class(),
    }
    # A custom endpoint (MinIO, Ceph, a test server) rarely has wildcard DNS.
    style = addressing_style or ("path" if endpoint_url else None)
    if style:
        config["s3"] = {"addressing_style": style}
    fs = filesystem(
        key=key,
        secret=secret,
        endpoint_url=endpoint_url,
        client_kwargs={"region_name": region} if region else {},
        config_kwargs=config,
        default_block_size=block_size,
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    fs.retries = _S3FS_ATTEMPTS
    return fs


@functools.cache
def stall_guard_session_class() -> type:
    """aiobotocore's HTTP session, with a read timeout that also covers sending a body.

    aiohttp starts its socket read timeout only once the whole request body is written, so
    an upload to a server that stopped reading (its TCP window full) would wait forever.
    Here an attempt whose seekable body has not moved for ``read_timeout`` seconds fails
    with botocore's ``ReadTimeoutError``, which botocore retries like any other timeout.
    """
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

    return StallGuardSession


def _position(body: io.IOBase) -> int | None:
    try:
        return body.tell()
    except (ValueError, OSError):  # closed
        return None


class S3Reader(io.RawIOBase):
    """An s3fs file whose provider errors are translated (by ``translate``, which raises)
    as they surface."""

    def __init__(
        self, handle: Any, uri: str, translate: Callable[[Exception, str], NoReturn]
    ) -> None:
        super().__init__()
        self._handle = handle
        self._uri = uri
        self._translate = translate

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
            self._translate(exc, f"reading {self._uri}")
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the next read to ``offset`` (s3fs then asks for the bytes from there)."""
        position: int = self._handle.seek(offset, whence)
        return position

    def tell(self) -> int:
        position: int = self._handle.tell()
        return position

    def close(self) -> None:
        try:
            self._handle.close()
        finally:
            super().close()
