"""build_artifactstore_defs merges with user definitions; the Component builds the same."""

from typing import Any

import pytest
from dagster import (
    AssetSpec,
    ComponentTree,
    DagsterInstance,
    DefaultScheduleStatus,
    Definitions,
    FilesystemIOManager,
    StaticPartitionsDefinition,
    asset,
    build_schedule_context,
)
from dagster._core.errors import DagsterInvariantViolationError

from artifactstore_core.errors import InvalidInputError
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import (
    ArtifactStoreComponent,
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    build_artifactstore_defs,
    validate_checked_assets,
)
from artifactstore_dagster.keys import PACKAGE_ID

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


@asset
def numbers() -> list[int]:
    return [1, 2, 3]


@asset
def doubled(numbers: list[int]) -> list[int]:
    return [n * 2 for n in numbers]


def _names(defs: Definitions) -> dict[str, Any]:
    repo = defs.get_repository_def()
    return {
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "checks": sorted(k.to_user_string() for c in defs.asset_checks or [] for k in c.check_keys),
    }


def test_merged_definitions_load_and_record_outputs(
    resource: ArtifactStoreResource, store: ArtifactStore, instance: DagsterInstance
) -> None:
    ours = build_artifactstore_defs(resource=resource, checked_assets=[numbers, doubled])
    defs = Definitions.merge(Definitions(assets=[numbers, doubled]), ours)
    Definitions.validate_loadable(defs)
    names = _names(defs)
    assert names["jobs"] == [
        "artifactstore_retention_sweep",
        "artifactstore_tier_moves",
        "artifactstore_verify",
    ]
    assert names["schedules"] == [
        "artifactstore_retention_sweep_daily",
        "artifactstore_verify_daily",
    ]
    assert len(names["checks"]) == 2
    for schedule in defs.get_repository_def().schedule_defs:
        assert schedule.default_status == DefaultScheduleStatus.STOPPED

    job = defs.get_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, run_config=QUIET)
    assert result.success
    assert [p.reference for p in store.list_packages()] == ["doubled@1", "numbers@1"]
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 2 and all(e.passed for e in evaluations)
    latest = instance.get_latest_materialization_event(doubled.key)
    assert latest is not None and latest.asset_materialization is not None
    assert PACKAGE_ID in latest.asset_materialization.metadata


def test_a_user_io_manager_is_kept_under_another_key(
    resource: ArtifactStoreResource, tmp_path: Any
) -> None:
    user = Definitions(
        assets=[numbers], resources={"io_manager": FilesystemIOManager(base_dir=str(tmp_path))}
    )
    with pytest.raises(DagsterInvariantViolationError, match="io_manager"):
        Definitions.merge(user, build_artifactstore_defs(resource=resource))
    merged = Definitions.merge(
        user,
        build_artifactstore_defs(
            resource=resource, io_manager_key="artifactstore_io_manager", sweep_cron=None
        ),
    )
    Definitions.validate_loadable(merged)
    assert _names(merged)["schedules"] == ["artifactstore_verify_daily"]


def test_without_retention_jobs_or_io_manager(resource: ArtifactStoreResource) -> None:
    defs = build_artifactstore_defs(resource=resource, io_manager_key=None, retention_jobs=False)
    assert set((defs.resources or {}).keys()) == {"artifactstore"}
    assert not defs.jobs and not defs.schedules


def test_component_builds_the_same_definitions(tmp_path: Any) -> None:
    component = ArtifactStoreComponent(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        storage_url=str(tmp_path / "blobs"),
        checked_assets=["numbers"],
        check_mode="digest",
        auto_data_version=True,
    )
    defs = component.build_defs(ComponentTree.for_test().load_context)
    io_manager = (defs.resources or {})["io_manager"]
    assert isinstance(io_manager, ArtifactStoreIOManager) and io_manager.auto_data_version
    merged = Definitions.merge(Definitions(assets=[numbers]), defs)
    Definitions.validate_loadable(merged)
    names = _names(merged)
    assert names["checks"] == ["numbers:artifactstore_digests_match"]
    assert "artifactstore_retention_sweep" in names["jobs"]


def test_the_component_takes_what_the_factory_takes(tmp_path: Any) -> None:
    """Schedules, checks, the IO manager's default kind, tiers and S3 settings were
    attributes of the factory the Component could not set."""
    component = ArtifactStoreComponent(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        storage_url=str(tmp_path / "blobs"),
        tier_cold_url=str(tmp_path / "cold"),
        s3_endpoint_url="http://127.0.0.1:9",
        s3_region="eu-west-1",
        default_kind="report",
        default_retention_class="summary-evidence",
        keep_latest_versions=3,
        retention_class_by_group={"finance": "permanent-record"},
        checked_assets=["numbers"],
        blocking_checks=True,
        sweep_run_config={"ops": {"artifactstore_sweep": {"config": {"dry_run": True}}}},
        execution_timezone="Europe/Berlin",
        schedule_status="RUNNING",
    )
    defs = component.build_defs(ComponentTree.for_test().load_context)
    resources = defs.resources or {}
    resource, io_manager = resources["artifactstore"], resources["io_manager"]
    assert (resource.tier_cold_url, resource.s3_region) == (str(tmp_path / "cold"), "eu-west-1")
    assert resource.s3_endpoint_url == "http://127.0.0.1:9"
    assert io_manager.default_kind == "report"
    assert resource.default_retention_class == "summary-evidence"
    assert io_manager.keep_latest_versions == 3
    assert io_manager.retention_class_by_group == {"finance": "permanent-record"}
    schedules = {s.name: s for s in defs.schedules or []}
    sweep = schedules["artifactstore_retention_sweep_daily"]
    assert sweep.default_status == DefaultScheduleStatus.RUNNING
    assert sweep.execution_timezone == "Europe/Berlin"
    (tmp_path / "home").mkdir()
    with (
        DagsterInstance.local_temp(str(tmp_path / "home")) as instance,
        build_schedule_context(instance=instance) as context,
    ):
        requests = sweep.evaluate_tick(context).run_requests or []
    assert [r.run_config for r in requests] == [component.sweep_run_config]
    merged = Definitions.merge(Definitions(assets=[numbers]), defs)
    Definitions.validate_loadable(merged)
    checks = list(defs.asset_checks or [])
    assert checks and all(spec.blocking for c in checks for spec in c.check_specs)


# ---------------------------------------------------------------------------- checked assets
daily_shards = StaticPartitionsDefinition(["a", "b"])


@asset(partitions_def=daily_shards)
def sharded_numbers() -> list[int]:
    return [1]


def test_a_checked_asset_that_does_not_exist_is_refused_by_name(
    resource: ArtifactStoreResource,
) -> None:
    yours = Definitions(assets=[numbers, doubled])
    with pytest.raises(InvalidInputError) as raised:
        build_artifactstore_defs(yours, resource=resource, checked_assets=["numbers", "numbrs"])
    assert str(raised.value) == (
        "asset checks target 'numbrs' (did you mean 'numbers'?), which no asset of these "
        "definitions is; check an asset that exists, or declare one defined elsewhere with "
        "AssetSpec(key)"
    )
    # Merged by hand, the phantom is caught the same way.
    merged = Definitions.merge(
        yours, build_artifactstore_defs(resource=resource, checked_assets=["missing/asset"])
    )
    with pytest.raises(InvalidInputError, match="target 'missing/asset', which no asset"):
        validate_checked_assets(merged)


def test_checked_assets_resolve_against_your_definitions(
    resource: ArtifactStoreResource,
) -> None:
    yours = Definitions(assets=[numbers, sharded_numbers, AssetSpec("uploaded_elsewhere")])
    defs = build_artifactstore_defs(
        yours,
        resource=resource,
        checked_assets=["numbers", "sharded_numbers", "uploaded_elsewhere"],
        partitioned_checks=True,
    )
    Definitions.validate_loadable(defs)
    assert validate_checked_assets(defs) is defs
    graph = defs.resolve_asset_graph()
    assert {k.asset_key.to_user_string() for k in graph.asset_check_keys} == {
        "numbers",
        "sharded_numbers",
        "uploaded_elsewhere",
    }
    # Named by its key, a partitioned asset still gets a check partitioned like it (opt-in).
    partitions = {
        spec.asset_key.to_user_string(): spec.partitions_def
        for check in defs.asset_checks or []
        for spec in check.check_specs
    }
    assert partitions == {
        "numbers": None,
        "sharded_numbers": daily_shards,
        "uploaded_elsewhere": None,
    }
