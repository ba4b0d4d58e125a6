"""``build_artifactstore_defs``: the resource, IO manager, checks, jobs and schedules at once.

The result is an ordinary ``Definitions`` to merge with your own
(``Definitions.merge(yours, build_artifactstore_defs(...))``). Every job, op, check and
schedule name starts with ``artifactstore_``; the two resource keys are parameters, so a
project that already has an ``io_manager`` picks another key. ``ArtifactStoreComponent``
is the same factory as a Dagster Component (``defs.yaml``).
"""

# No `from __future__ import annotations`: Dagster reads the annotations of decorated
# functions (context, config) at definition time and needs real types there.

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from dagster import (
    AssetKey,
    AssetSpec,
    Component,
    ComponentLoadContext,
    DefaultScheduleStatus,
    Definitions,
    Model,
    Resolvable,
)
from pydantic import Field

from artifactstore_dagster.checks import AssetLike, build_artifact_checks
from artifactstore_dagster.io_manager import ArtifactStoreIOManager
from artifactstore_dagster.resources import ArtifactStoreResource
from artifactstore_dagster.retention_jobs import build_retention_jobs, build_retention_schedule
from artifactstore_dagster.sensors import (
    ExternalAsset,
    build_external_packages_sensor,
    build_retention_sensor,
)


def build_artifactstore_defs(
    *,
    resource: ArtifactStoreResource | None = None,
    io_manager: ArtifactStoreIOManager | None = None,
    resource_key: str = "artifactstore",
    io_manager_key: str | None = "io_manager",
    checked_assets: Iterable[AssetLike] = (),
    check_mode: Literal["exists", "digest"] = "exists",
    blocking_checks: bool = False,
    retention_jobs: bool = True,
    sweep_cron: str | None = "0 3 * * *",
    verify_cron: str | None = "30 3 * * *",
    sweep_run_config: Mapping[str, Any] | None = None,
    execution_timezone: str = "UTC",
    schedule_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
    external_assets: Iterable[ExternalAsset] = (),
    retention_sensor: bool = True,
) -> Definitions:
    """Definitions for artifact-store: resource, IO manager, integrity checks, retention jobs.

    ``resource`` defaults to one configured from ``ARTIFACTSTORE_*`` settings;
    ``io_manager`` to an ``ArtifactStoreIOManager`` on that resource (``io_manager_key=None``
    leaves the IO manager out). Schedules (sweep daily, verification daily; ``None`` for
    none) are created stopped unless ``schedule_status`` says otherwise.

    ``external_assets`` (``AssetSpec``\\ s, included in the result) are assets whose
    packages are put outside Dagster: a running sensor reports each as a materialization.
    ``retention_sensor`` adds a running sensor that shows every expiry, purge, hold and
    tier move of an asset's package as an observation on it.
    """
    resource = resource or ArtifactStoreResource()
    resources: dict[str, Any] = {resource_key: resource}
    if io_manager_key is not None:
        resources[io_manager_key] = io_manager or ArtifactStoreIOManager(store=resource)
    checks = build_artifact_checks(
        checked_assets, mode=check_mode, resource_key=resource_key, blocking=blocking_checks
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
    sensors: list[Any] = []
    if external:
        sensors.append(
            build_external_packages_sensor(
                external, resource_key=resource_key, package_prefix=prefix
            )
        )
    if retention_sensor:
        sensors.append(
            build_retention_sensor(
                resource_key=resource_key, package_prefix=prefix, external_assets=external
            )
        )
    return Definitions(
        assets=external,
        resources=resources,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
    )


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
    auto_data_version: bool = False
    checked_assets: list[str] = Field(default_factory=list)
    check_mode: Literal["exists", "digest"] = "exists"
    blocking_checks: bool = False
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
            ),
            resource_key=self.resource_key,
            io_manager_key=self.io_manager_key,
            checked_assets=self.checked_assets,
            check_mode=self.check_mode,
            blocking_checks=self.blocking_checks,
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
    "token", "actor", "default_retention_class",
)  # fmt: skip
