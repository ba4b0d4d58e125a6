"""Integrity asset checks: are the bytes behind an asset's latest materialization intact?

``build_artifact_checks(assets, mode=...)`` returns one check per asset. It verifies the
package that Dagster's latest materialization points to with ``ArtifactStore.verify``;
for a partitioned asset, the run's partition (or range) only when the run has one, else
the latest materialization of every partition. With ``partitioned=True`` the check of a
partitioned asset given as a definition is partitioned like it, so the UI shows its
result per partition (a Dagster preview; such a check runs only for partitions):

- ``exists``: every blob is present in its backend (cheap; no bytes read);
- ``digest``: every blob is read and re-hashed (BLAKE3 and SHA-256 compared).

Check metadata: packages and blobs verified, bytes re-hashed, and each missing or corrupt
blob with the packages that need it. The check fails when a package behind a latest
materialization is expired (its bytes go, or are gone), unknown to the registry, or has
missing or corrupt blobs: Dagster still shows that materialization as current, and the
next run that loads it would fail. Keep rules (``keep_latest_versions`` of the IO
manager) keep these packages by default.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of decorated
# functions (context, config) at definition time and needs real types there.

import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    AssetSpec,
    DagsterEventType,
    DagsterInstance,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
    asset_check,
)

from artifactstore_core.store import BlobProblem
from artifactstore_dagster.keys import PACKAGE_ID
from artifactstore_dagster.resources import ArtifactStoreResource

CheckMode = Literal["exists", "digest"]
CHECK_NAMES: dict[str, str] = {
    "exists": "artifactstore_blobs_present",
    "digest": "artifactstore_digests_match",
}
_LISTED = 50

AssetLike = AssetKey | str | Sequence[str] | AssetsDefinition | AssetSpec


def _targets(assets: Iterable[AssetLike]) -> dict[AssetKey, PartitionsDefinition | None]:
    """The asset keys to check, with their partitions when the argument says (a definition
    or spec does; a bare key does not)."""
    targets: dict[AssetKey, PartitionsDefinition | None] = {}
    for item in assets:
        if isinstance(item, AssetsDefinition):
            targets.update((spec.key, spec.partitions_def) for spec in item.specs)
        elif isinstance(item, AssetSpec):
            targets[item.key] = item.partitions_def
        elif isinstance(item, AssetKey):
            targets.setdefault(item, None)
        elif isinstance(item, str):
            targets.setdefault(AssetKey.from_user_string(item), None)
        else:
            targets.setdefault(AssetKey(list(item)), None)
    return targets


def latest_package_ids(
    instance: DagsterInstance, asset_key: AssetKey, partitions: Sequence[str] | None = None
) -> dict[str | None, str]:
    """Package ids of the asset's latest materialization, per partition (``None``: unpartitioned);
    with ``partitions``, of those partitions only.

    Materializations not recorded by artifact-store are left out.
    """
    if partitions is not None and len(partitions) == 1:
        records: list[Any] = list(
            instance.fetch_materializations(
                AssetRecordsFilter(asset_key=asset_key, asset_partitions=list(partitions)),
                limit=1,
            ).records
        )
    else:
        by_partition = instance.get_latest_storage_id_by_partition(
            asset_key, DagsterEventType.ASSET_MATERIALIZATION
        )
        if partitions is not None:
            wanted = set(partitions)
            by_partition = {k: v for k, v in by_partition.items() if k in wanted}
        storage_ids = list(by_partition.values())
        records = []
        for start in range(0, len(storage_ids), 500):
            chunk = storage_ids[start : start + 500]
            records += instance.fetch_materializations(
                AssetRecordsFilter(asset_key=asset_key, storage_ids=chunk), limit=len(chunk)
            ).records
        if not by_partition and partitions is None:
            records = list(instance.fetch_materializations(asset_key, limit=1).records)
    result: dict[str | None, str] = {}
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or PACKAGE_ID not in materialization.metadata:
            continue
        value = materialization.metadata[PACKAGE_ID]
        package_id = value.value if isinstance(value, MetadataValue) else value
        result[materialization.partition] = str(package_id)
    return result


def _problem(problem: BlobProblem) -> dict[str, Any]:
    return {
        "content_address": problem.content_address,
        "backend": problem.backend,
        "detail": problem.detail,
        "packages": list(problem.packages),
    }


def _check_fn(asset_key: AssetKey, mode: CheckMode, resource_key: str) -> Any:
    def check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        resource: ArtifactStoreResource = getattr(context.resources, resource_key)
        store = resource.get_store()
        # In a run for some partitions, check those only; otherwise every partition.
        partitions = _run_partitions(context, asset_key)
        pointers = latest_package_ids(context.instance, asset_key, partitions)
        scope = (
            "all partitions"
            if partitions is None
            else f"partition {partitions[0]}"
            if len(partitions) == 1
            else f"partitions {partitions[0]}...{partitions[-1]}"
        )
        if partitions is None and None in pointers:
            scope = "latest materialization"
        absent = [p for p in partitions or [] if p not in pointers]
        if absent or not pointers:
            named = ", ".join(repr(p) for p in absent[:_LISTED])
            what = (
                " has"
                if not absent
                else f" partition {named} has"
                if len(absent) == 1
                else f" partitions {named} have"
            )
            return AssetCheckResult(
                passed=False,
                description=(
                    f"{asset_key.to_user_string()}{what} no materialization recorded by "
                    "artifact-store"
                ),
                metadata={"mode": mode, "scope": scope, "packages_verified": 0},
            )
        result = store.verify(references=list(pointers.values()), rehash=mode == "digest")
        missing = [_problem(p) for p in result.problems if p.problem == "missing"]
        corrupt = [_problem(p) for p in result.problems if p.problem == "corrupt"]
        metadata: dict[str, Any] = {
            "mode": mode,
            "scope": scope,
            "packages_verified": MetadataValue.int(result.packages),
            "blobs_verified": MetadataValue.int(result.blobs),
            "bytes_verified": MetadataValue.int(result.bytes_verified),
            "missing_blobs": MetadataValue.int(len(missing)),
            "corrupt_blobs": MetadataValue.int(len(corrupt)),
            "packages": MetadataValue.json(list(result.references[:_LISTED])),
        }
        if missing:
            metadata["missing"] = MetadataValue.json(missing[:_LISTED])
        if corrupt:
            metadata["corrupt"] = MetadataValue.json(corrupt[:_LISTED])
        if result.expired:
            metadata["expired_packages"] = MetadataValue.json(list(result.expired[:_LISTED]))
        if result.unknown:
            metadata["unknown_packages"] = MetadataValue.json(list(result.unknown[:_LISTED]))
        problems = len(result.problems) + len(result.unknown) + len(result.expired)
        passed = result.ok and not result.expired
        description = f"{scope}: " + (
            f"{result.packages} package(s), {result.blobs} blob(s) intact"
            if passed
            else f"{problems} problem(s): {len(result.expired)} package(s) behind the latest "
            f"materialization expired ({', '.join(result.expired[:3]) or 'none'}), "
            f"{len(missing)} missing, {len(corrupt)} corrupt blob(s), "
            f"{len(result.unknown)} package(s) unknown to the registry"
        )
        return AssetCheckResult(passed=passed, metadata=metadata, description=description)

    return check


def _run_partitions(context: AssetCheckExecutionContext, asset_key: AssetKey) -> list[str] | None:
    """The partitions of the asset the check's run is for (one, or a range's); ``None``
    outside any, or for an unpartitioned asset in a partitioned run."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    graph = context.op_execution_context.job_def.asset_layer.asset_graph
    if graph.has(asset_key) and not graph.get(asset_key).is_partitioned:
        return None
    return [context.partition_key] if context.has_partition_key else list(context.partition_keys)


def build_artifact_checks(
    assets: Iterable[AssetLike],
    *,
    mode: CheckMode = "exists",
    resource_key: str = "artifactstore",
    blocking: bool = False,
    name: str | None = None,
    partitioned: bool = False,
) -> list[AssetChecksDefinition]:
    """One integrity check per asset (``exists``: blobs present; ``digest``: re-hash).

    The checks use the ``ArtifactStoreResource`` under ``resource_key``; a check run for
    partitions verifies those only. With ``partitioned`` the check of a partitioned asset
    given as a definition or spec is partitioned like it: the UI shows its result per
    partition, but it can no longer run outside a partition (a Dagster 1.13 preview).
    """
    if mode not in CHECK_NAMES:
        raise ValueError(f"unknown check mode {mode!r}; use 'exists' or 'digest'")
    check_name = name or CHECK_NAMES[mode]
    what = "present in storage" if mode == "exists" else "re-hashed and match their digests"
    checks = []
    for key, partitions_def in _targets(assets).items():
        with warnings.catch_warnings():
            # Partitioned checks are a Dagster preview; tests/dagster/test_checks.py pins them.
            warnings.simplefilter("ignore", PreviewWarning)
            decorator = asset_check(
                asset=key,
                name=check_name,
                description=f"The blobs of the latest artifact-store package(s) are {what}.",
                blocking=blocking,
                required_resource_keys={resource_key},
                partitions_def=partitions_def if partitioned else None,
            )
        checks.append(decorator(_check_fn(key, mode, resource_key)))
    return checks
