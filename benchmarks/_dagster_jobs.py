"""Jobs of the Dagster benchmarks (bench_dagster_io.py, bench_dagster.py).

Only Dagster is imported at the top: a step process of the ``FilesystemIOManager``
baseline, which imports this module, then loads nothing of artifact-store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import (
    AssetIn,
    AssetsDefinition,
    Definitions,
    FilesystemIOManager,
    JobDefinition,
    asset,
    define_asset_job,
)

#: The variants of ``define_job``: the baseline first.
VARIANTS = ("filesystem", "artifactstore", "artifactstore + checks")
BASELINE = VARIANTS[0]


def build_assets(count: int, chain: int) -> list[AssetsDefinition]:
    """``count`` assets in chains of ``chain``: each returns a small dict from its parent."""
    assets: list[AssetsDefinition] = []
    for index in range(count):
        name = f"asset_{index:04d}"
        if index % chain == 0:

            @asset(name=name)
            def root() -> dict[str, Any]:
                return {"value": 1, "items": list(range(20))}

            assets.append(root)
        else:

            @asset(name=name, ins={"parent": AssetIn(f"asset_{index - 1:04d}")})
            def child(parent: dict[str, Any]) -> dict[str, Any]:
                return {"value": parent["value"] + 1, "items": parent["items"]}

            assets.append(child)
    return assets


def registry_urls(root: str | Path) -> tuple[str, str]:
    """(database URL, storage URL) of the benchmark registry under ``root``."""
    return f"sqlite:///{Path(root) / 'registry.db'}", str(Path(root) / "blobs")


def define_job(variant: str, root: str, assets: int, chain: int) -> JobDefinition:
    """The job ``bench_job`` of ``variant`` (``VARIANTS``) with its storage under ``root``:
    the documented setup (``build_artifactstore_defs``, checks in digest mode for the
    variant with checks) or Dagster's ``FilesystemIOManager``."""
    defs = build_assets(assets, chain)
    job = define_asset_job("bench_job", selection=defs)
    if variant == BASELINE:
        io_manager = FilesystemIOManager(base_dir=str(Path(root) / "fs_io"))
        merged = Definitions(assets=defs, jobs=[job], resources={"io_manager": io_manager})
        return merged.resolve_job_def("bench_job")
    from artifactstore_dagster import ArtifactStoreResource, build_artifactstore_defs

    database_url, storage_url = registry_urls(root)
    resource = ArtifactStoreResource(database_url=database_url, storage_url=storage_url)
    checked = defs if variant == "artifactstore + checks" else ()
    merged = Definitions.merge(
        Definitions(assets=defs, jobs=[job]),
        build_artifactstore_defs(resource=resource, checked_assets=checked, check_mode="digest"),
    )
    return merged.resolve_job_def("bench_job")
