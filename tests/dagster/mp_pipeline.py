"""A job rebuilt in each step process of the multiprocess executor (test_postgres_multiprocess)."""

import os
import tempfile
from pathlib import Path

from dagster import Definitions, JobDefinition, asset, define_asset_job

from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource


@asset(metadata={"artifactstore/retention_class": "raw-evidence"})
def shard_a() -> dict[str, object]:
    return {"shard": "a", "pid": os.getpid()}


@asset(metadata={"artifactstore/retention_class": "raw-evidence"})
def shard_b() -> dict[str, object]:
    return {"shard": "b", "pid": os.getpid()}


@asset(metadata={"artifactstore/retention_class": "raw-evidence"})
def shard_c() -> str:
    return f"shard c from {os.getpid()}"


@asset(metadata={"artifactstore/retention_class": "summary-evidence"})
def joined(shard_a: dict[str, object], shard_b: dict[str, object], shard_c: str) -> list[str]:
    return sorted([str(shard_a["shard"]), str(shard_b["shard"]), shard_c.split()[1]])


@asset(metadata={"artifactstore/retention_class": "release-evidence"})
def evidence_bundle(joined: list[str]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="mp-bundle-"))
    (root / "joined.txt").write_text("\n".join(joined))
    (root / "meta").mkdir()
    (root / "meta" / "count.txt").write_text(str(len(joined)))
    return root


ASSETS = [shard_a, shard_b, shard_c, joined, evidence_bundle]


def define_job(database_url: str, storage_url: str) -> JobDefinition:
    """The job of all five assets with the IO manager on the given registry."""
    resource = ArtifactStoreResource(database_url=database_url, storage_url=storage_url)
    defs = Definitions(
        assets=ASSETS,
        jobs=[define_asset_job("mp_job", selection=ASSETS)],
        resources={"io_manager": ArtifactStoreIOManager(store=resource)},
    )
    return defs.resolve_job_def("mp_job")
