"""A daily-partitioned evidence pipeline, every output an artifact-store package.

raw_logs (raw-evidence) -> daily_summary (summary-evidence) -> release_bundle (a
directory package, release-evidence), with digest checks on all three, the retention
jobs and their (stopped) schedules. Load it with
``dagster dev -m examples.evidence_pipeline.definitions``.

The registry comes from ``ARTIFACTSTORE_*`` settings: by default SQLite at
``var/artifactstore.db`` with blobs in ``var/blobs``.
"""

import atexit
import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    DailyPartitionsDefinition,
    Definitions,
    MaterializeResult,
    asset,
    define_asset_job,
)

from artifactstore_dagster import (
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    artifact_result,
    build_artifactstore_defs,
)

daily = DailyPartitionsDefinition(start_date="2024-05-01", end_offset=0)
SERVICES = ("api", "billing", "search")
LEVELS = ("INFO", "INFO", "INFO", "WARN", "ERROR")


@asset(
    partitions_def=daily,
    group_name="evidence",
    metadata={"artifactstore/kind": "log", "artifactstore/retention_class": "raw-evidence"},
    code_version="1",
)
def raw_logs(context: AssetExecutionContext) -> str:
    """One day of service logs (synthetic and deterministic: seeded by the date)."""
    day = context.partition_key
    rng = random.Random(day)
    lines = [
        f"{day}T{hour:02d}:{rng.randrange(60):02d}:00Z {rng.choice(SERVICES)} "
        f"{rng.choice(LEVELS)} request took {rng.randrange(5, 900)}ms"
        for hour in range(24)
        for _ in range(rng.randrange(3, 8))
    ]
    return "\n".join(lines) + "\n"


@asset(
    partitions_def=daily,
    group_name="evidence",
    metadata={"artifactstore/kind": "report", "artifactstore/retention_class": "summary-evidence"},
    code_version="1",
)
def daily_summary(context: AssetExecutionContext, raw_logs: str) -> MaterializeResult[Any]:
    """Counts by service and level and the slowest request: the day's summary report."""
    counts: dict[str, dict[str, int]] = {}
    slowest = 0
    for line in raw_logs.splitlines():
        _, service, level, *rest = line.split()
        by_level = counts.setdefault(service, {})
        by_level[level] = by_level.get(level, 0) + 1
        slowest = max(slowest, int(rest[-1].removesuffix("ms")))
    summary = {
        "day": context.partition_key,
        "lines": len(raw_logs.splitlines()),
        "by_service": counts,
        "slowest_ms": slowest,
        "errors": sum(levels.get("ERROR", 0) for levels in counts.values()),
    }
    # The data version is the digest of the stored file: equal content, equal version.
    return artifact_result(summary, context=context, metadata={"errors": summary["errors"]})


@asset(
    partitions_def=daily,
    group_name="evidence",
    metadata={
        "artifactstore/kind": "evidence",
        "artifactstore/retention_class": "release-evidence",
    },
    code_version="1",
)
def release_bundle(
    context: AssetExecutionContext, raw_logs: str, daily_summary: dict[str, Any]
) -> Path:
    """The release evidence bundle: a directory with the report, the summary and the logs."""
    root = Path(tempfile.mkdtemp(prefix="release-bundle-"))
    (root / "logs").mkdir()
    (root / "logs" / "service.log").write_text(raw_logs)
    (root / "summary.json").write_text(json.dumps(daily_summary, indent=2, sort_keys=True))
    status = "PASS" if daily_summary["errors"] < 25 else "REVIEW"
    (root / "REPORT.md").write_text(
        f"# Release evidence for {daily_summary['day']}\n\n"
        f"- log lines: {daily_summary['lines']}\n"
        f"- errors: {daily_summary['errors']}\n"
        f"- slowest request: {daily_summary['slowest_ms']} ms\n"
        f"- status: **{status}**\n"
    )
    context.log.info(f"bundle for {context.partition_key}: {status}")
    # The IO manager copies the directory into the registry; the temporary one goes
    # when the process ends.
    _CLEANUP.append(root)
    return root


_CLEANUP: list[Path] = []


def cleanup_bundles() -> None:
    """Remove the temporary bundle directories made in this process."""
    while _CLEANUP:
        shutil.rmtree(_CLEANUP.pop(), ignore_errors=True)


atexit.register(cleanup_bundles)


evidence_assets = [raw_logs, daily_summary, release_bundle]
evidence_job = define_asset_job("evidence_job", selection=evidence_assets, partitions_def=daily)

store = ArtifactStoreResource(actor="evidence-pipeline")
# Given your definitions, the factory merges them and refuses a checked asset they lack.
defs = build_artifactstore_defs(
    Definitions(assets=evidence_assets, jobs=[evidence_job]),
    resource=store,
    io_manager=ArtifactStoreIOManager(store=store, package_prefix="evidence"),
    checked_assets=["raw_logs", "daily_summary", "release_bundle"],
    check_mode="digest",
)
