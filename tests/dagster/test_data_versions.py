"""Content-based data versions by default (issue #14 item 10), and the Dagster route they
rest on: if a Dagster release changes it, these tests fail, loudly."""

from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    DataVersion,
    MaterializeResult,
    OutputContext,
    StaticPartitionsDefinition,
    asset,
    materialize,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.execution.context.system import StepExecutionContext

from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource
from artifactstore_dagster.keys import CONTENT_DIGEST

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

CONTENT = {"value": "same"}
shards = StaticPartitionsDefinition(["a", "b"])


@asset
def report() -> dict[str, str]:
    return dict(CONTENT)


@asset(partitions_def=shards)
def shard(context: AssetExecutionContext) -> str:
    return f"shard {context.partition_key}"


@asset
def pinned() -> MaterializeResult[Any]:
    return MaterializeResult(value="bytes", data_version=DataVersion("chosen-by-the-asset"))


def _versions(instance: DagsterInstance, key: str, partition: str | None = None) -> tuple[str, str]:
    """The latest materialization's data version and content digest."""
    from dagster import AssetRecordsFilter

    (record,) = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=AssetKey(key), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    materialization = record.asset_materialization
    assert materialization is not None
    return materialization.tags[DATA_VERSION_TAG], materialization.metadata[CONTENT_DIGEST].value


def _run(
    assets: list[Any], io: ArtifactStoreIOManager, instance: DagsterInstance, **kw: Any
) -> None:
    assert materialize(
        assets, resources={"io_manager": io}, instance=instance, run_config=QUIET, **kw
    ).success


def test_a_rerun_with_equal_bytes_keeps_its_data_version_by_default(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance
) -> None:
    assert io_manager.auto_data_version  # the default
    _run([report], io_manager, instance)
    first, digest = _versions(instance, "report")
    _run([report], io_manager, instance)
    assert _versions(instance, "report") == (first, digest) and first == digest

    CONTENT["value"] = "changed"
    try:
        _run([report], io_manager, instance)
    finally:
        CONTENT["value"] = "same"
    changed, changed_digest = _versions(instance, "report")
    assert changed == changed_digest != first


def test_each_partition_gets_the_digest_of_its_own_content(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance
) -> None:
    for key in ("a", "b", "a"):
        _run([shard], io_manager, instance, partition_key=key)
    a, b = _versions(instance, "shard", "a"), _versions(instance, "shard", "b")
    assert a[0] == a[1] and b[0] == b[1] and a[0] != b[0]


def test_a_data_version_the_asset_returns_wins(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance
) -> None:
    _run([pinned], io_manager, instance)
    version, digest = _versions(instance, "pinned")
    assert version == "chosen-by-the-asset" != digest


def test_turned_off_every_run_has_a_new_data_version(
    resource: ArtifactStoreResource, instance: DagsterInstance
) -> None:
    off = ArtifactStoreIOManager(store=resource, auto_data_version=False)
    seen = set()
    for _ in range(2):
        _run([report], off, instance)
        version, digest = _versions(instance, "report")
        assert version != digest
        seen.add(version)
    assert len(seen) == 2  # the trade-off the guide states


def test_the_dagster_route_it_rests_on_is_still_there() -> None:
    """The IO manager reaches the step through ``OutputContext.step_context`` and sets
    ``StepExecutionContext.set_data_version``, which Dagster reads when it builds the
    materialization after ``handle_output``: not public API, so pinned here."""
    assert isinstance(getattr(OutputContext, "step_context", None), property), (
        "Dagster removed OutputContext.step_context: content data versions from the IO "
        "manager no longer work; see artifactstore_dagster/data_versions.py"
    )
    assert callable(getattr(StepExecutionContext, "set_data_version", None)), (
        "Dagster removed StepExecutionContext.set_data_version: content data versions from "
        "the IO manager no longer work; see artifactstore_dagster/data_versions.py"
    )
