"""The registry resource configured at launch (``configure_at_launch()``), nested in the IO
manager: the documented Dagster way to give each run its own registry settings (a gateway
URL and a token bound to the run, say)."""

from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, asset, define_asset_job

from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource
from tests.dagster.conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


@asset
def launched() -> list[int]:
    return [1, 2]


def test_io_manager_takes_a_registry_configured_at_launch(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    registry = ArtifactStoreResource.configure_at_launch()
    defs = Definitions(
        assets=[launched],
        jobs=[define_asset_job("launch_job", selection=[launched])],
        resources={"artifactstore": registry, "io_manager": ArtifactStoreIOManager(store=registry)},
    )
    config = {
        "database_url": f"sqlite:///{tmp_path / 'registry.db'}",
        "storage_url": str(tmp_path / "blobs"),
        "actor": "launcher",
    }
    result = defs.resolve_job_def("launch_job").execute_in_process(
        run_config={"resources": {"artifactstore": {"config": config}}, **QUIET},
        instance=instance,
    )
    assert result.success
    store = ArtifactStoreResource(**config).get_store()
    package = store.describe("launched")
    assert package.actor == "launcher" and package.provenance.run_id == result.run_id
