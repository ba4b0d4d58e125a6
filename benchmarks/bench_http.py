"""The HTTP gateway against the library it serves, on loopback (``artifactstore serve``).

Part 1, one large file (1 GiB; 128 MiB with ``--quick``), rounds in rotating order:

- ``local put``: ``ArtifactStore.put`` of the file (SQLite + local blobs, fsync'd);
- ``gateway put``: ``RemoteArtifactStore.put`` of the same file through a server with 2
  uvicorn workers over the same kind of registry (chunked, resumable upload sessions);
- ``local read`` / ``gateway read``: a verified read of the stored file to nowhere.

The file changes (its first 8 bytes) before each round, so no put is skipped as a
duplicate. Targets: gateway put <= 1.5x local put, gateway read <= 1.5x local read, the
server's peak RSS (highest ``VmHWM`` of its processes) < 150 MB.

Part 2, 32 concurrent clients (threads, one connection each) storing 1 KiB packages with
distinct contents, against SQLite and PostgreSQL registries (2 workers):

- ``one request per package``: the small-file ``PUT /v1/packages/{name}/files/{path}``;
- ``batch``: each client uploads its blobs (one ``POST`` each) and registers 50 packages
  per ``POST /v1/packages:batch``.

Targets: batch >= 300 packages/s, one request per package >= 100/s; p50/p99 per request.
PostgreSQL runs with ``fsync=off`` (``postgres_server()``), so its figures are not
durable-commit figures.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from _common import (
    GIB,
    MIB,
    REPO,
    Samples,
    header,
    library_cli,
    parser,
    result_row,
    rotated,
    sample_rows,
    settle,
    sqlite_url,
    table,
    temp_dir,
    temp_root,
    timed,
    verdict,
    write_results,
)
from bench_put_small import maybe_postgres, new_postgres_database

from artifactstore_core import ArtifactStore
from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.testing.servers import free_port

RATIO_TARGET = 1.5
MEMORY_TARGET_MB = 150
BATCH_TARGET = 300
SINGLE_TARGET = 100
CLIENTS = 32
BATCH = 50
WORKERS = 2
HOURS_2 = dt.timedelta(hours=2)


# ---------------------------------------------------------------------------- the server
@contextlib.contextmanager
def served(database_url: str, storage: Path, workers: int = WORKERS) -> Iterator[tuple[str, str]]:
    """A running ``artifactstore serve`` over the registry; its URL and an admin token."""
    with ArtifactStore.open(database_url, str(storage)) as store:
        token = store.tokens.issue(
            actor="bench", scopes=["package:**:admin"], expires_at=HOURS_2, issued_by="bench"
        ).secret
    port = free_port()
    env = {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": database_url,
        "ARTIFACTSTORE_STORAGE_URL": str(storage),
    }
    command = [*library_cli(), "serve", "--port", str(port)]
    log = (storage.parent / "server.log").open("wb")
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url, token
    except BaseException:
        log.flush()
        print((storage.parent / "server.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        log.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready in 60 s")


def server_peak_mb(url: str) -> float:
    """The highest ``VmHWM`` among the processes listening for ``url`` (the server's tree)."""
    port = url.rsplit(":", 1)[1]
    pids = subprocess.run(
        ["pgrep", "-f", "--", f"--port {port}"], capture_output=True, text=True, check=False
    ).stdout.split()
    tree = set(pids)
    for pid in pids:  # uvicorn's workers are children of the process given --port
        tree.update(
            subprocess.run(
                ["pgrep", "-P", pid], capture_output=True, text=True, check=False
            ).stdout.split()
        )
    peak = 0
    for pid in tree:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak * 1024 / 1e6


# ---------------------------------------------------------------------------- part 1
def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(block)


def change_file(path: Path, round_index: int) -> None:
    with path.open("r+b") as out:
        out.write(round_index.to_bytes(8, "little") + uuid.uuid4().bytes[:8])


def read_all(stream: Any) -> int:
    total = 0
    with stream:
        while data := stream.read(4 * MIB):
            total += len(data)
    return total


def large_file(root: Path, size: int, rounds: int) -> tuple[Samples, float]:
    samples = Samples()
    with temp_dir(root, "http-large-") as work:
        source = work / "large.bin"
        make_file(source, size)
        local = ArtifactStore.open(sqlite_url(work / "local.db"), str(work / "local"))
        with served(sqlite_url(work / "gw.db"), work / "gw") as (url, token):
            remote = RemoteArtifactStore(url, token, timeout=600)
            for round_index in range(rounds):
                change_file(source, round_index)
                source.read_bytes() if size <= GIB else None  # page cache warm for both
                for method in rotated(("local", "gateway"), round_index):
                    settle()
                    store: Any = local if method == "local" else remote
                    elapsed, package = timed(lambda s=store: s.put("large", [source]))
                    samples.add(f"{method} put", elapsed)
                    settle()
                    elapsed, count = timed(
                        lambda s=store, p=package: read_all(s.open_file(p, record=False))
                    )
                    assert count == size
                    samples.add(f"{method} read", elapsed)
            peak = server_peak_mb(url)
            remote.close()
        local.close()
    return samples, peak


# ---------------------------------------------------------------------------- part 2
def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def one_per_package(url: str, token: str, per_client: int) -> tuple[float, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}

    def client(index: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            for n in range(per_client):
                body = os.urandom(1024)
                start = time.perf_counter()
                while True:  # as any client: a busy server's 429 says when to come back
                    answer = http.put(f"/v1/packages/small-c{index}/files/p{n}.bin", content=body)
                    if answer.status_code != 429:
                        break
                    time.sleep(float(answer.headers.get("Retry-After", "1")))
                latencies.append(time.perf_counter() - start)
                answer.raise_for_status()
        return latencies

    return _run_clients(client)


def batches(url: str, token: str, per_client: int) -> tuple[float, list[float]]:
    def client(index: int) -> list[float]:
        latencies = []
        with RemoteArtifactStore(url, token, timeout=120) as remote:
            for start in range(0, per_client, BATCH):
                count = min(BATCH, per_client - start)
                requests = [
                    _put_request(f"batch-c{index}-p{start + n}", os.urandom(1024))
                    for n in range(count)
                ]
                began = time.perf_counter()
                remote.put_many(requests)
                latencies.append(time.perf_counter() - began)
        return latencies

    return _run_clients(client)


def _put_request(name: str, data: bytes) -> Any:
    from artifactstore_core import PutRequest

    return PutRequest(name, {"f.bin": data})


def _run_clients(client: Any) -> tuple[float, list[float]]:
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))
    elapsed = time.perf_counter() - started
    return elapsed, [latency for result in results for latency in result]


def small_packages(root: Path, per_client: int, postgres: str | None) -> list[list[object]]:
    rows: list[list[object]] = []
    flavours: list[tuple[str, Any]] = [("SQLite", lambda work: sqlite_url(work / "r.db"))]
    if postgres:
        flavours.append(
            ("PostgreSQL", lambda work: new_postgres_database(postgres, f"bench_{work.name}"))
        )
    for flavour, database in flavours:
        for label, run in (("one request per package", one_per_package), ("batch", batches)):
            with temp_dir(root, "http-small-") as work:
                database_url = database(work)
                with served(database_url, work / "blobs") as (url, token):
                    elapsed, latencies = run(url, token, per_client)
            total = CLIENTS * per_client
            rows.append(
                [
                    f"{flavour}, {label}",
                    total / elapsed,
                    statistics.median(latencies) * 1000,
                    _percentile(latencies, 0.99) * 1000,
                ]
            )
    return rows


# ---------------------------------------------------------------------------- main
def ratio(samples: Samples, what: str) -> float:
    """The median of the per-round ratios gateway / local for ``what``."""
    gateway, local = samples.values[f"gateway {what}"], samples.values[f"local {what}"]
    return statistics.median(g / loc for g, loc in zip(gateway, local, strict=True))


def main() -> int:
    args = parser(__doc__ or "")
    args.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    options = args.parse_args()
    size = 128 * MIB if options.quick else GIB
    rounds = 1 if options.quick else 3
    per_client = 10 if options.quick else 50
    root = temp_root(options.tmpdir)
    header(
        "HTTP gateway vs the library",
        options.quick,
        file=f"{size // MIB} MiB, {rounds} round(s)",
        server=f"artifactstore serve --workers {WORKERS} on loopback",
        clients=f"{CLIENTS} threads x {per_client} packages of 1 KiB",
    )
    samples, peak = large_file(root, size, rounds)
    rows = [
        [name, samples.median(name), samples.spread(name), size / MIB / samples.median(name)]
        for name in ("local put", "gateway put", "local read", "gateway read")
    ]
    table(["step", "median s", "min-max s", "MiB/s"], rows)
    put_ratio, read_ratio = ratio(samples, "put"), ratio(samples, "read")
    print(f"gateway/local: put {put_ratio:.2f}x, read {read_ratio:.2f}x (medians of rounds)")
    print(f"server peak RSS: {peak:.0f} MB\n")

    with maybe_postgres(options.no_postgres) as postgres:
        small = small_packages(root, per_client, postgres)
    table(["32 clients, 1 KiB packages", "packages/s", "p50 ms", "p99 ms"], small)
    checks = [
        (f"gateway put <= {RATIO_TARGET}x local ({put_ratio:.2f}x)", put_ratio <= RATIO_TARGET),
        (f"gateway read <= {RATIO_TARGET}x local ({read_ratio:.2f}x)", read_ratio <= RATIO_TARGET),
        (f"server peak RSS < {MEMORY_TARGET_MB} MB ({peak:.0f} MB)", peak < MEMORY_TARGET_MB),
    ]
    for label, rate, _, _ in small:
        target = BATCH_TARGET if "batch" in str(label) else SINGLE_TARGET
        checks.append((f"{label}: >= {target} packages/s ({rate:,.0f})", float(rate) >= target))  # type: ignore[arg-type]
    results = [
        row
        for step in ("put", "read")
        for row in sample_rows(f"{size // MIB} MiB file, {step}", samples, "MB/s",
                               names=[f"local {step}", f"gateway {step}"],
                               baseline=f"local {step}", convert=lambda s: size / s / 1e6,
                               size=size)
    ] + [
        result_row(f"{CLIENTS} clients, 1 KiB packages", str(label), "packages/s", [float(rate)],
                   p50_ms=p50, p99_ms=p99)
        for label, rate, p50, p99 in small
    ]  # fmt: skip
    results[1]["server_peak_mb"] = peak
    write_results("bench_http", results, checks, options.quick)
    return verdict(checks, options.quick)


if __name__ == "__main__":
    sys.exit(main())
