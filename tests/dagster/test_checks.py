"""Integrity asset checks: exists mode (blobs present) and digest mode (re-hash)."""

from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    Definitions,
    StaticPartitionsDefinition,
    asset,
    materialize,
)

from artifactstore_core.hashing import Digest
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import (
    CHECK_NAMES,
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    build_artifact_checks,
)

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

shards = StaticPartitionsDefinition(["s1", "s2"])


@asset
def evidence() -> dict[str, str]:
    return {"evidence": "x" * 1000}


@asset(partitions_def=shards)
def sharded(context: AssetExecutionContext) -> str:
    return f"shard {context.partition_key}"


def _check(
    assets: list[Any],
    mode: str,
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    instance: DagsterInstance,
) -> Any:
    checks = build_artifact_checks(assets, mode=mode)  # type: ignore[arg-type]
    defs = Definitions(
        assets=assets,
        asset_checks=checks,
        resources={"io_manager": io_manager, "artifactstore": resource},
    )
    check_keys = {key for check in checks for key in check.check_keys}
    job = defs.get_implicit_global_asset_job_def().get_subset(
        asset_check_selection=check_keys, asset_selection=set()
    )
    run = job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)
    evaluations = run.get_asset_check_evaluations()
    assert len(evaluations) == len(checks)
    return evaluations


def _materialize(
    assets: list[Any], io: ArtifactStoreIOManager, instance: DagsterInstance, **kw: Any
) -> None:
    assert materialize(
        assets, resources={"io_manager": io}, instance=instance, run_config=QUIET, **kw
    ).success


def _blob_path(store: ArtifactStore, reference: str, tmp_path: Path) -> Path:
    entry = store.describe(reference).files[0]
    digest: Digest = entry.blob.blake3
    return Path(store.blobs.uri(digest).removeprefix("file://"))


def test_checks_pass_on_intact_packages_in_both_modes(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    instance: DagsterInstance,
) -> None:
    _materialize([evidence], io_manager, instance)
    exists = _check([evidence], "exists", resource, io_manager, instance)[0]
    assert exists.passed and exists.check_name == CHECK_NAMES["exists"]
    assert exists.metadata["packages_verified"].value == 1
    assert exists.metadata["bytes_verified"].value == 0  # presence only
    digest = _check([evidence], "digest", resource, io_manager, instance)[0]
    assert digest.passed and digest.metadata["bytes_verified"].value > 1000


def test_missing_and_corrupt_blobs_fail_with_details(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    _materialize([evidence], io_manager, instance)
    blob = _blob_path(store, "evidence", tmp_path)
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    corrupt = _check([evidence], "digest", resource, io_manager, instance)[0]
    assert not corrupt.passed
    assert corrupt.metadata["corrupt_blobs"].value == 1
    assert corrupt.metadata["corrupt"].value[0]["packages"] == ["evidence@1"]
    # exists mode does not read bytes: a tampered blob is still present.
    assert _check([evidence], "exists", resource, io_manager, instance)[0].passed

    blob.unlink()
    missing = _check([evidence], "exists", resource, io_manager, instance)[0]
    assert not missing.passed
    assert missing.metadata["missing_blobs"].value == 1
    assert missing.metadata["missing"].value[0]["content_address"].startswith("blake3:")


def test_partitioned_asset_checks_every_partition(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    for shard in ("s1", "s2"):
        _materialize([sharded], io_manager, instance, partition_key=shard)
    result = _check([sharded], "exists", resource, io_manager, instance)[0]
    assert result.passed and result.metadata["packages_verified"].value == 2
    _blob_path(store, "sharded/s2", tmp_path).unlink()
    result = _check([sharded], "exists", resource, io_manager, instance)[0]
    assert not result.passed
    assert result.metadata["missing"].value[0]["packages"] == ["sharded/s2@1"]


@asset(partitions_def=shards)
def same_bytes() -> str:
    return "identical in every shard"


def test_a_blob_shared_by_partitions_is_checked_once_and_names_every_package(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    for shard in ("s1", "s2"):
        _materialize([same_bytes], io_manager, instance, partition_key=shard)
    result = _check([same_bytes], "digest", resource, io_manager, instance)[0]
    assert result.passed and result.metadata["packages_verified"].value == 2
    assert result.metadata["blobs_verified"].value == 1
    _blob_path(store, "same_bytes/s1", tmp_path).unlink()
    result = _check([same_bytes], "exists", resource, io_manager, instance)[0]
    assert not result.passed and result.metadata["missing_blobs"].value == 1
    assert sorted(result.metadata["missing"].value[0]["packages"]) == [
        "same_bytes/s1@1",
        "same_bytes/s2@1",
    ]


def test_an_asset_never_materialized_fails_the_check(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    instance: DagsterInstance,
) -> None:
    result = _check([evidence], "exists", resource, io_manager, instance)[0]
    assert not result.passed
    assert "no materialization recorded by artifact-store" in (result.description or "")


def test_in_a_partitioned_run_only_that_partition_is_checked(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    _materialize([sharded], io_manager, instance, partition_key="s1")
    _blob_path(store, "sharded/s1", tmp_path).unlink()  # s1 is broken from now on
    checks = build_artifact_checks([sharded])
    result = materialize(
        [sharded, *checks],
        partition_key="s2",
        resources={"io_manager": io_manager, "artifactstore": resource},
        instance=instance,
        run_config=QUIET,
    )
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed and evaluation.metadata["scope"].value == "partition s2"
    assert evaluation.metadata["packages"].value == ["sharded/s2@1"]


def test_the_check_of_a_partitioned_asset_is_partitioned_like_it(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    instance: DagsterInstance,
) -> None:
    # Rests on Dagster's (preview) partitioned asset checks: this fails if they change.
    checks = build_artifact_checks([sharded], partitioned=True)
    assert [spec.partitions_def for spec in checks[0].check_specs] == [shards]
    (by_key,) = build_artifact_checks(["sharded"], partitioned=True)[0].check_specs
    assert by_key.partitions_def is None  # a bare key says nothing about partitions
    (default,) = build_artifact_checks([sharded])[0].check_specs
    assert default.partitions_def is None  # opt-in: such checks cannot run unpartitioned
    result = materialize(
        [sharded, *checks],
        partition_key="s1",
        resources={"io_manager": io_manager, "artifactstore": resource},
        instance=instance,
        run_config=QUIET,
    )
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed and evaluation.partition == "s1"  # the UI shows it per partition
    assert evaluation.description == "partition s1: 1 package(s), 1 blob(s) intact"


def test_a_check_run_for_a_partition_checks_it_even_when_never_materialized(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    instance: DagsterInstance,
) -> None:
    _materialize([sharded], io_manager, instance, partition_key="s1")
    for checks in (
        build_artifact_checks([sharded], partitioned=True),
        build_artifact_checks([sharded]),
    ):
        defs = Definitions(
            assets=[sharded],
            asset_checks=checks,
            resources={"io_manager": io_manager, "artifactstore": resource},
        )
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_check_selection={checks[0].check_key}, asset_selection=set()
        )
        run = job.execute_in_process(instance=instance, run_config=QUIET, partition_key="s2")
        evaluation = run.get_asset_check_evaluations()[0]
        # Not s1's intact package standing in for s2: s2 has nothing to verify.
        assert not evaluation.passed
        assert evaluation.description == (
            "sharded partition 's2' has no materialization recorded by artifact-store"
        )
        assert evaluation.metadata["scope"].value == "partition s2"


triple = StaticPartitionsDefinition(["t1", "t2", "t3"])


@asset(partitions_def=triple)
def tripled(context: AssetExecutionContext) -> str:
    return f"part {context.partition_key}"


@pytest.mark.parametrize("partitioned", [False, True])
def test_a_check_run_for_a_partition_range_checks_that_range(
    partitioned: bool,
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    for key in ("t1", "t2", "t3"):
        _materialize([tripled], io_manager, instance, partition_key=key)
    _blob_path(store, "tripled/t3", tmp_path).unlink()  # outside the range checked below
    checks = build_artifact_checks([tripled], partitioned=partitioned)
    defs = Definitions(
        assets=[tripled],
        asset_checks=checks,
        resources={"io_manager": io_manager, "artifactstore": resource},
    )
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={checks[0].check_key}, asset_selection=set()
    )

    def run_range(start: str, end: str) -> Any:
        tags = {
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
        }
        run = job.execute_in_process(instance=instance, run_config=QUIET, tags=tags)
        return run.get_asset_check_evaluations()[0]

    evaluation = run_range("t1", "t2")
    assert evaluation.passed and evaluation.metadata["scope"].value == "partitions t1...t2"
    assert sorted(evaluation.metadata["packages"].value) == ["tripled/t1@1", "tripled/t2@1"]
    evaluation = run_range("t2", "t3")
    assert not evaluation.passed
    assert evaluation.metadata["missing"].value[0]["packages"] == ["tripled/t3@1"]


def test_an_unpartitioned_assets_check_in_a_partitioned_run_checks_its_package(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    instance: DagsterInstance,
) -> None:
    checks = build_artifact_checks([evidence])
    result = materialize(
        [sharded, evidence, *checks],
        partition_key="s1",
        resources={"io_manager": io_manager, "artifactstore": resource},
        instance=instance,
        run_config=QUIET,
    )
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed and evaluation.metadata["scope"].value == "latest materialization"
    assert evaluation.metadata["packages"].value == ["evidence@1"]
