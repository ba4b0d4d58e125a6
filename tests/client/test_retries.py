"""Retries against a live gateway: a full upload limiter (429 + ``Retry-After``) is waited
out, and retrievals are recorded with their purpose."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.domain.events import PackageRetrieved
from artifactstore_core.hashing import hash_bytes
from artifactstore_http import Limits
from tests.client.conftest import FAST, LiveServer, issue_token, live_server

pytestmark = pytest.mark.integration


def test_a_busy_upload_limiter_is_waited_out_as_retry_after_says(
    sqlite_store: ArtifactStore,
) -> None:
    gate, admitted = threading.Event(), threading.Event()
    slow = b"x" * 10 + b"y" * 10
    secret = issue_token(sqlite_store)

    def body() -> Iterator[bytes]:
        yield slow[:10]
        admitted.set()
        gate.wait(10)
        yield slow[10:]

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        gate.set()  # the slot frees while the client waits
        time.sleep(0.2)

    limits = Limits(upload_concurrency=1, upload_queue_seconds=0.05)  # refuse soon
    with live_server(sqlite_store, limits=limits) as server:
        holder = server.client(secret)
        digest = hash_bytes(slow)
        held = threading.Thread(
            target=lambda: holder.post(
                "/v1/blobs/uploads",
                params=[("digest", str(digest.blake3))],
                content=body(),
            ).raise_for_status()
        )
        held.start()
        assert admitted.wait(10)
        time.sleep(0.2)  # the holder's body is in the bridge: the one slot is taken
        with RemoteArtifactStore(server.url, secret, retry=FAST, sleep=sleep) as client:
            blob = client.upload(io.BytesIO(b"small blob"))
        held.join(10)
        holder.close()
    assert blob == hash_bytes(b"small blob") == sqlite_store.stat(str(blob.blake3))
    assert waits and waits[0] == 1.0  # the server's Retry-After, not the client's backoff
    assert sqlite_store.stat(str(digest.blake3)) == digest


def test_reads_record_retrievals_with_their_purpose(gateway: LiveServer) -> None:
    store = gateway.store
    with RemoteArtifactStore(gateway.url, issue_token(store, actor="reader"), retry=FAST) as c:
        package = c.put("p", {"a": b"a", "b": b""})
        before = store.events()[-1].sequence
        c.get("p", purpose="audit", run_id="run-9")
        c.read_bytes(package, "b", record=False)
        retrieved = [e.event for e in store.events(since=before)]
    assert len(retrieved) == 1  # the read without record= is served by address
    first = retrieved[0]
    assert isinstance(first, PackageRetrieved)
    assert (first.purpose, first.run_id, first.package_id) == ("audit", "run-9", str(package.id))
