"""Through Dagster's GraphQL layer (what the UI reads), on the example pipeline in a code server."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance

pytestmark = [pytest.mark.dagster, pytest.mark.integration, pytest.mark.slow]

EXAMPLE = Path(__file__).parents[2] / "examples" / "evidence_pipeline" / "definitions.py"

ASSET_QUERY = """
query AssetMaterialization($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) {
        partition
        runId
        metadataEntries {
          label
          ... on TextMetadataEntry { text }
          ... on IntMetadataEntry { intValue }
          ... on JsonMetadataEntry { jsonString }
          ... on TimestampMetadataEntry { timestamp }
          ... on AssetMetadataEntry { assetKey { path } }
          ... on TableMetadataEntry { table { records } }
        }
      }
    }
  }
}
"""

REPOSITORY_QUERY = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        jobs { name }
        schedules { name cronSchedule scheduleState { status } }
      }
    }
  }
}
"""


@pytest.fixture
def example_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    monkeypatch.setenv("ARTIFACTSTORE_DATABASE_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("ARTIFACTSTORE_STORAGE_URL", str(tmp_path / "blobs"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as instance:
        yield instance


def _entries(materialization: dict[str, Any]) -> dict[str, Any]:
    result = {}
    for entry in materialization["metadataEntries"]:
        kinds = ("text", "intValue", "jsonString", "timestamp", "assetKey", "table")
        result[entry["label"]] = next((entry[k] for k in kinds if k in entry), None)
    return result


def test_latest_materialization_carries_artifact_metadata_and_jobs_are_loaded(
    example_instance: DagsterInstance,
) -> None:
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    from examples.evidence_pipeline.definitions import defs, store

    job = defs.resolve_job_def("evidence_job")
    result = job.execute_in_process(
        instance=example_instance,
        partition_key="2024-05-02",
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    assert result.success
    registry = store.get_store()
    bundle = registry.describe("evidence/release_bundle/2024-05-02")

    with define_out_of_process_context(str(EXAMPLE), "defs", example_instance) as context:
        asset = execute_dagster_graphql(
            context, ASSET_QUERY, {"assetKey": {"path": ["release_bundle"]}}
        ).data["assetOrError"]
        repositories = execute_dagster_graphql(context, REPOSITORY_QUERY).data

    assert asset["__typename"] == "Asset"
    latest = asset["assetMaterializations"][0]
    assert latest["partition"] == "2024-05-02" and latest["runId"] == result.run_id
    entries = _entries(latest)
    assert entries["artifactstore/package_id"] == str(bundle.id)
    assert entries["artifactstore/reference"] == "evidence/release_bundle/2024-05-02@1"
    assert entries["artifactstore/content_address"] == bundle.content_address
    assert entries["artifactstore/sha256"] == bundle.digest_sha256
    assert entries["artifactstore/size"] == bundle.size
    assert entries["artifactstore/file_count"] == 3
    assert entries["artifactstore/retention_class"] == "release-evidence"
    assert bundle.expires_at is not None
    assert entries["artifactstore/expires_at"] == bundle.expires_at.timestamp()
    files = [json.loads(record)["path"] for record in entries["artifactstore/files"]["records"]]
    assert files == [entry.path for entry in bundle.files] and len(files) == 3
    assert entries["artifactstore/upstream/daily_summary"] == {"path": ["daily_summary"]}
    assert entries["artifactstore/storage_uri"] == registry.blobs.url
    upstream = json.loads(entries["artifactstore/upstream_package_ids"])
    assert sorted(upstream) == sorted(bundle.provenance.inputs)

    nodes = repositories["repositoriesOrError"]["nodes"]
    jobs = {j["name"] for node in nodes for j in node["jobs"]}
    assert {
        "artifactstore_retention_sweep",
        "artifactstore_tier_moves",
        "artifactstore_verify",
    } <= jobs
    schedules = {s["name"]: s for node in nodes for s in node["schedules"]}
    sweep = schedules["artifactstore_retention_sweep_daily"]
    assert sweep["cronSchedule"] == "0 3 * * *"
    assert sweep["scheduleState"]["status"] == "STOPPED"
