"""``python -m examples.evidence_pipeline.demo``: the evidence pipeline end to end, no server.

Materializes a few daily partitions on the embedded default (SQLite registry and local
blobs under ``var/``, a Dagster home in ``var/dagster``), materializes the first one again,
runs a retention dry run (the package behind each partition's latest materialization is
kept; only the superseded first version can go), then prints the registry's packages and
the lineage of the newest release bundle.
"""

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

DAGSTER_HOME = Path("var/dagster")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3, help="partitions to materialize")
    parser.add_argument("--start", default="2024-05-01", help="first partition (YYYY-MM-DD)")
    args = parser.parse_args(argv)

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DAGSTER_HOME.absolute())))
    # Absolute, so that the registry stays in ./var (where the CLI run here looks) rather
    # than under DAGSTER_HOME, where the resource anchors relative paths.
    os.environ.setdefault(
        "ARTIFACTSTORE_DATABASE_URL", f"sqlite:///{Path.cwd()}/var/artifactstore.db"
    )
    os.environ.setdefault("ARTIFACTSTORE_STORAGE_URL", str(Path.cwd() / "var" / "blobs"))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text("telemetry:\n  enabled: false\n")
    # Imported after DAGSTER_HOME is set, so that everything sees the same instance.
    from dagster import DagsterInstance

    from examples.evidence_pipeline.definitions import defs, store

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    registry = store.get_store()
    print(f"registry: {registry.engine.url.render_as_string()}  blobs: {registry.blobs.url}")
    print(f"dagster home: {home}\n")

    start = dt.date.fromisoformat(args.start)
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range(args.days)]
    with DagsterInstance.get() as instance:
        job = defs.resolve_job_def("evidence_job")
        for day in [*days, days[0]]:  # the first day twice: its first version is superseded
            result = job.execute_in_process(instance=instance, partition_key=day, run_config=quiet)
            checks = result.get_asset_check_evaluations()
            passed = sum(c.passed for c in checks)
            status = "ok" if result.success else "FAILED"
            print(f"materialized {day}: {status}, integrity checks {passed}/{len(checks)} passed")
            if not result.success:
                return 1
        print()

        sweep = defs.resolve_job_def("artifactstore_retention_sweep")
        today = dt.datetime.now(dt.UTC).date()
        for label, as_of in (("now", None), ("+100 days", today + dt.timedelta(days=100))):
            config: dict[str, Any] = {"dry_run": True, "grace_seconds": 0}
            if as_of is not None:
                config["as_of"] = as_of.isoformat()
            dry = sweep.execute_in_process(
                instance=instance,
                run_config={**quiet, "ops": {"artifactstore_sweep": {"config": config}}},
            )
            output = next(e for e in dry.all_node_events if e.is_successful_output)
            metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
            print(
                f"retention dry run as of {label}: {metadata['expired_packages']} package(s) "
                f"would expire, {metadata['blobs_deleted']} blob(s) would be deleted "
                f"({metadata['bytes_reclaimed']} bytes), {metadata['shared_blobs_kept']} kept "
                "because a live package shares them"
            )

    packages = registry.list_packages(name_prefix="evidence/")
    print(f"\npackages in the registry ({len(packages)}):")
    rows = [
        {
            "reference": p.reference,
            "kind": p.kind,
            "retention class": p.retention_class,
            "files": len(p.files),
            "bytes": p.size,
            "expires": p.expires_at.date().isoformat() if p.expires_at else "never",
        }
        for p in packages
    ]
    print(_table(rows, ["reference", "kind", "retention class", "files", "bytes", "expires"]))

    bundle = registry.describe(f"evidence/release_bundle/{days[-1]}")
    print(f"\nlineage of {bundle.reference} ({bundle.id}):")
    for path in sorted(f.path for f in bundle.files):
        print(f"  file {path}")
    for edge, package in registry.lineage(bundle.id):
        print(f"  {'  ' * (edge.depth - 1)}<- {package.reference}  ({package.kind}, {package.id})")
    print(f"\nverify: {(registry.verify(bundle.id).ok and 'intact') or 'PROBLEMS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
