"""The IO manager with build_output_context / build_input_context: no step, no instance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DailyPartitionsDefinition,
    build_input_context,
    build_output_context,
)

from artifactstore_core.errors import (
    BackendUnavailableError,
    InvalidInputError,
    NotFoundError,
)
from artifactstore_core.seed import RETENTION_CLASS_SEEDS
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import (
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    files_digest,
    set_data_version_from_io_manager,
)
from artifactstore_dagster.keys import (
    CONTENT_DIGEST,
    PACKAGE_ID,
    REFERENCE,
    SIZE,
    STORED,
)

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


def test_asset_output_is_stored_and_loaded_without_step_context(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore
) -> None:
    out = build_output_context(
        asset_key=AssetKey(["reports", "daily"]),
        definition_metadata={
            "artifactstore/kind": "report",
            "artifactstore/retention_class": "summary-evidence",
            "artifactstore/metadata": {"team": "data"},
        },
    )
    io_manager.handle_output(out, {"rows": 3})
    metadata: dict[str, Any] = {k: v.value for k, v in out.get_logged_metadata().items()}
    package = store.describe(metadata[PACKAGE_ID])
    assert package.reference == "reports/daily@1" == metadata[REFERENCE]
    assert (package.kind, package.retention_class) == ("report", "summary-evidence")
    assert package.metadata == {"team": "data"}
    assert metadata[SIZE] == package.size and isinstance(metadata[SIZE], int)
    assert len(metadata[CONTENT_DIGEST]) == 64
    dagster = package.provenance.attributes["dagster"]
    assert dagster["asset_key"] == ["reports", "daily"]
    assert dagster["run_id"] is None and dagster["inputs"] == []

    value = io_manager.load_input(build_input_context(asset_key=AssetKey(["reports", "daily"])))
    assert value == {"rows": 3}
    events = store.events(subject_id=str(package.id))
    assert type(events[-1].event).__name__ == "PackageRetrieved"


def test_partitioned_output_gets_one_package_per_partition(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore
) -> None:
    daily = DailyPartitionsDefinition(start_date="2024-05-01")
    for day in ("2024-05-01", "2024-05-02"):
        out = build_output_context(
            asset_key="raw_logs", partition_key=day, asset_partitions_def=daily
        )
        io_manager.handle_output(out, f"log of {day}")
    assert [p.reference for p in store.list_packages()] == [
        "raw_logs/2024-05-01@1",
        "raw_logs/2024-05-02@1",
    ]
    loaded = io_manager.load_input(
        build_input_context(
            asset_key="raw_logs", partition_key="2024-05-02", asset_partitions_def=daily
        )
    )
    assert loaded == "log of 2024-05-02"


def test_op_output_named_by_job_step_and_output(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore
) -> None:
    out = build_output_context(step_key="emit", name="result", run_id="run-1")
    with pytest.raises(InvalidInputError, match="neither an asset key nor a job name"):
        io_manager.handle_output(out, b"x")
    assert store.list_packages() == []


def test_none_is_not_stored(io_manager: ArtifactStoreIOManager, store: ArtifactStore) -> None:
    out = build_output_context(asset_key="nothing_here")
    io_manager.handle_output(out, None)
    assert store.list_packages() == []
    assert out.get_logged_metadata()[STORED].value is False


def test_unknown_retention_class_fails_clearly_and_records_nothing(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, tmp_path: Path
) -> None:
    out = build_output_context(
        asset_key="bad", definition_metadata={"artifactstore/retention_class": "forever-ish"}
    )
    with pytest.raises(InvalidInputError) as raised:
        io_manager.handle_output(out, {"a": 1})
    message = str(raised.value)
    assert "asset 'bad'" in message
    assert "unknown retention class 'forever-ish'" in message
    assert "release-evidence" in message  # the known classes are listed
    assert "artifactstore/retention_class" in message
    assert store.list_packages() == [] and store.events(since=len(RETENTION_CLASS_SEEDS)) == []
    blobs = tmp_path / "blobs"
    assert not any(p.is_file() for p in blobs.rglob("*")) if blobs.exists() else True


def test_unserialisable_value_fails_clearly_and_records_nothing(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore
) -> None:
    out = build_output_context(asset_key="gen")
    with pytest.raises(InvalidInputError, match=r"asset 'gen'.*cannot serialise a .*generator"):
        io_manager.handle_output(out, (i for i in range(3)))
    assert store.list_packages() == [] and store.events(since=len(RETENTION_CLASS_SEEDS)) == []


def test_unreachable_store_names_the_server(tmp_path: Path) -> None:
    from artifactstore_core.testing.servers import free_port

    port = free_port()
    resource = ArtifactStoreResource(
        database_url=f"postgresql+psycopg://nobody@127.0.0.1:{port}/registry",
        storage_url=str(tmp_path / "blobs"),
    )
    manager = ArtifactStoreIOManager(store=resource)
    with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{port}"):
        manager.handle_output(build_output_context(asset_key="a"), {"a": 1})
    assert not (tmp_path / "blobs").exists() or not any((tmp_path / "blobs").rglob("*"))
    assert not resource.is_store_open()


def test_loading_something_never_stored_names_the_package(
    io_manager: ArtifactStoreIOManager,
) -> None:
    with pytest.raises(NotFoundError, match=r"cannot load asset 'missing'.*package missing"):
        io_manager.load_input(build_input_context(asset_key="missing"))


def test_the_store_is_opened_once_per_process_and_shared(
    resource: ArtifactStoreResource,
) -> None:
    import threading

    seen: list[int] = []

    def open_it() -> None:
        seen.append(id(resource.get_store()))

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    copy = ArtifactStoreResource(**resource.model_dump())
    assert len(set(seen)) == 1
    assert id(copy.get_store()) == seen[0]


def test_settings_from_the_environment_are_part_of_the_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource = ArtifactStoreResource()
    monkeypatch.setenv("ARTIFACTSTORE_DATABASE_URL", f"sqlite:///{tmp_path / 'one.db'}")
    monkeypatch.setenv("ARTIFACTSTORE_STORAGE_URL", str(tmp_path / "one"))
    first = resource.get_store()
    monkeypatch.setenv("ARTIFACTSTORE_DATABASE_URL", f"sqlite:///{tmp_path / 'two.db'}")
    second = resource.get_store()
    assert first is not second
    assert str(second.engine.url).endswith("two.db")


def test_content_digest_is_known_before_storing_and_matches_after(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "logs").mkdir(parents=True)
    (bundle / "report.md").write_text("ok")
    (bundle / "logs" / "a.log").write_bytes(b"\x00\x01")
    expected = files_digest(bundle)
    out = build_output_context(asset_key="bundle")
    io_manager.handle_output(out, bundle)
    assert out.get_logged_metadata()[CONTENT_DIGEST].value == expected
    assert files_digest({"same": 1}) == files_digest({"same": 1}) != files_digest({"same": 2})
    # Without a step context the IO manager cannot set a data version: it says so.
    assert set_data_version_from_io_manager(build_output_context(asset_key="x"), expected) is False
