"""The IO manager inside real Dagster runs (materialize / execute_in_process on a test instance)."""

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    DagsterInstance,
    DailyPartitionsDefinition,
    DynamicOut,
    DynamicOutput,
    MaterializeResult,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
    asset,
    job,
    materialize,
    op,
)

from artifactstore_core.errors import (
    BackendUnavailableError,
    InvalidInputError,
    PackageExpiredError,
    UnknownRetentionClassError,
)
from artifactstore_core.seed import RETENTION_CLASS_SEEDS
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource, artifact_result
from artifactstore_dagster.keys import CONTENT_DIGEST, PACKAGE_ID, STORED

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

DATA_VERSION_TAG = "dagster/data_version"


def _latest(instance: DagsterInstance, key: str, partition: str | None = None) -> Any:
    from dagster import AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=AssetKey(key), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    return records[0].asset_materialization


def _meta(materialization: Any, key: str) -> Any:
    return materialization.metadata[key].value


def _run(
    assets: list[Any], io: ArtifactStoreIOManager, instance: DagsterInstance, **kw: Any
) -> Any:
    return materialize(
        assets, resources={"io_manager": io}, instance=instance, run_config=QUIET, **kw
    )


# ---------------------------------------------------------------------------- chains
@asset(metadata={"artifactstore/retention_class": "raw-evidence", "artifactstore/kind": "log"})
def source() -> dict[str, Any]:
    return {"lines": ["a", "b", "c"]}


@asset(metadata={"artifactstore/retention_class": "summary-evidence"}, code_version="v7")
def middle(source: dict[str, Any]) -> dict[str, Any]:
    return {"count": len(source["lines"])}


@asset
def final(middle: dict[str, Any]) -> str:
    return f"{middle['count']} lines"


def test_chain_of_three_links_the_exact_upstream_versions(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> None:
    first = _run([source, middle, final], io_manager, instance, tags={"team": "data"})
    second = _run([source, middle, final], io_manager, instance)
    # Only `final` now: it must read middle@2, the version Dagster's latest materialization shows.
    third = _run([source, middle, final], io_manager, instance, selection=[final])
    assert first.success and second.success and third.success

    final3 = store.describe("final@3")
    middle2 = store.describe("middle@2")
    assert final3.provenance.inputs == (str(middle2.id),)
    assert middle2.provenance.inputs == (str(store.describe("source@2").id),)
    assert [p.reference for _, p in store.lineage("final@3")] == ["middle@2", "source@2"]

    middle1 = store.describe("middle@1")
    dagster = middle1.provenance.attributes["dagster"]
    assert middle1.provenance.run_id == first.run_id == dagster["run_id"]
    assert middle1.provenance.code_version == "v7" == dagster["code_version"]
    assert middle1.provenance.producer == "dagster:middle"
    assert dagster["job_name"] == "__ephemeral_asset_job__"
    assert dagster["step_key"] == "middle" and dagster["output_name"] == "result"
    assert dagster["run_tags"]["team"] == "data"
    assert dagster["inputs"] == [
        {
            "input": "source",
            "package_id": str(store.describe("source@1").id),
            "reference": "source@1",
            "asset_key": ["source"],
            "partition_key": None,
        }
    ]
    assert (middle1.retention_class, store.describe("source@1").kind) == (
        "summary-evidence",
        "log",
    )
    materialization = _latest(instance, "final")
    assert _meta(materialization, PACKAGE_ID) == str(final3.id)
    assert _meta(materialization, "artifactstore/upstream_package_ids") == [str(middle2.id)]
    # Each retrieval is in the registry with the consuming run's id.
    retrievals = [
        e
        for e in store.events(subject_id=str(middle2.id))
        if type(e.event).__name__ == "PackageRetrieved"
    ]
    assert {e.event.run_id for e in retrievals} == {second.run_id, third.run_id}  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- partitions
regions = StaticPartitionsDefinition(["eu", "us"])


@asset(partitions_def=regions)
def regional(context: AssetExecutionContext) -> dict[str, str]:
    return {"region": context.partition_key}


@asset(partitions_def=regions)
def regional_report(regional: dict[str, str]) -> str:
    return f"report for {regional['region']}"


def test_static_partitions_one_package_each(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> None:
    for region in ("eu", "us"):
        assert _run([regional, regional_report], io_manager, instance, partition_key=region).success
    assert store.read_bytes("regional_report/us").decode() == "report for us"
    report = store.describe("regional_report/eu")
    assert report.provenance.attributes["dagster"]["partition_key"] == "eu"
    assert report.provenance.inputs == (str(store.describe("regional/eu").id),)


daily = DailyPartitionsDefinition(start_date="2024-05-01", end_date="2024-05-10")


@asset(partitions_def=daily)
def raw_logs(context: AssetExecutionContext) -> str:
    return f"log {context.partition_key}"


@asset(
    partitions_def=daily,
    ins={"raw_logs": AssetIn(partition_mapping=TimeWindowPartitionMapping(start_offset=-1))},
)
def two_day_window(raw_logs: dict[str, str]) -> list[str]:
    return sorted(raw_logs.values())


@asset(partitions_def=daily)
def same_day(raw_logs: str) -> str:
    return raw_logs.upper()


def test_daily_partitions_and_partition_ranges(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> None:
    for day in ("2024-05-01", "2024-05-02"):
        assert _run([raw_logs], io_manager, instance, partition_key=day).success
    result = _run(
        [raw_logs, two_day_window, same_day],
        io_manager,
        instance,
        partition_key="2024-05-02",
        selection=[two_day_window, same_day],
    )
    assert result.success
    assert store.read_bytes("two_day_window/2024-05-02", "data.json") == (
        b'["log 2024-05-01", "log 2024-05-02"]'
    )
    window = store.describe("two_day_window/2024-05-02")
    assert sorted(
        i["partition_key"] for i in window.provenance.attributes["dagster"]["inputs"]
    ) == [
        "2024-05-01",
        "2024-05-02",
    ]
    assert store.read_bytes("same_day/2024-05-02").decode() == "LOG 2024-05-02"


def test_a_range_with_a_missing_partition_fails_unless_allowed(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance
) -> None:
    assert _run([raw_logs], io_manager, instance, partition_key="2024-05-04").success
    result = _run(
        [raw_logs, two_day_window],
        io_manager,
        instance,
        partition_key="2024-05-04",
        selection=[two_day_window],
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "asset 'raw_logs' partition '2024-05-03'" in str(failure.to_string())
    assert "never been materialized" in failure.to_string()


multi = MultiPartitionsDefinition(
    {"date": DailyPartitionsDefinition(start_date="2024-05-01"), "region": regions}
)


@asset(partitions_def=multi)
def measurements(context: AssetExecutionContext) -> dict[str, Any]:
    key = context.partition_key
    assert isinstance(key, MultiPartitionKey)
    return dict(key.keys_by_dimension)


@asset(partitions_def=multi)
def measurement_summary(measurements: dict[str, Any]) -> str:
    return f"{measurements['region']} on {measurements['date']}"


def test_multi_partitions(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> None:
    key = MultiPartitionKey({"date": "2024-05-03", "region": "us"})
    assert _run(
        [measurements, measurement_summary], io_manager, instance, partition_key=key
    ).success
    package = store.describe("measurement_summary/2024-05-03/us")
    assert store.read_bytes(package.id).decode() == "us on 2024-05-03"
    dagster = package.provenance.attributes["dagster"]
    assert dagster["partition_keys_by_dimension"] == {"date": "2024-05-03", "region": "us"}
    assert dagster["partition_key"] == str(key)


# ---------------------------------------------------------------------------- op jobs
@op(out=DynamicOut())
def emit() -> Any:
    for key in ("a", "b"):
        yield DynamicOutput({"item": key}, mapping_key=key)


@op
def process(item: dict[str, str]) -> str:
    return item["item"] * 2


@op
def total(results: list[str]) -> str:
    return "+".join(sorted(results))


@job
def fan_job() -> None:
    total(emit().map(process).collect())


def test_dynamic_outputs_and_fan_in(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> None:
    result = fan_job.execute_in_process(
        instance=instance, resources={"io_manager": io_manager}, run_config=QUIET
    )
    assert result.success
    assert sorted(p.name for p in store.list_packages()) == [
        "fan_job/emit/result/a",
        "fan_job/emit/result/b",
        "fan_job/process/a/result",
        "fan_job/process/b/result",
        "fan_job/total/result",
    ]
    assert store.read_bytes("fan_job/total/result").decode() == "aa+bb"
    processed = store.describe("fan_job/process/b/result")
    assert processed.provenance.inputs == (str(store.describe("fan_job/emit/result/b").id),)
    assert len(store.describe("fan_job/total/result").provenance.inputs) == 2
    # A second run reads its own outputs, not the first run's.
    again = fan_job.execute_in_process(
        instance=instance, resources={"io_manager": io_manager}, run_config=QUIET
    )
    assert again.success
    assert store.describe("fan_job/total/result@2").provenance.inputs == tuple(
        sorted(str(store.describe(f"fan_job/process/{k}/result@2").id) for k in "ab")
    ) or set(store.describe("fan_job/total/result@2").provenance.inputs) == {
        str(store.describe(f"fan_job/process/{k}/result@2").id) for k in "ab"
    }


# ---------------------------------------------------------------------------- data versions
@asset
def versioned(context: AssetExecutionContext) -> MaterializeResult[Any]:
    return artifact_result({"same": "content"}, context=context)


@asset
def plain() -> dict[str, str]:
    return {"same": "content"}


def test_data_version_from_materialize_result_helper(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance
) -> None:
    versions = []
    for _ in range(2):
        assert _run([versioned], io_manager, instance).success
        latest = _latest(instance, "versioned")
        assert latest.tags[DATA_VERSION_TAG] == _meta(latest, CONTENT_DIGEST)
        versions.append(latest.tags[DATA_VERSION_TAG])
    assert versions[0] == versions[1] and len(versions[0]) == 64


def test_data_version_set_by_the_io_manager_unless_turned_off(
    resource: ArtifactStoreResource, instance: DagsterInstance
) -> None:
    without = ArtifactStoreIOManager(store=resource, auto_data_version=False)
    assert _run([plain], without, instance).success
    logical = _latest(instance, "plain").tags[DATA_VERSION_TAG]
    assert logical != _meta(_latest(instance, "plain"), CONTENT_DIGEST)

    by_default = ArtifactStoreIOManager(store=resource)
    assert _run([plain], by_default, instance).success
    latest = _latest(instance, "plain")
    assert latest.tags[DATA_VERSION_TAG] == _meta(latest, CONTENT_DIGEST)


# ---------------------------------------------------------------------------- None, Paths
@asset
def side_effect_only() -> None:
    return None


@asset
def untyped_none():  # type: ignore[no-untyped-def]
    return None


@asset
def reads_none(untyped_none: Any) -> str:
    return repr(untyped_none)


def test_none_outputs_store_nothing(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> None:
    assert _run([side_effect_only, untyped_none, reads_none], io_manager, instance).success
    assert [p.name for p in store.list_packages()] == ["reads_none"]
    assert store.read_bytes("reads_none").decode() == "None"
    assert _meta(_latest(instance, "untyped_none"), STORED) is False


@asset(
    metadata={"artifactstore/retention_class": "release-evidence", "artifactstore/kind": "evidence"}
)
def bundle() -> Path:
    root = Path(tempfile.mkdtemp(prefix="bundle-"))
    (root / "logs").mkdir()
    (root / "summary.md").write_text("# all good\n")
    (root / "logs" / "run.log").write_bytes(b"\x00binary log\n")
    return root


@asset
def bundle_index(bundle: Path) -> list[str]:
    return sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())


def test_directory_paths_are_multi_file_packages(
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
) -> None:
    assert _run([bundle, bundle_index], io_manager, instance).success
    package = store.describe("bundle")
    assert [f.path for f in package.files] == ["logs/run.log", "summary.md"]
    assert package.retention_class == "release-evidence"
    assert store.read_bytes("bundle_index") == b'["logs/run.log", "summary.md"]'


# ---------------------------------------------------------------------------- failures
def _failure_text(result: Any) -> str:
    failures = result.get_step_failure_events()
    assert failures, "expected a failed step"
    return "\n".join(f.step_failure_data.error.to_string() for f in failures)


def test_expired_input_names_asset_partition_package_class_and_date(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> None:
    assert _run([raw_logs], io_manager, instance, partition_key="2024-05-05").success
    package = store.describe("raw_logs/2024-05-05")
    past = store.clock() - dt.timedelta(days=1)
    store.remove_keep_rule("prefix:raw_logs", reason="test: let the current version expire")
    store.set_retention(package.id, expires_at=past, override=True, reason="test")
    store.sweep(grace=dt.timedelta(0))
    result = _run(
        [raw_logs, same_day],
        io_manager,
        instance,
        partition_key="2024-05-05",
        selection=[same_day],
        raise_on_error=False,
    )
    text = _failure_text(result)
    assert "asset 'raw_logs' partition '2024-05-05'" in text
    assert "raw_logs/2024-05-05@1" in text and str(package.id) in text
    assert "'raw-evidence'" in text and past.date().isoformat() in text
    assert PackageExpiredError.__name__ in text
    # Dagster's own history is untouched.
    assert _latest(instance, "raw_logs", "2024-05-05") is not None


@asset(metadata={"artifactstore/retention_class": "keep-forever-please"})
def bad_class() -> dict[str, int]:
    return {"a": 1}


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("this object refuses to be pickled")


@asset
def bad_value() -> Any:
    return Unpicklable()


@asset(metadata={"artifactstore/serializer": "parquet"})
def mixed_rows() -> Any:
    import pandas

    return pandas.DataFrame({"value": [1, "two", {"three": 3}]})


@pytest.mark.parametrize(
    ("the_asset", "expected", "error"),
    [
        (bad_class, "unknown retention class 'keep-forever-please'", UnknownRetentionClassError),
        (bad_value, "cannot serialise a", InvalidInputError),
        (mixed_rows, "pyarrow cannot convert it (Arrow", InvalidInputError),
    ],
)
def test_bad_output_fails_the_step_and_records_nothing(
    the_asset: Any,
    expected: str,
    error: type[Exception],
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
) -> None:
    result = _run([the_asset], io_manager, instance, raise_on_error=False)
    assert not result.success
    text = _failure_text(result)
    assert expected in text and error.__name__ in text and issubclass(error, InvalidInputError)
    assert f"asset '{the_asset.key.to_user_string()}'" in text
    assert store.list_packages() == [] and store.events(since=len(RETENTION_CLASS_SEEDS)) == []
    assert result.get_asset_materialization_events() == []


def test_unreachable_store_fails_the_step_clearly(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    from artifactstore_core.testing.servers import free_port

    port = free_port()
    resource = ArtifactStoreResource(
        database_url=f"postgresql+psycopg://nobody@127.0.0.1:{port}/registry",
        storage_url=str(tmp_path / "blobs"),
    )
    result = _run([plain], ArtifactStoreIOManager(store=resource), instance, raise_on_error=False)
    text = _failure_text(result)
    assert BackendUnavailableError.__name__ in text and f"127.0.0.1:{port}" in text
    assert result.get_asset_materialization_events() == []


def test_missing_blob_names_asset_package_class_and_dates(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> None:
    assert _run([source], io_manager, instance).success
    package = store.describe("source")
    Path(store.blobs.uri(package.files[0].blob.blake3).removeprefix("file://")).unlink()
    result = _run([source, middle], io_manager, instance, selection=[middle], raise_on_error=False)
    text = _failure_text(result)
    assert "cannot load asset 'source'" in text and f"source@1 ({package.id})" in text
    assert "'raw-evidence'" in text and package.created_at.date().isoformat() in text
    assert "MissingBlobError" in text and "is missing from" in text
    assert store.list_packages(name_prefix="middle") == []
