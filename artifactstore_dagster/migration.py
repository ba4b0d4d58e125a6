"""``migrate_to_artifactstore``: move a project's stored asset values into artifact-store.

Dagster's ``migrate_io_storage`` loads every materialized asset (partition) with the IO
manager the definitions give it and passes the value to a destination's
``handle_output`` with a bare context: no asset metadata, no run, and no materialization
is recorded, so Dagster still points to the old storage and ``ArtifactStoreIOManager``
refuses to load what was migrated. This helper runs the same migration (Dagster's
discovery, loading, skipping and batching) with a destination that:

- stores each value as the asset (partition)'s package, with the asset's definition
  metadata (kind, retention class, serializer), all partitions of a batch or none;
- records where the value came from: the package's provenance carries the source run id,
  the code version of the source materialization and ``attributes.migrated`` (source run,
  storage id and time of the materialization, the source IO manager key and class);
- reports a materialization for each (runless, like an external asset's) with the
  ``artifactstore/*`` metadata and the source's data version tags, so Dagster points to
  the package, and the asset is not shown as changed.

An asset (partition) whose latest materialization already points to a package is
skipped, so a second run stores nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    Definitions,
    EventLogRecord,
    InputContext,
    IOManager,
    MetadataValue,
    MigrateIOStorageResult,
    OutputContext,
    build_output_context,
)
from dagster import migrate_io_storage as dagster_migrate_io_storage

from artifactstore_core.errors import NotFoundError
from artifactstore_dagster.io_manager import ArtifactStoreIOManager, _timestamp
from artifactstore_dagster.keys import MIGRATED_FROM, PACKAGE_ID
from artifactstore_dagster.translator import OutputKey

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

__all__ = ["migrate_to_artifactstore"]


def migrate_to_artifactstore(
    *,
    definitions: Definitions,
    instance: DagsterInstance,
    io_manager: ArtifactStoreIOManager,
    selection: AssetSelection | None = None,
    should_skip: Callable[[AssetKey, str | None], bool] | None = None,
    batch_partitions: bool = False,
    transform: Callable[[object], object] | None = None,
) -> MigrateIOStorageResult:
    """Migrate every materialized asset (partition) of ``definitions`` (as they are, with
    the IO managers that wrote the values) on ``instance`` into artifact-store through
    ``io_manager``.

    ``selection``, ``should_skip``, ``batch_partitions`` and ``transform`` are those of
    ``dagster.migrate_io_storage``, whose ``MigrateIOStorageResult`` is returned; a failed
    asset (partition) is logged by Dagster with its reason and left as it was. Switch the
    definitions to ``ArtifactStoreIOManager`` afterwards.
    """
    destination = _Destination(
        io_manager, instance, definitions.resolve_asset_graph(), definitions.resources or {}
    )

    def skip(key: AssetKey, partition: str | None) -> bool:
        if should_skip is not None and should_skip(key, partition):
            return True
        latest = _latest(instance, key, partition)
        materialization = latest.asset_materialization if latest is not None else None
        return materialization is not None and PACKAGE_ID in materialization.metadata

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*migrate_io_storage.*preview")
        return dagster_migrate_io_storage(
            definitions=definitions,
            instance=instance,
            destination_io_manager=destination,
            selection=selection,
            should_skip=skip,
            batch_partitions=batch_partitions,
            transform=transform,
        )


class _Destination(IOManager):
    """The destination ``migrate_io_storage`` writes to: stores through the IO manager,
    then reports a materialization pointing to each package."""

    def __init__(
        self,
        io_manager: ArtifactStoreIOManager,
        instance: DagsterInstance,
        graph: AssetGraph,
        resources: Mapping[str, Any],
    ) -> None:
        self._io_manager = io_manager
        self._instance = instance
        self._graph = graph
        self._resources = resources

    def load_input(self, context: InputContext) -> Any:  # pragma: no cover - never called
        raise NotImplementedError("the migration destination only stores")

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        key = context.asset_key
        keys: list[str | None] = (
            list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        )
        sources = {str(k) if k is not None else None: self._source(key, k) for k in keys}
        assets_def = self._graph.assets_def_for_key(key)
        spec = assets_def.specs_by_key[key]
        io_manager_key = assets_def.get_io_manager_key_for_asset_key(key)
        source_io_manager = self._resources.get(io_manager_key)
        partitions: dict[str, Any] = {}
        if keys != [None]:
            partitions = (
                {"partition_key": keys[0]}
                if len(keys) == 1
                else {"asset_partition_key_range": context.asset_partition_key_range}
            )
        full = build_output_context(
            asset_key=key,
            definition_metadata=spec.metadata,
            asset_spec=spec,
            asset_partitions_def=assets_def.partitions_def,
            **partitions,
        )

        def provenance(output: OutputKey, recorded: dict[str, Any]) -> dict[str, Any]:
            source = sources[output.partition_key]
            tags = source.asset_materialization.tags if source.asset_materialization else {}
            code_version = (tags or {}).get("dagster/code_version") or recorded.get("code_version")
            run_id = source.run_id or None  # a runless source event has run id ""
            run = self._instance.get_run_by_id(run_id) if run_id else None
            attributes = recorded.get("attributes") or {}
            dagster = {
                **(attributes.get("dagster") or {}),
                "run_id": run_id,
                "job_name": run.job_name if run is not None else None,
                "run_tags": dict(run.tags) if run is not None else {},
                "code_version": code_version,
            }
            migrated = {
                "run_id": run_id,
                "storage_id": source.storage_id,
                "materialized_at": _timestamp(source.timestamp),
                "io_manager_key": io_manager_key,
                "io_manager": type(source_io_manager).__name__ if source_io_manager else None,
            }
            attributes = {**attributes, "dagster": dagster, "migrated": migrated}
            return {
                **recorded,
                "run_id": run_id,
                "code_version": code_version,
                "attributes": attributes,
            }

        stored = self._io_manager.store_output(full, obj, provenance=provenance)
        for item in stored:
            source = sources[item.output.partition_key]
            materialization = source.asset_materialization
            self._instance.report_runless_asset_event(
                AssetMaterialization(
                    asset_key=key,
                    partition=item.key,
                    description=f"migrated to artifact-store from run {source.run_id}",
                    metadata={
                        **item.metadata,
                        MIGRATED_FROM: MetadataValue.text(
                            f"run {source.run_id} (event {source.storage_id}, "
                            f"{_timestamp(source.timestamp)}) through {io_manager_key!r}"
                        ),
                    },
                    tags=materialization.tags if materialization is not None else None,
                )
            )

    def _source(self, key: AssetKey, partition: str | None) -> EventLogRecord:
        record = _latest(self._instance, key, partition)
        if record is None:  # migrate_io_storage only passes materialized partitions
            where = OutputKey(asset_key=key, partition_key=partition).where
            raise NotFoundError(f"cannot migrate {where}: it has no materialization")
        return record


def _latest(
    instance: DagsterInstance, key: AssetKey, partition: str | None
) -> EventLogRecord | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=key, asset_partitions=[partition] if partition is not None else None
        ),
        limit=1,
    ).records
    found: EventLogRecord | None = records[0] if records else None
    return found
