"""``build_artifactstore_defs``: the resource, IO manager, checks, jobs and schedules at once.

The result is an ordinary ``Definitions`` to merge with your own
(``Definitions.merge(yours, build_artifactstore_defs(...))``). Every job, op, check and
schedule name starts with ``artifactstore_``; the two resource keys are parameters, so a
project that already has an ``io_manager`` picks another key. ``ArtifactStoreComponent``
is the same factory as a Dagster Component (``defs.yaml``).
"""

# No `from __future__ import annotations`: Dagster reads the annotations of decorated
# functions (context, config) at definition time and needs real types there.

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Component,
    ComponentLoadContext,
    DefaultScheduleStatus,
    Definitions,
    Model,
    Resolvable,
)
from pydantic import Field

from artifactstore_core.errors import InvalidInputError
from artifactstore_dagster.checks import AssetLike, build_artifact_checks
from artifactstore_dagster.io_manager import ArtifactStoreIOManager
from artifactstore_dagster.resources import ArtifactStoreResource
from artifactstore_dagster.retention_jobs import build_retention_jobs, build_retention_schedule
from artifactstore_dagster.sensors import (
    ExternalAsset,
    build_external_packages_sensor,
    build_retention_sensor,
)

#: Metadata Dagster puts on the asset it invents for a key nothing defines (a phantom).
_STUB_FLAG = "dagster/auto_created_stub_asset"


def validate_checked_assets(defs: Definitions) -> Definitions:
    """``defs``, once every asset check in it targets an asset that ``defs`` defines.

    Dagster silently invents an asset for a check on a key nothing defines (a phantom the
    UI shows as never materialized); this raises ``InvalidInputError`` naming such keys
    instead. An asset defined in another code location is declared with ``AssetSpec(key)``.
    """
    graph = defs.resolve_asset_graph()
    phantoms = sorted(
        {
            check.asset_key.to_user_string()
            for check in graph.asset_check_keys
            if graph.get(check.asset_key).metadata.get(_STUB_FLAG)
        }
    )
    if phantoms:
        defined = sorted(
            key.to_user_string()
            for key in graph.get_all_asset_keys()
            if not graph.get(key).metadata.get(_STUB_FLAG)
        )
        near = {name: difflib.get_close_matches(name, defined, n=1) for name in phantoms}
        named = ", ".join(
            repr(name) + (f" (did you mean {near[name][0]!r}?)" if near[name] else "")
            for name in phantoms
        )
        raise InvalidInputError(
            f"asset checks target {named}, which no asset of these definitions is; check an "
            "asset that exists, or declare one defined elsewhere with AssetSpec(key)"
        )
    return defs


def _with_partitions(
    checked_assets: Iterable[AssetLike], defs: Definitions, resources: Mapping[str, Any]
) -> list[AssetLike]:
    """``checked_assets`` with each key replaced by the spec ``defs`` defines for it, so its
    check is partitioned like the asset; a key ``defs`` does not define is left as is (and
    refused by ``validate_checked_assets``)."""
    specs = {
        spec.key: spec
        for spec in Definitions.merge(
            defs, Definitions(resources=resources)
        ).resolve_all_asset_specs()
        if not spec.metadata.get(_STUB_FLAG)
    }
    resolved: list[AssetLike] = []
    for item in checked_assets:
        if isinstance(item, AssetsDefinition | AssetSpec):
            resolved.append(item)
            continue
        key = (
            item
            if isinstance(item, AssetKey)
            else AssetKey.from_user_string(item)
            if isinstance(item, str)
            else AssetKey(list(item))
        )
        resolved.append(specs.get(key, key))
    return resolved


def build_artifactstore_defs(
    defs: Definitions | None = None,
    *,
    resource: ArtifactStoreResource | None = None,
    io_manager: ArtifactStoreIOManager | None = None,
    resource_key: str = "artifactstore",
    io_manager_key: str | None = "io_manager",
    checked_assets: Iterable[AssetLike] = (),
    check_mode: Literal["exists", "digest"] = "exists",
    blocking_checks: bool = False,
    partitioned_checks: bool = False,
    retention_jobs: bool = True,
    sweep_cron: str | None = "0 3 * * *",
    verify_cron: str | None = "30 3 * * *",
    sweep_run_config: Mapping[str, Any] | None = None,
    execution_timezone: str = "UTC",
    schedule_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
    external_assets: Iterable[ExternalAsset] = (),
    retention_sensor: bool = True,
    attest_assets: Iterable[str] = (),
) -> Definitions:
    """Definitions for artifact-store: resource, IO manager, integrity checks, retention jobs.

    With ``defs`` (your definitions) the result is both merged, and ``checked_assets`` are
    checked against yours: a name no asset has raises ``InvalidInputError`` (see
    ``validate_checked_assets``), and with ``partitioned_checks`` a partitioned asset
    named by its key gets a check partitioned like it (see ``build_artifact_checks``).
    Without, merge the result yourself (``Definitions.merge``).

    ``resource`` defaults to one configured from ``ARTIFACTSTORE_*`` settings;
    ``io_manager`` to an ``ArtifactStoreIOManager`` on that resource (``io_manager_key=None``
    leaves the IO manager out; ``attest_assets``, asset keys such as ``"a/b"``, are the
    default IO manager's: their packages are attested at materialization, signed with the
    resource's ``signing_key``). Schedules (sweep daily, verification daily; ``None`` for
    none) are created stopped unless ``schedule_status`` says otherwise.

    ``external_assets`` (``AssetSpec``\\ s, included in the result) are assets whose
    packages are put outside Dagster: a running sensor reports each as a materialization.
    ``retention_sensor`` adds a running sensor that shows every expiry, purge, hold and
    tier move of an asset's package as an observation on it.
    """
    resource = resource or ArtifactStoreResource()
    resources: dict[str, Any] = {resource_key: resource}
    if io_manager_key is not None:
        resources[io_manager_key] = io_manager or ArtifactStoreIOManager(
            store=resource, attest_assets=list(attest_assets)
        )
    if defs is not None and partitioned_checks:
        checked_assets = _with_partitions(checked_assets, defs, resources)
    checks = build_artifact_checks(
        checked_assets,
        mode=check_mode,
        resource_key=resource_key,
        blocking=blocking_checks,
        partitioned=partitioned_checks,
    )
    jobs: list[Any] = []
    schedules: list[Any] = []
    if retention_jobs:
        built = build_retention_jobs(resource_key=resource_key)
        jobs = list(built.values())
        if sweep_cron:
            schedules.append(
                build_retention_schedule(
                    built["sweep"],
                    cron_schedule=sweep_cron,
                    name="artifactstore_retention_sweep_daily",
                    run_config=sweep_run_config,
                    execution_timezone=execution_timezone,
                    default_status=schedule_status,
                )
            )
        if verify_cron:
            schedules.append(
                build_retention_schedule(
                    built["verify"],
                    cron_schedule=verify_cron,
                    name="artifactstore_verify_daily",
                    execution_timezone=execution_timezone,
                    default_status=schedule_status,
                )
            )
    external = list(external_assets)
    prefix = io_manager.package_prefix if io_manager is not None else ""
    keep = io_manager.keep_latest_versions if io_manager is not None else 1
    sensors: list[Any] = []
    if external:
        sensors.append(
            build_external_packages_sensor(
                external,
                resource_key=resource_key,
                package_prefix=prefix,
                keep_latest_versions=keep,
            )
        )
    if retention_sensor:
        sensors.append(
            build_retention_sensor(
                resource_key=resource_key, package_prefix=prefix, external_assets=external
            )
        )
    ours = Definitions(
        assets=external,
        resources=resources,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
    )
    return ours if defs is None else validate_checked_assets(Definitions.merge(defs, ours))


class ArtifactStoreComponent(Component, Resolvable, Model):
    """artifact-store for a ``dg`` project: the same definitions as ``build_artifactstore_defs``.

    ``defs.yaml``::

        type: artifactstore_dagster.ArtifactStoreComponent
        attributes:
          database_url: "{{ env.ARTIFACTSTORE_DATABASE_URL }}"
          checked_assets: [raw_logs, summary_report]
          external_assets: [raw_upload]  # packages put by the CLI become materializations
    """

    database_url: str | None = None
    storage_url: str | None = None
    tier_cold_url: str | None = None
    tier_archive_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_addressing_style: str | None = None
    url: str | None = None
    token: str | None = None
    actor: str = "dagster"
    default_retention_class: str | None = None
    resource_key: str = "artifactstore"
    io_manager_key: str | None = "io_manager"
    package_prefix: str = ""
    default_kind: str = "output"
    auto_data_version: bool = True
    keep_latest_versions: int = 1
    retention_class_by_group: dict[str, str] = Field(default_factory=dict)
    signing_key: str | None = None
    builder_id: str | None = None
    attest_assets: list[str] = Field(default_factory=list)
    checked_assets: list[str] = Field(default_factory=list)
    check_mode: Literal["exists", "digest"] = "exists"
    blocking_checks: bool = False
    partitioned_checks: bool = False
    retention_jobs: bool = True
    sweep_cron: str | None = "0 3 * * *"
    verify_cron: str | None = "30 3 * * *"
    sweep_run_config: dict[str, Any] | None = None
    execution_timezone: str = "UTC"
    schedule_status: Literal["RUNNING", "STOPPED"] = "STOPPED"
    external_assets: list[str] = Field(default_factory=list)
    retention_sensor: bool = True

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        resource = ArtifactStoreResource(
            **{name: getattr(self, name) for name in _RESOURCE_ATTRIBUTES},
        )
        return build_artifactstore_defs(
            resource=resource,
            io_manager=ArtifactStoreIOManager(
                store=resource,
                package_prefix=self.package_prefix,
                default_kind=self.default_kind,
                auto_data_version=self.auto_data_version,
                keep_latest_versions=self.keep_latest_versions,
                retention_class_by_group=self.retention_class_by_group,
                attest_assets=self.attest_assets,
            ),
            resource_key=self.resource_key,
            io_manager_key=self.io_manager_key,
            checked_assets=self.checked_assets,
            check_mode=self.check_mode,
            blocking_checks=self.blocking_checks,
            partitioned_checks=self.partitioned_checks,
            retention_jobs=self.retention_jobs,
            sweep_cron=self.sweep_cron,
            verify_cron=self.verify_cron,
            sweep_run_config=self.sweep_run_config,
            execution_timezone=self.execution_timezone,
            schedule_status=DefaultScheduleStatus(self.schedule_status),
            external_assets=[AssetSpec(AssetKey.from_user_string(k)) for k in self.external_assets],
            retention_sensor=self.retention_sensor,
        )


#: The Component's attributes that configure its ``ArtifactStoreResource`` (same names).
_RESOURCE_ATTRIBUTES = (
    "database_url", "storage_url", "tier_cold_url", "tier_archive_url", "s3_endpoint_url",
    "s3_region", "s3_access_key_id", "s3_secret_access_key", "s3_addressing_style", "url",
    "token", "actor", "default_retention_class", "signing_key", "builder_id",
)  # fmt: skip
