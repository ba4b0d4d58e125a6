"""A big file through the client, cut once on the way up and once on the way down, on both
flavours; prints the rates next to the embedded store's for the same file.

The short form (``make test``) moves 32 MiB; the long form (``ARTIFACTSTORE_CLIENT_LONG=1``)
1 GiB.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.hashing import hash_copy
from artifactstore_core.testing.faultproxy import fault_proxy
from tests.client.conftest import FAST, LiveServer, issue_token
from tests.client.test_resumable_uploads import _cut

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MiB = 1024**2
SIZE = 1024 * MiB if os.environ.get("ARTIFACTSTORE_CLIENT_LONG") == "1" else 32 * MiB


def test_a_big_file_survives_cuts_both_ways(gateway: LiveServer, tmp_path: Path) -> None:
    other, source = tmp_path / "other.bin", tmp_path / "big.bin"
    for path in (other, source):  # different bytes: the client must not find them stored
        with path.open("wb") as file:
            for _ in range(SIZE // (16 * MiB)):
                file.write(os.urandom(16 * MiB))
    with source.open("rb") as file:
        expected = hash_copy(file)
    started = time.perf_counter()
    gateway.store.put("embedded", other)
    embedded = time.perf_counter() - started

    with fault_proxy(int(gateway.url.rpartition(":")[2])) as proxy:
        proxy.after(SIZE // 3, _cut(proxy), direction="up")
        with RemoteArtifactStore(proxy.endpoint_url, issue_token(gateway.store), retry=FAST) as c:
            started = time.perf_counter()
            package = c.put("remote", source)
            upload = time.perf_counter() - started
            assert package.files[0].blob == expected
            assert proxy.stats.resets >= 1
            proxy.after(SIZE // 2, _cut(proxy), direction="down")
            started = time.perf_counter()
            with c.open_file(package) as stream:
                while stream.read(8 * MiB):
                    pass
            download = time.perf_counter() - started
        assert proxy.stats.resets >= 2
        assert proxy.stats.bytes_up < SIZE + 16 * MiB
    print(
        f"\n{SIZE // MiB} MiB: embedded put {SIZE / embedded / MiB:.0f} MiB/s, client put "
        f"(cut once) {SIZE / upload / MiB:.0f} MiB/s, verified download (cut once) "
        f"{SIZE / download / MiB:.0f} MiB/s"
    )
