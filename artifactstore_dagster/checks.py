"""Integrity asset checks: are the bytes behind an asset's latest materialization intact?

``build_artifact_checks(assets, mode=...)`` returns one check per asset. It verifies the
package that Dagster's latest materialization points to with ``ArtifactStore.verify``;
for a partitioned asset, the run's partition when the run has one, else the latest
materialization of every partition:

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
PARTITION_TAG = "dagster/partition"

AssetLike = AssetKey | str | Sequence[str] | AssetsDefinition | AssetSpec


def _keys(assets: Iterable[AssetLike]) -> list[AssetKey]:
    keys: list[AssetKey] = []
    for item in assets:
        if isinstance(item, AssetsDefinition):
            keys.extend(item.keys)
        elif isinstance(item, AssetSpec):
            keys.append(item.key)
        elif isinstance(item, AssetKey):
            keys.append(item)
        elif isinstance(item, str):
            keys.append(AssetKey.from_user_string(item))
        else:
            keys.append(AssetKey(list(item)))
    return list(dict.fromkeys(keys))


def latest_package_ids(instance: DagsterInstance, asset_key: AssetKey) -> dict[str | None, str]:
    """Package ids of the asset's latest materialization, per partition (``None``: unpartitioned).

    Materializations not recorded by artifact-store are left out.
    """
    by_partition = instance.get_latest_storage_id_by_partition(
        asset_key, DagsterEventType.ASSET_MATERIALIZATION
    )
    if by_partition:
        storage_ids = list(by_partition.values())
        records: list[Any] = []
        for start in range(0, len(storage_ids), 500):
            chunk = storage_ids[start : start + 500]
            records += instance.fetch_materializations(
                AssetRecordsFilter(asset_key=asset_key, storage_ids=chunk), limit=len(chunk)
            ).records
    else:
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
        pointers = latest_package_ids(context.instance, asset_key)
        # In a run for one partition, check that partition; otherwise every partition.
        partition = context.run.tags.get(PARTITION_TAG)
        scope = "all partitions" if None not in pointers else "latest materialization"
        if partition is not None and partition in pointers:
            pointers = {partition: pointers[partition]}
            scope = f"partition {partition}"
        if not pointers:
            return AssetCheckResult(
                passed=False,
                description=(
                    f"{asset_key.to_user_string()} has no materialization recorded by "
                    "artifact-store"
                ),
                metadata={"mode": mode, "packages_verified": 0},
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
        description = (
            f"{result.packages} package(s), {result.blobs} blob(s) intact"
            if passed
            else f"{problems} problem(s): {len(result.expired)} package(s) behind the latest "
            f"materialization expired ({', '.join(result.expired[:3]) or 'none'}), "
            f"{len(missing)} missing, {len(corrupt)} corrupt blob(s), "
            f"{len(result.unknown)} package(s) unknown to the registry"
        )
        return AssetCheckResult(passed=passed, metadata=metadata, description=description)

    return check


def build_artifact_checks(
    assets: Iterable[AssetLike],
    *,
    mode: CheckMode = "exists",
    resource_key: str = "artifactstore",
    blocking: bool = False,
    name: str | None = None,
) -> list[AssetChecksDefinition]:
    """One integrity check per asset (``exists``: blobs present; ``digest``: re-hash).

    The checks use the ``ArtifactStoreResource`` under ``resource_key``.
    """
    if mode not in CHECK_NAMES:
        raise ValueError(f"unknown check mode {mode!r}; use 'exists' or 'digest'")
    check_name = name or CHECK_NAMES[mode]
    what = "present in storage" if mode == "exists" else "re-hashed and match their digests"
    checks = []
    for key in _keys(assets):
        decorator = asset_check(
            asset=key,
            name=check_name,
            description=f"The blobs of the latest artifact-store package(s) are {what}.",
            blocking=blocking,
            required_resource_keys={resource_key},
        )
        checks.append(decorator(_check_fn(key, mode, resource_key)))
    return checks
