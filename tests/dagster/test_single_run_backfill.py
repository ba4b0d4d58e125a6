"""Single-run backfills: one output covering a partition range, and fan-in concatenation."""

from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetRecordsFilter,
    BackfillPolicy,
    DagsterInstance,
    DailyPartitionsDefinition,
    asset,
    materialize,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from artifactstore_core.errors import InvalidInputError
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import ArtifactStoreIOManager
from artifactstore_dagster.keys import CONCAT_KEY, PACKAGE_ID, STORED

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

DAILY = DailyPartitionsDefinition(start_date="2024-05-01", end_date="2024-05-05")
DAYS = ["2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04"]
RANGE = {ASSET_PARTITION_RANGE_START_TAG: DAYS[0], ASSET_PARTITION_RANGE_END_TAG: DAYS[-1]}


def _frame(day: str) -> pd.DataFrame:
    return pd.DataFrame({"day": [day, day], "value": [1, 2]})


@asset(partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run())
def daily_rows(context: AssetExecutionContext) -> dict[str, pd.DataFrame]:
    """Dagster's convention for a single-run backfill: a dict keyed by partition key."""
    return {key: _frame(key) for key in context.partition_keys}


@asset(partitions_def=DAILY)
def daily_count(daily_rows: pd.DataFrame) -> int:
    return len(daily_rows)


@asset(ins={"daily_rows": AssetIn(metadata={CONCAT_KEY: True})})
def all_rows(daily_rows: pd.DataFrame) -> pd.DataFrame:
    return daily_rows


@asset(ins={"daily_rows": AssetIn()})
def rows_by_day(daily_rows: dict[str, pd.DataFrame]) -> list[str]:
    return sorted(daily_rows)


def _materializations(instance: DagsterInstance, key: str) -> dict[str, Any]:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(key)), 100)
    latest: dict[str, Any] = {}
    for record in records.records:  # newest first
        latest.setdefault(str(record.partition_key), record.asset_materialization)
    return latest


def _run(assets: list[Any], io: ArtifactStoreIOManager, instance: DagsterInstance, **kw: Any):
    return materialize(
        assets, resources={"io_manager": io}, instance=instance, run_config=QUIET, **kw
    )


def test_single_run_backfill_records_one_package_per_partition(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance, store: ArtifactStore
) -> None:
    result = _run([daily_rows], io_manager, instance, tags=RANGE)
    assert result.success

    materializations = _materializations(instance, "daily_rows")
    assert sorted(materializations) == DAYS
    ids = {day: materializations[day].metadata[PACKAGE_ID].value for day in DAYS}
    assert len(set(ids.values())) == len(DAYS)  # each partition points to its own package
    for day in DAYS:
        package = store.describe(ids[day])
        assert package.name == f"daily_rows/{day}"
        assert package.provenance.attributes["dagster"]["partition_key"] == day
        assert package.provenance.run_id == result.run_id

    # Per-partition downstream runs load exactly their partition's package.
    for day in DAYS[1:3]:
        assert _run([daily_rows, daily_count], io_manager, instance, partition_key=day,
                    selection=[daily_count]).success  # fmt: skip
        count = store.list_packages(name=f"daily_count/{day}")[0]
        assert count.provenance.attributes["dagster"]["inputs"][0]["package_id"] == ids[day]
        assert io_manager.load_input(_input_context(instance, "daily_count", day)) == 2


def test_downstream_in_the_same_single_run_loads_each_partition(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance, store: ArtifactStore
) -> None:
    @asset(partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run())
    def daily_total(
        context: AssetExecutionContext, daily_rows: dict[str, pd.DataFrame]
    ) -> dict[str, int]:
        return {day: int(frame["value"].sum()) for day, frame in daily_rows.items()}

    assert _run([daily_rows, daily_total], io_manager, instance, tags=RANGE).success
    # The step loaded every partition of the range (from this run's own packages), and
    # each package it stored records them all: which day fed which is not known here.
    rows = [str(store.list_packages(name=f"daily_rows/{day}")[0].id) for day in DAYS]
    for day in DAYS:
        [total] = store.list_packages(name=f"daily_total/{day}")
        assert [i["package_id"] for i in total.provenance.attributes["dagster"]["inputs"]] == rows
        assert io_manager.load_input(_input_context(instance, "daily_total", day)) == 3


def test_a_range_load_concatenates_frames_on_request(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance
) -> None:
    assert _run([daily_rows], io_manager, instance, tags=RANGE).success
    result = _run([daily_rows, all_rows, rows_by_day], io_manager, instance,
                  selection=[all_rows, rows_by_day])  # fmt: skip
    assert result.success
    frame = result.output_for_node("all_rows")
    expected = pd.concat([_frame(day) for day in DAYS], ignore_index=True)
    pd.testing.assert_frame_equal(frame, expected)
    # Without the flag, the input stays Dagster's dict of partition key to value.
    assert result.output_for_node("rows_by_day") == DAYS


def test_concat_set_on_the_upstream_asset_keeps_a_meaningful_index(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance
) -> None:
    @asset(partitions_def=DAILY, metadata={CONCAT_KEY: True})
    def indexed(context: AssetExecutionContext) -> pd.DataFrame:
        return _frame(context.partition_key).set_index("day")

    @asset
    def combined(indexed: pd.DataFrame) -> pd.DataFrame:
        return indexed

    for day in DAYS:
        assert _run([indexed], io_manager, instance, partition_key=day).success
    result = _run([indexed, combined], io_manager, instance, selection=[combined])
    expected = pd.concat([_frame(day).set_index("day") for day in DAYS])
    pd.testing.assert_frame_equal(result.output_for_node("combined"), expected)


def test_concat_refuses_values_that_are_not_frames(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance
) -> None:
    @asset(partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run())
    def daily_numbers(context: AssetExecutionContext) -> dict[str, int]:
        return dict.fromkeys(context.partition_keys, 1)

    @asset(ins={"daily_numbers": AssetIn(metadata={CONCAT_KEY: True})})
    def numbers(daily_numbers: Any) -> int:
        return 0

    assert _run([daily_numbers], io_manager, instance, tags=RANGE).success
    with pytest.raises(InvalidInputError, match=r"daily_numbers.*2024-05-01.*int"):
        _run([daily_numbers, numbers], io_manager, instance, selection=[numbers])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not a dict", r"covers 4 partitions.*dict keyed by partition key.*str"),
        ({"2024-05-01": 1}, r"missing 2024-05-02, 2024-05-03, 2024-05-04"),
        ({**dict.fromkeys(DAYS, 1), "2024-06-01": 1}, r"not in the range: 2024-06-01"),
    ],
)
def test_a_range_output_that_is_not_keyed_by_its_partitions_is_refused(
    io_manager: ArtifactStoreIOManager,
    instance: DagsterInstance,
    store: ArtifactStore,
    value: Any,
    message: str,
) -> None:
    @asset(partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run())
    def wrong() -> Any:
        return value

    with pytest.raises(InvalidInputError, match=rf"asset 'wrong'.*{message}"):
        _run([wrong], io_manager, instance, tags=RANGE)
    assert store.list_packages() == []


def test_none_for_one_partition_stores_nothing_for_it(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance, store: ArtifactStore
) -> None:
    @asset(partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run())
    def sparse(context: AssetExecutionContext) -> dict[str, Any]:
        return {key: (None if key == DAYS[1] else {"day": key}) for key in context.partition_keys}

    assert _run([sparse], io_manager, instance, tags=RANGE).success
    materializations = _materializations(instance, "sparse")
    assert materializations[DAYS[1]].metadata[STORED].value is False
    assert PACKAGE_ID not in materializations[DAYS[1]].metadata
    assert store.list_packages(name=f"sparse/{DAYS[1]}") == []
    assert len(store.list_packages(name=f"sparse/{DAYS[2]}")) == 1


def _input_context(instance: DagsterInstance, key: str, day: str) -> Any:
    from dagster import build_input_context

    return build_input_context(
        asset_key=AssetKey(key), partition_key=day, asset_partitions_def=DAILY, instance=instance
    )
