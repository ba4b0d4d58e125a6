"""What the Dagster UI shows on a materialization: typed metadata values (issue #14 item 8)."""

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterAssetMetadataValue,
    DagsterInstance,
    TableMetadataValue,
    TableSchemaMetadataValue,
    TimestampMetadataValue,
    UrlMetadataValue,
    asset,
    materialize,
)

from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource, keys
from artifactstore_dagster.translator import readable_size
from tests.http import conftest as http
from tests.http.conftest import LiveServer, issue_token

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

gateway_store = http.gateway_store
sqlite_store = http.sqlite_store
sqlite_gateway = http.sqlite_gateway


@asset(metadata={"artifactstore/retention_class": "summary-evidence"})
def readings() -> dict[str, int]:
    return {"a": 1, "b": 2}


@asset
def frame(readings: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"sensor": list(readings), "value": list(readings.values())})


@asset
def bundle(frame: pd.DataFrame) -> Path:
    root = Path(tempfile.mkdtemp())
    (root / "parts").mkdir()
    (root / "summary.txt").write_text(f"{len(frame)} rows\n")
    (root / "parts" / "values.csv").write_text(frame.to_csv(index=False))
    return root


def _metadata(instance: DagsterInstance, key: AssetKey) -> dict[str, Any]:
    record = instance.get_latest_materialization_event(key)
    assert record is not None and record.asset_materialization is not None
    return dict(record.asset_materialization.metadata)


def test_materialization_metadata_is_typed_for_the_ui(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, instance: DagsterInstance
) -> None:
    assert materialize(
        [readings, frame, bundle],
        resources={"io_manager": io_manager},
        instance=instance,
        run_config=QUIET,
    ).success
    shown = {name: _metadata(instance, AssetKey(name)) for name in ("readings", "frame", "bundle")}

    # Expiry is a timestamp value (the UI renders it in the viewer's zone), not text.
    expires = shown["readings"][keys.EXPIRES_AT]
    package = store.describe("readings")
    assert isinstance(expires, TimestampMetadataValue)
    assert package.expires_at is not None
    assert expires.value == package.expires_at.timestamp()
    # The size stays an int (plotted) and is also shown readably.
    assert shown["readings"][keys.SIZE].value == package.size
    assert shown["readings"][keys.SIZE_READABLE].value == f"{package.size} B"

    # Upstream packages: name@version with the asset, and a link to that asset.
    upstream = shown["frame"][keys.UPSTREAM_PACKAGES]
    assert isinstance(upstream, TableMetadataValue)
    assert [dict(r.data) for r in upstream.records] == [
        {
            "input": "readings",
            "package": "readings@1",
            "asset": "readings",
            "partition": None,
            "package_id": str(package.id),
        }
    ]
    link = shown["frame"][keys.UPSTREAM_ASSET + "readings"]
    assert isinstance(link, DagsterAssetMetadataValue) and link.value == AssetKey("readings")

    # A DataFrame carries Dagster's own row count and column schema.
    assert shown["frame"]["dagster/row_count"].value == 2
    schema = shown["frame"]["dagster/column_schema"]
    assert isinstance(schema, TableSchemaMetadataValue)
    assert [(c.name, c.type) for c in schema.schema.columns] == [
        ("sensor", str(pd.Series(["a"]).dtype)),  # "object" before pandas 3, "str" since
        ("value", "int64"),
    ]

    # A directory package lists its files; a one-file package has no file table.
    files = shown["bundle"][keys.FILES]
    assert isinstance(files, TableMetadataValue)
    stored = store.describe("bundle")
    assert [dict(r.data) for r in files.records] == [
        {"path": e.path, "size": e.blob.size, "content_address": e.blob.content_address}
        for e in stored.files
    ]
    assert {r.data["path"] for r in files.records} == {"summary.txt", "parts/values.csv"}
    assert keys.FILES not in shown["readings"]
    assert keys.PACKAGE_URL not in shown["readings"]  # embedded: no server to link to


@asset(metadata={"artifactstore/retention_class": "permanent-record"})
def ledger() -> str:
    return "kept forever"


def test_a_package_that_never_expires_says_so(
    io_manager: ArtifactStoreIOManager, instance: DagsterInstance
) -> None:
    assert materialize(
        [ledger], resources={"io_manager": io_manager}, instance=instance, run_config=QUIET
    ).success
    assert _metadata(instance, AssetKey("ledger"))[keys.EXPIRES_AT].value == "never"


def test_sizes_read_as_people_read_them() -> None:
    assert readable_size(0) == "0 B"
    assert readable_size(1536) == "1.5 KiB"
    assert readable_size(1023) == "1023 B"
    assert readable_size(5 * 1024**3) == "5.0 GiB"
    assert readable_size(3 * 1024**5) == "3072.0 TiB"


@asset(key=["team", "numbers"])
def team_numbers() -> list[int]:
    return [1, 2, 3]


def test_remote_mode_links_the_package_on_the_server(
    sqlite_gateway: LiveServer, tmp_path: Path
) -> None:
    secret = issue_token(sqlite_gateway.store, "package:**:read,write", actor="pipeline")
    resource = ArtifactStoreResource(url=sqlite_gateway.url, token=secret)
    io_manager = ArtifactStoreIOManager(store=resource, scratch_dir=str(tmp_path / "scratch"))
    with DagsterInstance.ephemeral() as instance:
        assert materialize(
            [team_numbers], resources={"io_manager": io_manager}, instance=instance,
            run_config=QUIET,
        ).success  # fmt: skip
        url = _metadata(instance, AssetKey(["team", "numbers"]))[keys.PACKAGE_URL]
    assert isinstance(url, UrlMetadataValue)
    assert url.value == f"{sqlite_gateway.url}/v1/packages/team%2Fnumbers@1"
    with sqlite_gateway.client(secret) as client:
        response = client.get(url.value.removeprefix(sqlite_gateway.url))
    assert response.status_code == 200
    assert response.json()["id"] == str(sqlite_gateway.store.describe("team/numbers@1").id)
