"""``artifactstore serve --workers 2`` as a real subprocess: health, an authenticated call,
and a big file in chunks spread over both workers (1 GiB with ``ARTIFACTSTORE_HTTP_LONG=1``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import httpx
import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.testing.servers import free_port
from tests.http.conftest import issue_token

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def serving(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """``artifactstore serve`` on a free port with two workers over the registry in
    ``tmp_path``: (url, database url, process)."""
    database_url = f"sqlite:///{tmp_path / 'registry.db'}"
    port = free_port()
    env = {
        **os.environ,
        "ARTIFACTSTORE_STORAGE_URL": str(tmp_path / "blobs"),
        "ARTIFACTSTORE_DATABASE_URL": "sqlite:////nonexistent/overridden.db",
    }
    log = (tmp_path / "serve.log").open("ab")
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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=40)
        log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    with serving(tmp_path) as server:
        yield server


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


def _workers(manager: int) -> list[int]:
    """Pids of the uvicorn worker processes under the manager process ``manager``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            # Workers are spawned processes (not multiprocessing's resource tracker).
            if int(stat.rpartition(")")[2].split()[1]) == manager and b"spawn_main" in command:
                found.append(int(entry.name))
    return found


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def _pieces(seed: int, size: int, piece: int = 1024 * 1024) -> Iterator[bytes]:
    """``size`` pseudo-random bytes in pieces, never all in memory."""
    block = random.Random(seed).randbytes(piece)
    for offset in range(0, size, piece):
        n = min(piece, size - offset)
        yield (offset.to_bytes(8, "big") + block)[:n]


def _transfer(url: str, secret: str, size: int, chunk: int) -> dict[str, float]:
    """Upload ``size`` bytes in ``chunk``-sized PATCHes, each on a new connection (so they
    spread over the workers), commit, register, download; the seconds each step took."""
    expected_sha, expected_b3 = hashlib.sha256(), blake3.blake3()
    for piece in _pieces(1, size):
        expected_sha.update(piece)
        expected_b3.update(piece)
    headers = {"Authorization": f"Bearer {secret}"}
    began = time.monotonic()
    with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
        location = client.post("/v1/blobs/uploads").headers["location"]
    stream = _pieces(1, size)
    for start in range(0, size, chunk):
        length = min(chunk, size - start)

        def body(count: int = length) -> Iterator[bytes]:
            sent = 0
            while sent < count:
                piece = next(stream)
                sent += len(piece)
                yield piece

        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
            response = client.patch(
                location, content=body(),
                headers={"Content-Range": f"{start}-{start + length - 1}"},
            )  # fmt: skip
            assert response.status_code == 202, response.text
    uploaded = time.monotonic()
    with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
        done = client.put(
            location,
            params=[("digest", f"sha256:{expected_sha.hexdigest()}"),
                    ("digest", f"blake3:{expected_b3.hexdigest()}")],
        )  # fmt: skip
        assert done.status_code == 201, done.text
        committed = time.monotonic()
        address = done.json()["content_address"]
        registered = client.post("/v1/packages", json={"name": "big/file", "files": {"f": address}})
        assert registered.status_code == 201, registered.text
        got = hashlib.sha256()
        with client.stream("GET", "/v1/packages/big%2Ffile/files/f") as download:
            assert download.status_code == 200
            for piece in download.iter_bytes():
                got.update(piece)
        assert got.hexdigest() == expected_sha.hexdigest()
    downloaded = time.monotonic()
    return {
        "upload_s": uploaded - began,
        "commit_s": committed - uploaded,
        "download_s": downloaded - committed,
    }


LONG = "1" in (
    os.environ.get("ARTIFACTSTORE_HTTP_LONG"),
    os.environ.get("ARTIFACTSTORE_RELIABILITY_LONG"),
)
"""The long form moves 1 GiB in 256 MiB chunks (``ARTIFACTSTORE_HTTP_LONG=1``); the short
form 64 MiB in 8 MiB chunks."""


def test_a_big_file_in_chunks_across_two_workers_in_bounded_memory(
    served: tuple[str, str, subprocess.Popen[bytes]],
) -> None:
    url, database_url, process = served
    with ArtifactStore.open(database_url, migrate=False) as store:
        secret = issue_token(store, "package:**:read,write", actor="ci")
    workers = _workers(process.pid)
    assert len(workers) == 2
    size, chunk = (1024**3, 256 * 1024**2) if LONG else (64 * 1024**2, 8 * 1024**2)
    timings = _transfer(url, secret, size, chunk)
    peaks = {pid: round(_peak_rss_mib(pid)) for pid in workers}
    print(f"{size >> 20} MiB through 2 workers: {timings}, worker peak RSS MiB: {peaks}")
    assert max(peaks.values()) < 150e6 / 2**20, peaks  # 150 MB


def test_an_upload_resumes_after_the_server_is_killed_and_restarted(tmp_path: Path) -> None:
    """Half the chunks, then ``kill -9`` of the whole server; a new server on the same
    registry tells the resume offset, takes the rest, and commits twice with one answer."""
    size, chunk = 24 * 1024 * 1024, 4 * 1024 * 1024
    data = b"".join(_pieces(7, size))
    with serving(tmp_path) as (url, database_url, process):
        with ArtifactStore.open(database_url, migrate=False) as store:
            secret = issue_token(store, "package:**:read,write", actor="ci")
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            location = client.post("/v1/blobs/uploads").headers["location"]
            for start in range(0, size // 2, chunk):
                part = data[start : start + chunk]
                sent = client.patch(
                    location, content=part,
                    headers={"Content-Range": f"{start}-{start + len(part) - 1}"},
                )  # fmt: skip
                assert sent.status_code == 202, sent.text
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=40)
    with (
        serving(tmp_path) as (url, _database_url, _process),
        httpx.Client(base_url=url, headers=headers, timeout=120) as client,
    ):
        status = client.get(location)
        assert status.status_code == 204 and status.headers["range"] == f"0-{size // 2 - 1}"
        for start in range(size // 2, size, chunk):
            part = data[start : start + chunk]
            sent = client.patch(
                location, content=part,
                headers={"Content-Range": f"{start}-{start + len(part) - 1}"},
            )  # fmt: skip
            assert sent.status_code == 202, sent.text
        digests = [("digest", f"sha256:{hashlib.sha256(data).hexdigest()}"),
                   ("digest", f"blake3:{blake3.blake3(data).hexdigest()}")]  # fmt: skip
        first = client.put(location, params=digests)
        again = client.put(location, params=digests)
        assert first.status_code == again.status_code == 201, (first.text, again.text)
        assert first.json() == again.json()
        assert first.json()["size"] == size
        address = first.json()["content_address"]
        assert client.get(f"/v1/blobs/{address}").content == data
