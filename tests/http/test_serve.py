"""``artifactstore serve --workers 2`` as a real subprocess: health and an authenticated call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.testing.servers import free_port
from tests.http.conftest import issue_token

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """``artifactstore serve`` on a free port with two workers: (url, database url, process)."""
    database_url = f"sqlite:///{tmp_path / 'registry.db'}"
    port = free_port()
    env = {
        **os.environ,
        "ARTIFACTSTORE_STORAGE_URL": str(tmp_path / "blobs"),
        "ARTIFACTSTORE_DATABASE_URL": "sqlite:////nonexistent/overridden.db",
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from artifactstore_core.cli import main; main()",
         "--database-url", database_url, "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_default_signals,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "serve.log").read_text())
            time.sleep(0.2)
        yield url, database_url, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=40)
        log.close()


def test_serve_with_two_workers(served: tuple[str, str, subprocess.Popen[bytes]]) -> None:
    url, database_url, _process = served
    with ArtifactStore.open(database_url, migrate=False) as store:
        secret = issue_token(store, "package:**:read,write", actor="ci")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json() == {"status": "ready"}
        for _ in range(6):  # new connections land on either worker
            with httpx.Client(base_url=url, headers=client.headers) as fresh:
                assert fresh.get("/v1/whoami").json()["actor"] == "ci"
        put = client.put("/v1/packages/served/files/a.txt", content=b"over two workers")
        assert put.status_code == 201, put.text
        assert client.get("/v1/packages/served/files/a.txt").content == b"over two workers"
        assert client.get("/v1/whoami", headers={"Authorization": "Bearer x"}).status_code == 401
