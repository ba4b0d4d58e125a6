"""A Dagster asset materialized with the resource in remote mode lands in the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from artifactstore_core.client import RemoteArtifactStore
from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource
from artifactstore_dagster.keys import PACKAGE_ID
from tests.dagster.conftest import QUIET
from tests.http import conftest as http
from tests.http.conftest import LiveServer, issue_token

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

# A live gateway over each store flavour (SQLite + local, PostgreSQL + S3).
gateway_store = http.gateway_store
gateway = http.gateway


@asset(metadata={"artifactstore/retention_class": "summary-evidence"}, code_version="v1")
def numbers() -> list[int]:
    return [1, 2, 3]


@asset
def total(numbers: list[int]) -> dict[str, Any]:
    return {"total": sum(numbers)}


def test_assets_materialized_in_remote_mode_land_in_the_registry(
    gateway: LiveServer, tmp_path: Path
) -> None:
    secret = issue_token(gateway.store, "package:**:read,write", actor="pipeline")
    resource = ArtifactStoreResource(url=gateway.url, token=secret)
    io_manager = ArtifactStoreIOManager(store=resource, scratch_dir=str(tmp_path / "scratch"))
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [numbers, total], resources={"io_manager": io_manager}, instance=instance,
            run_config=QUIET,
        )  # fmt: skip
        assert result.success
        record = instance.get_latest_materialization_event(AssetKey("total"))
        assert record is not None and record.asset_materialization is not None
        package_id = record.asset_materialization.metadata[PACKAGE_ID].value
    assert isinstance(resource.get_store(), RemoteArtifactStore)
    stored = gateway.store.describe("total")
    assert str(stored.id) == package_id and stored.actor == "pipeline"
    upstream = gateway.store.describe("numbers")
    assert upstream.retention_class == "summary-evidence"
    assert stored.provenance.inputs == (str(upstream.id),)
    assert stored.provenance.run_id == result.run_id
    # The pipeline's token (read, write) keeps its current outputs: one keep rule per asset.
    assert {r.selector for r in gateway.store.keep_rules()} == {"prefix:numbers", "prefix:total"}
