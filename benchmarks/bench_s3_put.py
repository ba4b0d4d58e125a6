"""``put`` of a 1 GiB file to the S3 server versus a plain s3fs ``put_file``.

Both go to the same moto server on loopback, interleaved round by round, each object
deleted after its round. ``put`` hashes the file (BLAKE3 + SHA-256) and uploads it
straight to its content address, verifying the digest before the multipart upload is
completed. Peak memory of the ``put`` is this process's ``VmHWM`` reset right before it.

Targets: median put / put_file <= 1.25; put peak memory < 150 MB.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from _common import (
    Samples,
    header,
    hwm_mib,
    parser,
    reset_peak_rss,
    rss_mib,
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

from artifactstore_core import ArtifactStore, Settings
from artifactstore_core.testing.servers import (
    S3_TEST_ACCESS_KEY,
    S3_TEST_REGION,
    S3_TEST_SECRET_KEY,
    create_s3_bucket,
    s3_client,
    s3_server,
)

MiB = 2**20


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for _ in range(size // (64 * MiB)):
            out.write(os.urandom(64 * MiB))
        out.write(os.urandom(size % (64 * MiB)))


def main() -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--size-mib", type=int, help="file size (default 1024; quick 64)")
    args.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 2)")
    options = args.parse_args()
    size = (options.size_mib or (64 if options.quick else 1024)) * MiB
    rounds = options.rounds or (2 if options.quick else 3)
    header("S3 put vs s3fs put_file", options.quick, size_mib=size // MiB, rounds=rounds)
    import s3fs

    root = temp_root(options.tmpdir)
    samples = Samples()
    with s3_server() as server, temp_dir(root, "bench-s3-") as path:
        endpoint = server.endpoint_url
        bucket = create_s3_bucket(endpoint, "bench")
        source = path / "big.bin"
        make_file(source, size)
        fs = s3fs.S3FileSystem(
            key=S3_TEST_ACCESS_KEY, secret=S3_TEST_SECRET_KEY,
            client_kwargs={"endpoint_url": endpoint},
        )  # fmt: skip
        os.environ.setdefault("AWS_DEFAULT_REGION", S3_TEST_REGION)
        settings = Settings(
            database_url=sqlite_url(path / "registry.db"), storage_url=f"s3://{bucket}/blobs",
            s3_endpoint_url=endpoint, s3_region=S3_TEST_REGION,
            s3_access_key_id=S3_TEST_ACCESS_KEY,
            s3_secret_access_key=S3_TEST_SECRET_KEY,  # type: ignore[arg-type]
        )  # fmt: skip
        store = ArtifactStore.from_settings(settings)
        client = s3_client(endpoint)
        peaks = []
        for index in range(rounds):
            settle()
            key = f"{bucket}/plain/{uuid.uuid4().hex}"
            seconds, _ = timed(lambda key=key: fs.put_file(str(source), key))  # type: ignore[misc]
            samples.add("s3fs put_file", seconds)
            fs.rm(key)
            settle()
            reset_peak_rss()
            baseline = rss_mib()
            seconds, package = timed(lambda i=index: store.put(f"bench/big{i}", source))  # type: ignore[misc]
            peaks.append(hwm_mib() - baseline)
            samples.add("ArtifactStore.put", seconds)
            blob = package.files[0].blob
            client.delete_object(Bucket=bucket, Key=store.blobs.key(blob.blake3))  # type: ignore[attr-defined]
            with store.engine.begin() as conn:  # forget the location so the next put uploads
                conn.exec_driver_sql("DELETE FROM storage_locations")
        store.close()
    plain, put = samples.median("s3fs put_file"), samples.median("ArtifactStore.put")
    table(
        ["what", "median s", "MiB/s", "spread s"],
        [(name, f"{samples.median(name):.2f}", f"{size / MiB / samples.median(name):.0f}",
          samples.spread(name)) for name in ("s3fs put_file", "ArtifactStore.put")],
    )  # fmt: skip
    ratio = put / plain
    peak = max(peaks)
    print(f"ratio put / put_file: {ratio:.2f}; put peak memory above baseline: {peak:.0f} MiB")
    checks = [(f"put / put_file = {ratio:.2f} <= 1.25", ratio <= 1.25),
              (f"peak memory {peak:.0f} MiB < 150 MB", peak * 1.048576 < 150)]  # fmt: skip
    scenario = f"{size // MiB} MiB file to S3 (moto, loopback)"
    rows = sample_rows(
        scenario, samples, "MB/s", baseline="s3fs put_file", convert=lambda s: size / s / 1e6
    )
    rows[1] |= {"peak_rss_mib": peak, "headline": True}
    write_results("bench_s3_put", rows, checks, options.quick)
    return verdict(checks, options.quick)


if __name__ == "__main__":
    raise SystemExit(main())
