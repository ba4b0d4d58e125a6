"""Moving a project from another IO manager: ``migrate_to_artifactstore`` end to end."""

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    DailyPartitionsDefinition,
    Definitions,
    FilesystemIOManager,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
    materialize,
    migrate_io_storage,
)
from dagster._utils.warnings import PreviewWarning

from artifactstore_core.errors import NotFoundError
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import (
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    build_artifact_checks,
    migrate_to_artifactstore,
)
from artifactstore_dagster.keys import MIGRATED_FROM, PACKAGE_ID

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

DAILY = DailyPartitionsDefinition(start_date="2024-05-01", end_date="2024-05-04")
DAYS = ["2024-05-01", "2024-05-02", "2024-05-03"]
DATA_VERSION_TAG = "dagster/data_version"


@asset(partitions_def=DAILY, metadata={"artifactstore/kind": "log"}, code_version="v3")
def raw(context: AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame(
        {"day": [context.partition_key], "value": [DAYS.index(context.partition_key)]}
    )


@asset
def settings() -> dict[str, Any]:
    return {"threshold": 1}


@asset(partitions_def=DAILY)
def summary(raw: pd.DataFrame, settings: dict[str, Any]) -> dict[str, Any]:
    return {"day": raw["day"][0], "above": int(raw["value"][0] >= settings["threshold"])}


# Downstream assets, run only after the migration, on artifact-store.
@asset(partitions_def=DAILY)
def enriched(raw: pd.DataFrame, settings: dict[str, Any]) -> dict[str, Any]:
    return {"rows": len(raw), **settings}


@asset
def report(summary: dict[str, dict[str, Any]]) -> int:
    return sum(s["above"] for s in summary.values())


REGIONS = MultiPartitionsDefinition(
    {
        "day": StaticPartitionsDefinition(DAYS[:2]),
        "region": StaticPartitionsDefinition(["eu", "us"]),
    }
)


@asset(partitions_def=REGIONS)
def measurements(context: AssetExecutionContext) -> bytes:
    return str(context.partition_key).encode()


SOURCE = [raw, settings, summary, measurements]
MULTI = [MultiPartitionKey({"day": DAYS[0], "region": r}) for r in ("eu", "us")]


def _latest(instance: DagsterInstance, key: str, partition: str | None = None) -> Any:
    return instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=AssetKey(key), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records[0]


def _materialize_on_the_filesystem(
    tmp_path: Path, instance: DagsterInstance, *, multi: bool = False
) -> Definitions:
    filesystem = FilesystemIOManager(base_dir=str(tmp_path / "fs"))
    for key in MULTI if multi else []:
        run = materialize([measurements], partition_key=key, instance=instance,
                          resources={"io_manager": filesystem}, run_config=QUIET)  # fmt: skip
        assert run.success
    for day in DAYS:
        selection = [raw, settings, summary] if day == DAYS[0] else [raw, summary]
        run = materialize(SOURCE, selection=selection, partition_key=day, instance=instance,
                          resources={"io_manager": filesystem}, run_config=QUIET)  # fmt: skip
        assert run.success
    return Definitions(assets=SOURCE, resources={"io_manager": filesystem})


@pytest.mark.parametrize(
    ("database_url", "batch_partitions"),
    [("sqlite", False), ("postgresql", True)],
    ids=["sqlite-per-partition", "postgresql-batched"],
    indirect=["database_url"],
)
def test_a_filesystem_project_migrates_and_runs_on(
    tmp_path: Path, instance: DagsterInstance, database_url: str, batch_partitions: bool
) -> None:
    resource = ArtifactStoreResource(database_url=database_url, storage_url=str(tmp_path / "b"))
    io_manager = ArtifactStoreIOManager(store=resource)
    store = resource.get_store()
    old = _materialize_on_the_filesystem(tmp_path, instance, multi=True)
    sources = {
        (key, day): _latest(instance, key, day)
        for key, days in (
            ("raw", DAYS),
            ("summary", DAYS),
            ("settings", [None]),
            ("measurements", [str(k) for k in MULTI]),
        )
        for day in days
    }

    result = migrate_to_artifactstore(
        definitions=old, instance=instance, io_manager=io_manager, batch_partitions=batch_partitions
    )
    assert result.failed == ()
    assert sum(s.size for s in result.migrated) == 9

    # Dagster now points to the packages, and each says where its value came from.
    for (key, day), source in sources.items():
        latest = _latest(instance, key, day)
        meta = latest.asset_materialization.metadata
        package = store.describe(meta[PACKAGE_ID].value)
        assert package.name == (f"{key}/{day.replace('|', '/')}" if day else key)
        assert source.run_id in meta[MIGRATED_FROM].value
        migrated = package.provenance.attributes["migrated"]
        assert migrated["run_id"] == source.run_id
        assert migrated["storage_id"] == source.storage_id
        assert migrated["io_manager_key"] == "io_manager"
        assert migrated["io_manager"] == "FilesystemIOManager"
        assert package.provenance.run_id == source.run_id
        assert package.provenance.attributes["dagster"]["partition_key"] == day
        # The value did not change, so neither does Dagster's data version.
        assert (
            latest.asset_materialization.tags[DATA_VERSION_TAG]
            == source.asset_materialization.tags[DATA_VERSION_TAG]
        )
    assert store.read_bytes(store.list_packages(name="measurements/2024-05-01/us")[0]) == (
        b"2024-05-01|us"
    )
    raw_package = store.list_packages(name="raw/2024-05-02")[0]
    assert raw_package.kind == "log"  # the asset's definition metadata applies
    assert raw_package.provenance.code_version == "v3"

    # The integrity checks see the migrated packages behind the latest materializations.
    checks = build_artifact_checks([raw, settings, summary], mode="digest")
    run = materialize([*SOURCE, *checks], selection=AssetSelection.all_asset_checks(),
                      instance=instance, resources={"artifactstore": resource},
                      run_config=QUIET)  # fmt: skip
    evaluations = run.get_asset_check_evaluations()
    assert len(evaluations) == 3
    assert all(e.passed for e in evaluations)
    assert sum(e.metadata["packages_verified"].value for e in evaluations) == 7

    # Downstream assets run on artifact-store and load the migrated values.
    new = {"io_manager": io_manager}
    for day in DAYS:
        run = materialize([*SOURCE, enriched], selection=[enriched], partition_key=day,
                          instance=instance, resources=new, run_config=QUIET)  # fmt: skip
        assert run.success
        assert run.output_for_node("enriched") == {"rows": 1, "threshold": 1}
    run = materialize([*SOURCE, report], selection=[report], instance=instance, resources=new,
                      run_config=QUIET)  # fmt: skip
    assert run.success
    assert run.output_for_node("report") == 2
    # Lineage spans the migration: the report was built from the migrated packages.
    report_inputs = store.list_packages(name="report")[0].provenance.attributes["dagster"]["inputs"]
    assert sorted(i["package_id"] for i in report_inputs) == sorted(
        str(store.list_packages(name=f"summary/{day}")[0].id) for day in DAYS
    )

    # A second migration finds everything recorded already and stores nothing.
    packages = len(store.list_packages())
    again = migrate_to_artifactstore(definitions=old, instance=instance, io_manager=io_manager)
    assert again.migrated == ()
    assert sum(s.size for s in again.skipped) == 9
    assert len(store.list_packages()) == packages


def test_a_partition_that_fails_to_migrate_is_reported_and_left_as_it_was(
    tmp_path: Path,
    instance: DagsterInstance,
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
) -> None:
    old = _materialize_on_the_filesystem(tmp_path, instance)
    (tmp_path / "fs" / "raw" / DAYS[1]).unlink()  # the old storage lost one partition

    result = migrate_to_artifactstore(definitions=old, instance=instance, io_manager=io_manager)
    assert [(s.key, sorted(s.expensively_compute_partition_keys())) for s in result.failed] == [
        (AssetKey("raw"), [DAYS[1]])
    ]
    assert store.list_packages(name=f"raw/{DAYS[1]}") == []
    assert PACKAGE_ID not in _latest(instance, "raw", DAYS[1]).asset_materialization.metadata
    assert len(store.list_packages(name=f"raw/{DAYS[0]}")) == 1


def test_dagsters_own_migration_leaves_dagster_pointing_to_the_old_storage(
    tmp_path: Path, instance: DagsterInstance, io_manager: ArtifactStoreIOManager
) -> None:
    """Why the helper exists: ``migrate_io_storage`` stores, but records no materialization."""
    old = _materialize_on_the_filesystem(tmp_path, instance)
    with pytest.warns(PreviewWarning):
        result = migrate_io_storage(
            definitions=old, instance=instance, destination_io_manager=io_manager
        )
    assert result.failed == ()
    with pytest.raises(
        NotFoundError, match=r"no 'artifactstore/package_id'.*migrate_to_artifactstore"
    ):
        materialize([*SOURCE, report], selection=[report], instance=instance,
                    resources={"io_manager": io_manager}, run_config=QUIET)  # fmt: skip
