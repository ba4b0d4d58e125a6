"""Chunked uploads survive cut connections: resumed from the server's offset, committed
once, confirmed by ``HEAD`` when the commit's answer is lost (jib#4301), registered once.

A ``FaultProxy`` between the client and the live gateway cuts connections mid-transfer.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator

import pytest

from artifactstore_core import errors as e
from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.testing.faultproxy import FaultProxy, fault_proxy
from tests.client.conftest import FAST, LiveServer, issue_token

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
SIZE = 24 * MiB
CHUNK = 4 * MiB


@pytest.fixture(scope="module")
def data() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def proxy(gateway: LiveServer) -> Iterator[FaultProxy]:
    with fault_proxy(int(gateway.url.rpartition(":")[2])) as faults:
        yield faults


def _cut(proxy: FaultProxy) -> Callable[[], None]:
    """An action for ``proxy.after``: reset every connection, heal after 0.3 s."""

    def action() -> None:
        proxy.reset()
        threading.Timer(0.3, proxy.pass_through).start()

    return action


def _client(url: str, secret: str) -> RemoteArtifactStore:
    return RemoteArtifactStore(url, secret, retry=FAST, chunk_size=CHUNK, single_put_bytes=MiB)


class _BreaksHalfway(io.RawIOBase):
    """The caller's stream: fails with ``OSError`` once ``limit`` bytes were read."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__()
        self._stream, self._limit = io.BytesIO(data), limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._stream.tell() >= self._limit:
            raise OSError("the source disk went away")
        chunk = self._stream.read(min(len(buffer), self._limit - self._stream.tell()))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_new_client_resumes_the_session_where_the_first_one_stopped(
    gateway: LiveServer, data: bytes
) -> None:
    secret = issue_token(gateway.store)
    with _client(gateway.url, secret) as first:
        upload_id = first.open_upload()
        with pytest.raises(OSError, match="went away"):
            first.upload(_BreaksHalfway(data, SIZE // 2 + 123), upload_id=upload_id)
    held = gateway.store.uploads.status(upload_id).received
    assert 0 < held <= SIZE // 2 + 123 and held % CHUNK == 0  # whole chunks only
    sent: list[int] = []
    with _client(gateway.url, secret) as second:
        blob = second.upload(io.BytesIO(data), upload_id=upload_id, progress=sent.append)
        assert blob == hash_bytes(data)
        assert sum(sent) == SIZE - held  # only the rest crossed the network
        package = second.register("big", {"data.bin": blob})
        assert second.read_bytes(package) == data
    assert gateway.store.describe("big").files[0].blob == blob


def test_connections_cut_mid_chunk_are_resumed_from_the_servers_offset(
    gateway: LiveServer, proxy: FaultProxy, data: bytes
) -> None:
    proxy.after(SIZE // 3, _cut(proxy), direction="up")
    with _client(proxy.endpoint_url, issue_token(gateway.store)) as client:
        package = client.put("cut", {"data.bin": data})
    assert proxy.stats.resets >= 1
    assert package.files[0].blob == hash_bytes(data)
    assert proxy.stats.bytes_up < SIZE + 2 * CHUNK + MiB  # at most the chunk in flight again
    assert gateway.store.read_bytes("cut", record=False) == data


def test_a_lost_commit_answer_is_retried_and_confirmed(
    gateway: LiveServer, proxy: FaultProxy, data: bytes
) -> None:
    """The commit's response is cut after the server committed: the retry (or ``HEAD``)
    finds the blob stored, and the package is registered once."""

    class CutAtEnd(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            if not chunk:  # the client commits next: lose the first answer it gets
                proxy.after(1, _cut(proxy), direction="down")
            return chunk

    with _client(proxy.endpoint_url, issue_token(gateway.store)) as client:
        blob = client.upload(CutAtEnd(data))
        assert proxy.stats.resets >= 1
        assert blob == hash_bytes(data) and gateway.store.stat(str(blob.blake3)) == blob
        # A session the server no longer knows, for a blob it holds: HEAD confirms it.
        assert client.uploads.commit("0" * 32, blob) == blob
        with pytest.raises(e.UploadUnknownError):
            client.uploads.commit("0" * 32, hash_bytes(b"never uploaded"))


def test_a_registration_whose_answer_is_lost_is_not_registered_twice(
    gateway: LiveServer, proxy: FaultProxy
) -> None:
    with _client(proxy.endpoint_url, issue_token(gateway.store)) as client:
        blob = client.upload(io.BytesIO(b"small"))
        proxy.after(1, _cut(proxy), direction="down")
        package = client.register("once", {"f": blob})
    assert proxy.stats.resets >= 1
    assert [p.reference for p in gateway.store.list_packages()] == ["once@1"]
    assert package == gateway.store.describe("once@1")


def test_a_download_cut_part_way_resumes_and_stays_verified(
    gateway: LiveServer, proxy: FaultProxy, data: bytes
) -> None:
    gateway.store.put("download", {"data.bin": data})
    with _client(proxy.endpoint_url, issue_token(gateway.store)) as client:
        package = client.describe("download")
        proxy.after(SIZE // 2, _cut(proxy), direction="down")
        assert client.read_bytes(package, "data.bin") == data
    assert proxy.stats.resets >= 1
    assert proxy.stats.bytes_down < SIZE * 3 // 2  # the rest only, not the whole again
