"""A retention sweep over 100,000 packages (10% due, blobs shared) on SQLite and PostgreSQL.

The catalogue is generated, not put: each package has one or two 1 KiB files; about one
file in five reuses a blob of an earlier package (so some due packages share bytes with
live ones). Blob files are written for real (without fsync) so that the sweep deletes
real files and lists a real directory tree for orphans. Events are appended through
``EventLog.append`` and projected as the store does. Then one ``sweep`` (plan + execute:
expire 10%, collect their unshared blobs, scan for orphans) is timed, with peak memory
(``VmHWM`` of this process, reset before the sweep).

Target (SQLite): the sweep completes in under 20 s with peak memory under 200 MB.
PostgreSQL is reported alongside (the test server runs with fsync=off; said in output).
``--keep-rule prefix:bench`` sets a keep rule first (every package's "due" then asks how
many newer live versions its name has): run it beside the plain run to compare.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import uuid
from pathlib import Path

import sqlalchemy as sa
from _common import (
    RssSampler,
    header,
    hwm_mib,
    parser,
    reset_peak_rss,
    result_row,
    rss_mib,
    settle,
    sqlite_url,
    table,
    temp_dir,
    temp_root,
    timed,
    verdict,
    write_results,
)

from artifactstore_core import ArtifactStore
from artifactstore_core.config import create_engine
from artifactstore_core.domain import events as ev
from artifactstore_core.eventlog import EventLog
from artifactstore_core.projections import ProjectionWriter, project
from artifactstore_core.retention import sweep as sweep_module
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.testing.servers import postgres_server

DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BATCH = 500


def build_catalogue(store: ArtifactStore, packages: int, seed: int = 7) -> tuple[int, int]:
    """``packages`` packages, a tenth transient (due after 7 days); returns (due, blobs)."""
    rng = random.Random(seed)
    blobs = LocalBlobStore(store.blobs.url, fsync=False)  # type: ignore[attr-defined]
    known: list[dict[str, object]] = []
    log, due, made = EventLog(), 0, 0
    while made < packages:
        with store.engine.begin() as conn:
            writer = ProjectionWriter(conn)
            batch: list[ev.Event] = []
            for _ in range(min(BATCH, packages - made)):
                files, stored = [], []
                for index in range(rng.choice((1, 2))):
                    if known and rng.random() < 0.2:
                        entry = dict(rng.choice(known))
                    else:
                        written = blobs.write(io.BytesIO(rng.randbytes(1024))).hash
                        entry = {
                            "content_address": written.content_address,
                            "digest_sha256": written.sha256.hex,
                            "size": written.size,
                        }
                        known.append(entry)
                        stored.append(entry)
                    files.append({"path": f"part-{index}.bin", **entry})
                transient = made % 10 == 0
                due += transient
                retention = "transient" if transient else "summary-evidence"
                days = 7 if transient else 365
                batch.append(
                    ev.PackageRegistered(
                        package_id=str(uuid.UUID(int=rng.getrandbits(128))),
                        name=f"bench/asset_{made % 500}", version=made // 500 + 1,
                        kind="output", content_address=f"blake3:{rng.randbytes(32).hex()}",
                        digest_sha256=rng.randbytes(32).hex(),
                        size=sum(int(f["size"]) for f in files), files=files,  # type: ignore[call-overload]
                        metadata={"n": made}, provenance={"inputs": []},
                        retention_class=retention,
                        expires_at=(T0 + days * DAY).isoformat(),
                    )
                )  # fmt: skip
                batch.extend(
                    ev.BlobStored(
                        content_address=str(e["content_address"]),
                        backend="hot",
                        digest_sha256=str(e["digest_sha256"]),
                        size=1024,
                        uri="file:///bench",
                    )
                    for e in stored
                )
                made += 1
            for recorded in log.append(conn, batch, actor="bench", at=T0):
                writer.add(project(recorded))
            writer.flush()
    return due, len(known)


def run(
    label: str, database_url: str, root: Path, packages: int, keep_rule: str | None = None
) -> dict[str, float]:
    store = ArtifactStore.open(database_url, str(root / "blobs"), gc_grace=dt.timedelta(hours=1))
    seconds, (due, blob_count) = timed(lambda: build_catalogue(store, packages))
    if keep_rule:
        store.set_keep_rule(keep_rule)
        # The newest version of each name is kept: those that were due are not any more.
        due -= sum(1 for v in range(packages - 500, packages) if v % 10 == 0)
    print(f"{label}: built {packages:,} packages ({due:,} due, {blob_count:,} blobs) "
          f"in {seconds:.0f} s")  # fmt: skip
    settle()
    exact = reset_peak_rss()
    before = rss_mib()
    with RssSampler() as sampler:
        seconds, result = timed(lambda: store.sweep(T0 + 8 * DAY))
    peak = hwm_mib() if exact else sampler.peak
    assert len(result.expired) == due, (len(result.expired), due)
    # The share of the check against the event log (ADR-0005), timed again on its own.
    check_seconds, _ = timed(lambda: sweep_module.check_plan(store.ledger, result.plan))
    remaining = sum(1 for _ in store.blobs.iter_addresses())
    store.close()
    return {
        "seconds": seconds,
        "log_check_seconds": check_seconds,
        "expired": len(result.expired),
        "deleted": len(result.deleted),
        "kept_shared": result.plan.shared_kept_blobs,
        "remaining": remaining,
        "peak_mib": peak,
        "rss_before_mib": before,
    }


def main() -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--packages", type=int, help="catalogue size (default 100,000)")
    args.add_argument("--skip-postgres", action="store_true")
    args.add_argument("--keep-rule", help="set this keep rule before sweeping")
    options = args.parse_args()
    packages = options.packages or (5_000 if options.quick else 100_000)
    header("retention sweep", options.quick, packages=packages, due="10%", shared="~20% files")
    root = temp_root(options.tmpdir)
    results: dict[str, dict[str, float]] = {}
    with temp_dir(root, "bench-sweep-sqlite-") as path:
        results["SQLite"] = run("SQLite", sqlite_url(path / "registry.db"), path, packages,
                                options.keep_rule)  # fmt: skip
    if not options.skip_postgres:
        with postgres_server() as server, temp_dir(root, "bench-sweep-pg-") as path:
            admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text("CREATE DATABASE bench"))
            admin.dispose()
            results["PostgreSQL (fsync=off)"] = run("PostgreSQL", server.url("bench"), path,
                                                    packages, options.keep_rule)  # fmt: skip
    table(
        ["database", "sweep s", "log check s", "expired", "blobs deleted", "shared kept",
         "peak MiB"],
        [(name, f"{r['seconds']:.1f}", f"{r['log_check_seconds']:.1f}", int(r["expired"]),
          int(r["deleted"]), int(r["kept_shared"]), f"{r['peak_mib']:.0f}")
         for name, r in results.items()],
    )  # fmt: skip
    sqlite = results["SQLite"]
    checks = [
        (f"SQLite sweep {sqlite['seconds']:.1f} s < 20 s", sqlite["seconds"] < 20),
        (f"SQLite peak memory {sqlite['peak_mib']:.0f} MiB < 200 MB",
         sqlite["peak_mib"] * 1.048576 < 200),
    ]  # fmt: skip
    scenario = f"sweep of {packages:,} packages, 10% due" + (
        f", keep rule {options.keep_rule}" if options.keep_rule else "")  # fmt: skip
    rows = [result_row(scenario, f"sweep, {name}", "s", [r["seconds"]], peak_rss_mib=r["peak_mib"],
                       log_check_s=r["log_check_seconds"], expired=int(r["expired"]))
            for name, r in results.items()]  # fmt: skip
    write_results("bench_sweep", rows, checks, options.quick)
    return verdict(checks, options.quick)


if __name__ == "__main__":
    raise SystemExit(main())
