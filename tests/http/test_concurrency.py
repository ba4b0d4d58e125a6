"""32 clients registering at once through one gateway: no package lost, versions without
gaps, a valid chain — on SQLite + local blobs and PostgreSQL + S3."""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading

import pytest

from artifactstore_core.client import RemoteArtifactStore
from tests.http.conftest import LiveServer, issue_token

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 32
PER_CLIENT = 4
SHARED = "conc/shared"


def test_32_clients_register_at_once_without_losing_a_package(gateway: LiveServer) -> None:
    secret = issue_token(gateway.store)
    start = threading.Barrier(CLIENTS)

    def client(index: int) -> list[tuple[str, int, str]]:
        made = []
        with RemoteArtifactStore(gateway.url, secret) as remote:
            start.wait()
            for n in range(PER_CLIENT):
                name = SHARED if n % 2 == 0 else f"conc/own-{index}"
                data = f"client {index} package {n}".encode()
                package = remote.put(name, {"f.txt": data})
                made.append((package.name, package.version, hashlib.sha256(data).hexdigest()))
        return made

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        results = [item for made in pool.map(client, range(CLIENTS)) for item in made]

    assert len(results) == CLIENTS * PER_CLIENT
    assert len({(name, version) for name, version, _ in results}) == len(results)
    shared = sorted(v for name, v, _ in results if name == SHARED)
    assert shared == list(range(1, CLIENTS * PER_CLIENT // 2 + 1))  # gap-free
    for index in range(CLIENTS):
        own = sorted(v for name, v, _ in results if name == f"conc/own-{index}")
        assert own == list(range(1, PER_CLIENT // 2 + 1))

    store = gateway.store
    listed = {(p.name, p.version): p.files[0].blob.sha256.hex for p in store.list_packages()}
    assert listed == {(name, version): digest for name, version, digest in results}
    assert store.verify_log().checked > CLIENTS * PER_CLIENT  # raises if the chain is broken
    assert store.check_views() == []
    assert store.verify().ok
