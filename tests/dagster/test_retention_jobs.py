"""Retention jobs (sweep, tier moves, verification), their schedules and the overlap guard."""

import datetime as dt
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DagsterRunStatus,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    RunRequest,
    TimestampMetadataValue,
    asset,
    build_schedule_context,
    materialize,
)

from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import (
    RETENTION_TAG,
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    build_retention_jobs,
    build_retention_schedule,
)
from artifactstore_dagster.retention_jobs import STALE_AFTER, retention_runs_in_progress

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

days = DailyPartitionsDefinition(start_date="2024-05-01", end_date="2024-05-05")


@asset(partitions_def=days, metadata={"artifactstore/retention_class": "transient"})
def scratch_logs(context: AssetExecutionContext) -> str:
    return f"scratch {context.partition_key}"


@asset(metadata={"artifactstore/retention_class": "permanent-record"})
def ledger() -> dict[str, int]:
    return {"entries": 42}


JOBS = build_retention_jobs()


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """A persistent (SQLite) instance: schedule contexts need an instance reference."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as dagster_instance:
        yield dagster_instance


def _output_metadata(result: Any) -> dict[str, Any]:
    outputs = [e for e in result.all_node_events if e.is_successful_output]
    return {k: v.value for k, v in outputs[0].step_output_data.metadata.items()}


def _run_job(
    role: str,
    resource: ArtifactStoreResource,
    instance: DagsterInstance,
    config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    job = JOBS[role]
    op_name = next(iter(job.graph.node_dict))
    run_config = {**QUIET, "ops": {op_name: {"config": config or {}}}}
    return job.execute_in_process(
        resources={"artifactstore": resource}, instance=instance, run_config=run_config, **kwargs
    )


@pytest.fixture
def materialized(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> ArtifactStore:
    for day in ("2024-05-01", "2024-05-02"):
        result = materialize(
            [scratch_logs],
            partition_key=day,
            resources={"io_manager": io_manager},
            instance=instance,
            run_config=QUIET,
        )
        assert result.success
    assert materialize(
        [ledger], resources={"io_manager": io_manager}, instance=instance, run_config=QUIET
    ).success
    past = store.clock() - dt.timedelta(hours=1)
    # The current version of a partition is kept by a keep rule: these tests expire one.
    store.remove_keep_rule("prefix:scratch_logs", reason="test: let a current version expire")
    store.set_retention("scratch_logs/2024-05-01", expires_at=past, override=True, reason="test")
    return store


def test_dry_run_reports_and_changes_nothing(
    materialized: ArtifactStore, resource: ArtifactStoreResource, instance: DagsterInstance
) -> None:
    result = _run_job("sweep", resource, instance, {"dry_run": True, "grace_seconds": 0})
    assert result.success
    metadata = _output_metadata(result)
    assert metadata["dry_run"] is True and metadata["expired_packages"] == 1
    logged = [e.message for e in instance.all_logs(result.run_id) if e.message.startswith("sweep")]
    assert len(logged) == 1
    assert re.fullmatch(
        r"sweep \(dry run, nothing changed\): would expire 1 package\(s\), delete 1 "
        r"blob\(s\) \(\d+ bytes\), move 0 package\(s\) between tiers",
        logged[0],
    ), logged
    rows = [r.data for r in metadata["summary"].records]
    assert rows == [
        {
            "reference": "scratch_logs/2024-05-01@1",
            "retention_class": "transient",
            "expires_at": rows[0]["expires_at"],
            "asset": "scratch_logs",
            "partition": "2024-05-01",
        }
    ]
    assert materialized.describe("scratch_logs/2024-05-01").status == "active"
    assert instance.fetch_observations(AssetKey("scratch_logs"), limit=10).records == []


def test_sweep_expires_observes_and_keeps_dagster_history(
    materialized: ArtifactStore, resource: ArtifactStoreResource, instance: DagsterInstance
) -> None:
    result = _run_job("sweep", resource, instance, {"grace_seconds": 0})
    assert result.success
    metadata = _output_metadata(result)
    assert metadata["expired_packages"] == 1
    assert metadata["blobs_deleted"] == 1 and metadata["bytes_reclaimed"] > 0
    assert materialized.describe("scratch_logs/2024-05-01").status == "expired"
    assert materialized.describe("scratch_logs/2024-05-02").status == "active"

    observations = instance.fetch_observations(AssetKey("scratch_logs"), limit=10).records
    assert len(observations) == 1
    observation = observations[0].asset_observation
    assert observation is not None and observation.partition == "2024-05-01"
    assert observation.metadata["artifactstore/reference"].value == "scratch_logs/2024-05-01@1"
    assert observation.metadata["artifactstore/expired"].value is True
    expires_at = observation.metadata["artifactstore/expires_at"]  # a timestamp, as on outputs
    assert isinstance(expires_at, TimestampMetadataValue)
    expected = materialized.describe("scratch_logs/2024-05-01@1").expires_at
    assert expected is not None and expires_at.value == expected.timestamp()
    # Dagster's own materialization history is never wiped.
    for day in ("2024-05-01", "2024-05-02"):
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("scratch_logs"), asset_partitions=[day]),
            limit=5,
        ).records
        assert len(records) == 1
    # A second sweep has nothing left to do.
    again = _output_metadata(_run_job("sweep", resource, instance, {"grace_seconds": 0}))
    assert again["expired_packages"] == 0


def test_two_retention_runs_never_overlap(
    materialized: ArtifactStore, resource: ArtifactStoreResource, instance: DagsterInstance
) -> None:
    older = instance.create_run_for_job(
        JOBS["verify"], status=DagsterRunStatus.STARTED, tags={RETENTION_TAG: "true"}
    )
    result = _run_job("sweep", resource, instance, {"grace_seconds": 0}, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert older.run_id in (failure.user_failure_data.description or "")
    assert materialized.describe("scratch_logs/2024-05-01").status == "active"

    schedule = build_retention_schedule(JOBS["sweep"])
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    with build_schedule_context(instance=instance) as context:
        skipped = schedule.evaluate_tick(context)
    assert not skipped.run_requests
    assert "still in progress" in (skipped.skip_message or "")

    instance.report_run_canceled(older)
    with build_schedule_context(instance=instance) as context:
        data = schedule.evaluate_tick(context)
    assert data.run_requests and isinstance(data.run_requests[0], RunRequest)
    assert data.run_requests[0].tags[RETENTION_TAG] == "true"
    assert _run_job("sweep", resource, instance, {"grace_seconds": 0}).success


def test_a_retention_run_killed_mid_flight_does_not_block_retention_forever(
    materialized: ArtifactStore, resource: ArtifactStoreResource, instance: DagsterInstance
) -> None:
    """A run worker killed with -9 leaves its run STARTED; once it has been silent for
    ``stale_after`` it is taken for dead: the next sweep runs and the schedule fires."""
    dead = instance.create_run_for_job(
        JOBS["sweep"], status=DagsterRunStatus.STARTED, tags={RETENTION_TAG: "true"}
    )
    assert [r.dagster_run.run_id for r in retention_runs_in_progress(instance)] == [dead.run_id]
    later = dt.datetime.now(dt.UTC) + STALE_AFTER + dt.timedelta(minutes=1)
    assert retention_runs_in_progress(instance, now=later) == []

    blocked = _run_job("sweep", resource, instance, {"grace_seconds": 0}, raise_on_error=False)
    assert not blocked.success  # within the cutoff the silent run still counts as running
    swept = _run_job("sweep", resource, instance, {"grace_seconds": 0, "stale_after_seconds": 0})
    assert swept.success
    assert materialized.describe("scratch_logs/2024-05-01").status == "expired"

    fresh = build_retention_schedule(JOBS["sweep"], stale_after=dt.timedelta(0))
    with build_schedule_context(instance=instance) as context:
        data = fresh.evaluate_tick(context)
    assert data.run_requests, data.skip_message
    patient = build_retention_schedule(JOBS["sweep"])
    with build_schedule_context(instance=instance) as context:
        assert not patient.evaluate_tick(context).run_requests


def test_verify_job_reports_and_fails_on_problems(
    materialized: ArtifactStore, resource: ArtifactStoreResource, instance: DagsterInstance
) -> None:
    ok = _run_job("verify", resource, instance, {"rehash": True})
    assert ok.success
    metadata = _output_metadata(ok)
    assert metadata["packages_verified"] == 3 and metadata["bytes_verified"] > 0
    assert metadata["missing_blobs"] == metadata["corrupt_blobs"] == 0

    blob = materialized.describe("ledger").files[0].blob
    Path(materialized.blobs.uri(blob.blake3).removeprefix("file://")).unlink()
    failed = _run_job("verify", resource, instance, {"rehash": False}, raise_on_error=False)
    assert not failed.success
    failure = failed.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "1 blob problem(s)" in (failure.description or "")
    rows = [r.data for r in failure.metadata["problems"].records]
    assert rows[0]["problem"] == "missing" and rows[0]["packages"] == "ledger@1"

    lenient = _run_job(
        "verify", resource, instance, {"fail_on_problems": False, "name_prefix": "ledger"}
    )
    assert lenient.success and _output_metadata(lenient)["missing_blobs"] == 1


def test_tier_moves_job_moves_and_loads_still_work(
    materialized: ArtifactStore,
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    instance: DagsterInstance,
) -> None:
    config = {"tier": "cold", "older_than_days": 0, "name_prefix": "ledger"}
    planned = _run_job("tier_moves", resource, instance, {**config, "dry_run": True})
    assert _output_metadata(planned)["packages"] == 1
    assert materialized.describe("ledger").retrieval_tier == "hot"

    moved = _run_job("tier_moves", resource, instance, config)
    assert moved.success
    assert materialized.describe("ledger").retrieval_tier == "cold"

    @asset
    def ledger_total(ledger: dict[str, int]) -> int:
        return ledger["entries"]

    result = materialize(
        [ledger, ledger_total],
        selection=[ledger_total],
        resources={"io_manager": io_manager},
        instance=instance,
        run_config=QUIET,
    )
    assert result.success
    assert pickle.loads(materialized.read_bytes("ledger_total")) == 42
    total = materialized.describe("ledger_total")
    assert total.provenance.inputs == (str(materialized.describe("ledger").id),)


def test_schedules_are_daily_and_stopped_by_default() -> None:
    schedule = build_retention_schedule(JOBS["verify"], run_config={"ops": {}})
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.default_status == DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "artifactstore_verify"
