"""A partitioned job on the Dask executor, rebuilt in each Dask worker (test_distributed).

Two root assets per partition (so both workers get work at once), a join and a summary.
Each output carries the partition and the process that computed it. The registry is the
``artifactstore`` resource, configured at launch: from the run config (a gateway URL and
a run-bound token) or, when that config is empty, from the worker's ``ARTIFACTSTORE_*``
environment.
"""

import os

from dagster import (
    AssetExecutionContext,
    Definitions,
    JobDefinition,
    StaticPartitionsDefinition,
    asset,
    define_asset_job,
)
from dagster_dask import dask_executor

from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource

PARTITIONS = StaticPartitionsDefinition(["north", "south", "east"])
#: Every package of the job is named under this prefix (a token can be scoped to it).
PREFIX = "fleet"


@asset(partitions_def=PARTITIONS)
def sensor_readings(context: AssetExecutionContext) -> dict[str, object]:
    return {"partition": context.partition_key, "values": [1, 2, 3], "pid": os.getpid()}


@asset(partitions_def=PARTITIONS)
def station_metadata(context: AssetExecutionContext) -> dict[str, object]:
    return {"partition": context.partition_key, "station": "st-1", "pid": os.getpid()}


@asset(partitions_def=PARTITIONS)
def calibrated(
    context: AssetExecutionContext,
    sensor_readings: dict[str, object],
    station_metadata: dict[str, object],
) -> dict[str, object]:
    assert sensor_readings["partition"] == station_metadata["partition"] == context.partition_key
    values = sensor_readings["values"]
    assert isinstance(values, list)
    return {
        "partition": context.partition_key,
        "station": station_metadata["station"],
        "values": [v * 10 for v in values],
        "pid": os.getpid(),
    }


@asset(partitions_def=PARTITIONS)
def daily_summary(context: AssetExecutionContext, calibrated: dict[str, object]) -> str:
    values = calibrated["values"]
    assert isinstance(values, list)
    return f"{context.partition_key} {calibrated['station']} total={sum(values)}"


ASSETS = [sensor_readings, station_metadata, calibrated, daily_summary]
ASSET_NAMES = [a.key.to_user_string() for a in ASSETS]


def define_job() -> JobDefinition:
    """The job of the four assets on the Dask executor, with the IO manager on the registry."""
    registry = ArtifactStoreResource.configure_at_launch()
    defs = Definitions(
        assets=ASSETS,
        jobs=[define_asset_job("fleet_job", selection=ASSETS, executor_def=dask_executor)],
        resources={
            "artifactstore": registry,
            "io_manager": ArtifactStoreIOManager(store=registry, package_prefix=PREFIX),
        },
    )
    return defs.resolve_job_def("fleet_job")
