"""Retention as Dagster jobs: sweep (expire + collect), tier moves and verification.

Each job is one op calling one ``ArtifactStore`` command with typed run config. The
sweep reports one ``AssetObservation`` per expired package on the asset (and partition)
it was materialized for, and every job attaches a summary table to its output. Dagster's
own materialization history is never touched.

Two retention runs never overlap: every run is tagged ``artifactstore/retention``; a run
that finds an older retention run still in progress fails at once, the schedules skip a
tick while one is in progress, and the registry's own sweep lease refuses a second sweep
from anywhere else. Schedules are created stopped, as Dagster integrations' are.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of decorated
# functions (context, config) at definition time and needs real types there.

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    Config,
    DagsterRunStatus,
    DefaultScheduleStatus,
    Failure,
    JobDefinition,
    MetadataValue,
    Nothing,
    OpDefinition,
    OpExecutionContext,
    Out,
    Output,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    TableColumn,
    TableRecord,
    TableSchema,
    in_process_executor,
    job,
    op,
    schedule,
)
from pydantic import Field

from artifactstore_core.domain.package import Package
from artifactstore_core.domain.retention import TIERS
from artifactstore_core.errors import ArtifactStoreError, ConflictError, NotFoundError
from artifactstore_core.queries import PackageFilter
from artifactstore_dagster import keys
from artifactstore_dagster.keys import RETENTION_TAG
from artifactstore_dagster.resources import ArtifactStoreResource

_WAITING = {DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED}
_IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
_TABLE_ROWS = 500


# ---------------------------------------------------------------------------- run config
STALE_AFTER = dt.timedelta(hours=1)
"""A retention run in progress that has logged nothing for this long is taken for dead (a
run worker killed with -9 stays STARTED); the registry's sweep lease still serialises
sweeps. Dagster's run monitoring marks such runs failed (docs/dagster.md)."""


class _RetentionConfig(Config):
    """What every retention job's run config has."""

    stale_after_seconds: int = Field(
        default=int(STALE_AFTER.total_seconds()),
        ge=0,
        description="A retention run silent this long is taken for dead and does not block",
    )


class SweepConfig(_RetentionConfig):
    """Run config of the sweep job."""

    dry_run: bool = Field(default=False, description="Plan only: report, change nothing")
    limit: int | None = Field(
        default=None, ge=1, description="At most this many expiries, deletions and moves"
    )
    grace_seconds: int | None = Field(
        default=None, ge=0, description="Keep blobs younger than this (default: settings)"
    )
    as_of: str | None = Field(
        default=None,
        description="Dry runs only: plan as of this ISO date or time (UTC if no zone given)",
    )


class TierMoveConfig(_RetentionConfig):
    """Run config of the tier move job: which packages move to which tier."""

    tier: str = Field(default="cold", description="Target tier: hot, cold or archive")
    older_than_days: float = Field(default=30.0, ge=0, description="Only packages this old")
    name_prefix: str | None = Field(default=None, description="Only names with this prefix")
    retention_class: str | None = Field(default=None, description="Only this retention class")
    dry_run: bool = Field(default=False, description="List the moves, make none")
    limit: int | None = Field(default=None, ge=1, description="At most this many moves")


class VerifyConfig(_RetentionConfig):
    """Run config of the verification job."""

    rehash: bool = Field(default=True, description="Re-hash every blob (else: presence only)")
    name_prefix: str | None = Field(default=None, description="Only names with this prefix")
    limit: int | None = Field(default=None, ge=1, description="At most this many packages")
    fail_on_problems: bool = Field(default=True, description="Fail the run on any problem")


# ---------------------------------------------------------------------------- guard
def retention_runs_in_progress(
    instance: Any,
    *,
    exclude: str | None = None,
    stale_after: dt.timedelta = STALE_AFTER,
    now: dt.datetime | None = None,
) -> list[Any]:
    """Run records of retention runs queued or in progress, oldest first; a started run
    that has logged nothing (no event, no status change) for ``stale_after`` is left out."""
    records = instance.get_run_records(
        filters=RunsFilter(tags={RETENTION_TAG: "true"}, statuses=_IN_PROGRESS)
    )
    cutoff = (now or dt.datetime.now(dt.UTC)) - stale_after
    found = [
        r
        for r in records
        if r.dagster_run.run_id != exclude
        and (r.dagster_run.status in _WAITING or _last_activity(instance, r) > cutoff)
    ]
    return sorted(found, key=lambda r: (r.create_timestamp, r.dagster_run.run_id))


def _last_activity(instance: Any, record: Any) -> dt.datetime:
    """When the run last logged an event or changed status."""
    latest: dt.datetime = record.update_timestamp
    events = instance.get_records_for_run(record.dagster_run.run_id, limit=1, ascending=False)
    if events.records:
        stamp = dt.datetime.fromtimestamp(events.records[0].event_log_entry.timestamp, dt.UTC)
        latest = max(latest, stamp)
    return latest if latest.tzinfo else latest.replace(tzinfo=dt.UTC)


def _guard(context: OpExecutionContext, stale_after_seconds: int) -> None:
    """Fail if an older retention run is still queued or running (the older one goes on);
    one silent for ``stale_after_seconds`` is taken for dead."""
    me = context.instance.get_run_record_by_id(context.run_id)
    if me is None:
        return
    mine = (me.create_timestamp, context.run_id)
    stale_after = dt.timedelta(seconds=stale_after_seconds)
    running = retention_runs_in_progress(
        context.instance, exclude=context.run_id, stale_after=stale_after
    )
    for record in running:
        if (record.create_timestamp, record.dagster_run.run_id) < mine:
            run = record.dagster_run
            raise Failure(
                description=(
                    f"retention run {run.run_id} ({run.job_name}, {run.status.value}) is still "
                    "in progress; this run stops so that two retention runs never overlap"
                ),
                metadata={"blocking_run_id": run.run_id, "blocking_job": run.job_name},
            )


def _store(context: OpExecutionContext, resource_key: str) -> Any:
    resource: ArtifactStoreResource = getattr(context.resources, resource_key)
    return resource.get_store()


# ---------------------------------------------------------------------------- helpers
def _asset_of(package: Package) -> tuple[AssetKey | None, str | None]:
    """The Dagster asset (and partition) a package was materialized for, if any."""
    dagster = package.provenance.attributes.get("dagster")
    if not isinstance(dagster, Mapping) or not dagster.get("asset_key"):
        return None, None
    partition = dagster.get("partition_key")
    return AssetKey(list(dagster["asset_key"])), str(partition) if partition else None


def _table(columns: Sequence[tuple[str, str]], rows: Sequence[Mapping[str, Any]]) -> Any:
    schema = TableSchema(columns=[TableColumn(name, kind) for name, kind in columns])
    records = [TableRecord({k: v for k, v in row.items() if v is not None}) for row in rows]
    return MetadataValue.table(records=records[:_TABLE_ROWS], schema=schema)


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


# ---------------------------------------------------------------------------- sweep
def _as_of(config: SweepConfig) -> dt.datetime | None:
    if config.as_of is None:
        return None
    if not config.dry_run:
        raise Failure(description="as_of is for dry runs only: a real sweep runs at the present")
    try:
        when = dt.datetime.fromisoformat(config.as_of)
    except ValueError as exc:
        raise Failure(description=f"as_of {config.as_of!r} is not an ISO date or time") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _retention_op(
    name: str, resource_key: str, description: str
) -> Callable[[Callable[..., Any]], OpDefinition]:
    """The ``@op`` of every retention job: no output, the retention tag and pool."""
    return op(
        name=name,
        out=Out(Nothing),
        required_resource_keys={resource_key},
        tags={RETENTION_TAG: "true"},
        pool="artifactstore_retention",
        description=description,
    )


def _sweep_op(resource_key: str, name: str) -> Any:
    @_retention_op(
        name,
        resource_key,
        "Expire due packages, move tiers by class rules, collect unneeded blobs.",
    )
    def sweep(context: OpExecutionContext, config: SweepConfig) -> Any:
        _guard(context, config.stale_after_seconds)
        store = _store(context, resource_key)
        grace = None if config.grace_seconds is None else dt.timedelta(seconds=config.grace_seconds)
        now = _as_of(config)
        try:
            result = store.sweep(
                now, dry_run=config.dry_run, limit=config.limit, grace=grace, actor="dagster"
            )
        except ConflictError as exc:
            raise Failure(description=f"the registry refused a second sweep: {exc}") from exc
        expired = result.plan.expire if config.dry_run else result.expired
        rows = []
        for item in expired:
            try:
                package = store.describe(item.package_id)
                asset_key, partition = _asset_of(package)
            except NotFoundError:
                asset_key, partition = None, None
            rows.append(
                {
                    "reference": item.reference,
                    "retention_class": item.retention_class,
                    "expires_at": _when(item.expires_at),
                    "asset": asset_key.to_user_string() if asset_key else None,
                    "partition": partition,
                }
            )
            if asset_key is not None and not config.dry_run:
                context.log_event(
                    AssetObservation(
                        asset_key=asset_key,
                        partition=partition,
                        description=f"artifact-store package {item.reference} expired",
                        metadata={
                            keys.PACKAGE_ID: str(item.package_id),
                            keys.REFERENCE: item.reference,
                            keys.RETENTION_CLASS: item.retention_class,
                            keys.EXPIRED: True,
                            keys.EXPIRES_AT: MetadataValue.timestamp(item.expires_at)
                            if item.expires_at
                            else MetadataValue.text("never"),
                        },
                    )
                )
        deleted = result.plan.delete if config.dry_run else result.deleted
        moved = result.plan.tier_moves if config.dry_run else result.moved
        reclaimed = result.plan.bytes_to_reclaim if config.dry_run else result.bytes_reclaimed
        if config.dry_run:
            summary = (
                f"sweep (dry run, nothing changed): would expire {len(expired)} package(s), "
                f"delete {len(deleted)} blob(s) ({reclaimed} bytes), move {len(moved)} "
                "package(s) between tiers"
            )
        else:
            summary = (
                f"sweep: {len(expired)} package(s) expired, {len(deleted)} blob(s) deleted "
                f"({reclaimed} bytes), {len(moved)} tier move(s)"
            )
        context.log.info(summary)
        yield Output(
            None,
            metadata={
                "dry_run": config.dry_run,
                "expired_packages": MetadataValue.int(len(expired)),
                "blobs_deleted": MetadataValue.int(len(deleted)),
                "bytes_reclaimed": MetadataValue.int(reclaimed),
                "tier_moves": MetadataValue.int(len(moved)),
                "shared_blobs_kept": MetadataValue.int(result.plan.shared_kept_blobs),
                "summary": _table(
                    [
                        ("reference", "string"),
                        ("retention_class", "string"),
                        ("expires_at", "string"),
                        ("asset", "string"),
                        ("partition", "string"),
                    ],
                    rows,
                ),
                "moves": _table(
                    [("reference", "string"), ("from_tier", "string"), ("to_tier", "string")],
                    [
                        {"reference": m.reference, "from_tier": m.from_tier, "to_tier": m.to_tier}
                        for m in moved
                    ],
                ),
            },
        )

    return sweep


# ---------------------------------------------------------------------------- tier moves
def _tier_move_op(resource_key: str, name: str) -> Any:
    @_retention_op(
        name, resource_key, "Move packages older than a cutoff to a tier (verified copies)."
    )
    def move_tiers(context: OpExecutionContext, config: TierMoveConfig) -> Any:
        _guard(context, config.stale_after_seconds)
        if config.tier not in TIERS:
            raise Failure(description=f"unknown tier {config.tier!r}; use {', '.join(TIERS)}")
        store = _store(context, resource_key)
        moves = store.plan_tier_moves(
            config.tier,
            older_than=dt.timedelta(days=config.older_than_days),
            where=PackageFilter(
                name_prefix=config.name_prefix, retention_class=config.retention_class
            ),
            limit=config.limit,
        )
        rows = []
        failures = []
        for move in moves:
            row = {
                "reference": move.reference,
                "from_tier": move.from_tier,
                "to_tier": move.to_tier,
                "status": "planned" if config.dry_run else "moved",
            }
            if not config.dry_run:
                try:
                    store.move_tier(move.package_id, move.to_tier, actor="dagster")
                except ArtifactStoreError as exc:
                    row["status"] = f"failed: {exc}"
                    failures.append(move.reference)
            rows.append(row)
        context.log.info(f"tier moves to {config.tier}: {len(moves)} package(s)")
        metadata = {
            "dry_run": config.dry_run,
            "tier": config.tier,
            "packages": MetadataValue.int(len(moves)),
            "failed": MetadataValue.int(len(failures)),
            "summary": _table(
                [
                    ("reference", "string"),
                    ("from_tier", "string"),
                    ("to_tier", "string"),
                    ("status", "string"),
                ],
                rows,
            ),
        }
        if failures:
            raise Failure(
                description=f"{len(failures)} tier move(s) failed: {', '.join(failures[:10])}",
                metadata=metadata,
            )
        yield Output(None, metadata=metadata)

    return move_tiers


# ---------------------------------------------------------------------------- verification
def _verify_op(resource_key: str, name: str) -> Any:
    @_retention_op(
        name, resource_key, "Verify the stored bytes of active packages (presence or re-hash)."
    )
    def verify(context: OpExecutionContext, config: VerifyConfig) -> Any:
        _guard(context, config.stale_after_seconds)
        store = _store(context, resource_key)
        selected = PackageFilter(
            name_prefix=config.name_prefix, status="active", limit=config.limit
        )
        result = store.verify(where=selected, rehash=config.rehash)
        problems = result.problems
        rows = [
            {
                "content_address": p.content_address,
                "backend": p.backend,
                "problem": p.problem,
                "packages": ", ".join(p.packages[:20]),
                "detail": p.detail,
            }
            for p in problems
        ]
        metadata = {
            "mode": "digest" if config.rehash else "exists",
            "packages_verified": MetadataValue.int(result.packages),
            "blobs_verified": MetadataValue.int(result.blobs),
            "bytes_verified": MetadataValue.int(result.bytes_verified),
            "missing_blobs": MetadataValue.int(sum(p.problem == "missing" for p in problems)),
            "corrupt_blobs": MetadataValue.int(sum(p.problem == "corrupt" for p in problems)),
            "problems": _table(
                [
                    ("content_address", "string"),
                    ("backend", "string"),
                    ("problem", "string"),
                    ("packages", "string"),
                    ("detail", "string"),
                ],
                rows,
            ),
        }
        context.log.info(
            f"verified {result.packages} package(s), {result.blobs} blob(s), "
            f"{result.bytes_verified} bytes re-hashed; "
            f"{len(problems)} problem(s)"
        )
        if problems and config.fail_on_problems:
            raise Failure(
                description=f"{len(problems)} blob problem(s): "
                + "; ".join(f"{p.content_address} {p.problem}" for p in problems[:5]),
                metadata=metadata,
            )
        yield Output(None, metadata=metadata)

    return verify


# ---------------------------------------------------------------------------- jobs
def _one_op_job(job_name: str, the_op: Any, description: str) -> JobDefinition:
    @job(
        name=job_name,
        tags={RETENTION_TAG: "true"},
        executor_def=in_process_executor,
        description=description,
    )
    def the_job() -> None:
        the_op()

    return the_job


def build_retention_jobs(
    *, resource_key: str = "artifactstore", prefix: str = "artifactstore_"
) -> dict[str, JobDefinition]:
    """The retention jobs by role: ``sweep``, ``tier_moves`` and ``verify``."""
    return {
        "sweep": _one_op_job(
            f"{prefix}retention_sweep",
            _sweep_op(resource_key, f"{prefix}sweep"),
            "Expire due artifact-store packages, apply tier rules and collect blobs.",
        ),
        "tier_moves": _one_op_job(
            f"{prefix}tier_moves",
            _tier_move_op(resource_key, f"{prefix}move_tiers"),
            "Move artifact-store packages older than a cutoff to another storage tier.",
        ),
        "verify": _one_op_job(
            f"{prefix}verify",
            _verify_op(resource_key, f"{prefix}verify_blobs"),
            "Verify the stored bytes of every active artifact-store package.",
        ),
    }


def build_retention_schedule(
    job_def: JobDefinition,
    *,
    cron_schedule: str = "0 3 * * *",
    name: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    execution_timezone: str = "UTC",
    default_status: DefaultScheduleStatus = DefaultScheduleStatus.STOPPED,
    stale_after: dt.timedelta = STALE_AFTER,
) -> ScheduleDefinition:
    """A schedule for a retention job (daily, stopped until turned on) that skips a tick
    while another retention run is in progress (one silent for ``stale_after`` is taken
    for dead: a crashed run never stops retention)."""

    @schedule(
        job=job_def,
        cron_schedule=cron_schedule,
        name=name or f"{job_def.name}_schedule",
        execution_timezone=execution_timezone,
        default_status=default_status,
        tags={RETENTION_TAG: "true"},
    )
    def retention_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        running = retention_runs_in_progress(context.instance, stale_after=stale_after)
        if running:
            run = running[0].dagster_run
            return SkipReason(f"retention run {run.run_id} ({run.job_name}) is still in progress")
        return RunRequest(run_config=dict(run_config or {}), tags={RETENTION_TAG: "true"})

    return retention_schedule
