"""The public extension points of the thin Dagster layer: translator, errors, tracking."""

from __future__ import annotations

import doctest
import tempfile
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    OutputContext,
    asset,
    build_input_context,
    build_output_context,
    materialize,
)

import artifactstore_dagster
from artifactstore_core.errors import InvalidInputError, UnknownRetentionClassError
from artifactstore_core.seed import RETENTION_CLASS_SEEDS
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import (
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    OutputKey,
    PackageTranslator,
    resources,
)
from artifactstore_dagster.keys import PACKAGE_ID, STORAGE_URI

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


class TeamTranslator(PackageTranslator):
    def get_package_name(self, output: OutputKey) -> str:
        return "team-a/" + super().get_package_name(output)

    def get_retention_class(self, context: OutputContext) -> str | None:
        return super().get_retention_class(context) or "summary-evidence"


class TeamIOManager(ArtifactStoreIOManager):
    def get_translator(self) -> PackageTranslator:
        return TeamTranslator(package_prefix=self.package_prefix, default_kind=self.default_kind)


class ForeverTranslator(PackageTranslator):
    def get_retention_class(self, context: OutputContext) -> str | None:
        return "forever"


class ForeverIOManager(ArtifactStoreIOManager):
    def get_translator(self) -> PackageTranslator:
        return ForeverTranslator()


@asset
def readings() -> dict[str, int]:
    return {"a": 1}


@asset(metadata={"artifactstore/retention_class": "release-evidence"})
def digest(readings: dict[str, int]) -> int:
    return sum(readings.values())


def test_a_translator_subclass_changes_what_is_registered(
    resource: ArtifactStoreResource, store: ArtifactStore, instance: DagsterInstance
) -> None:
    io_manager = TeamIOManager(store=resource)
    result = materialize(
        [readings, digest],
        resources={"io_manager": io_manager},
        instance=instance,
        run_config=QUIET,
    )
    assert result.success
    assert [p.reference for p in store.list_packages()] == ["team-a/digest@1", "team-a/readings@1"]
    assert store.describe("team-a/readings").retention_class == "summary-evidence"
    # Asset metadata still wins where the subclass defers to the default.
    assert store.describe("team-a/digest").retention_class == "release-evidence"
    assert store.describe("team-a/digest").provenance.inputs == (
        str(store.describe("team-a/readings").id),
    )
    # Without a Dagster instance, loading looks the package up by the translated name too.
    loaded = io_manager.load_input(build_input_context(asset_key=AssetKey("readings")))
    assert loaded == {"a": 1}


def test_a_refused_class_keeps_its_type_and_attributes_and_names_its_origin(
    resource: ArtifactStoreResource, store: ArtifactStore
) -> None:
    with pytest.raises(UnknownRetentionClassError) as raised:
        ForeverIOManager(store=resource).handle_output(
            build_output_context(asset_key="bad"), {"a": 1}
        )
    error = raised.value
    assert (error.name, "release-evidence" in error.known) == ("forever", True)
    assert str(error).startswith("cannot store asset 'bad' as package 'bad': unknown retention")
    assert str(error).endswith("(from ForeverTranslator.get_retention_class)")
    assert store.list_packages() == [] and store.events(since=len(RETENTION_CLASS_SEEDS)) == []


def test_a_kind_refused_by_its_syntax_names_the_metadata_key(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore
) -> None:
    out = build_output_context(asset_key="k", definition_metadata={"artifactstore/kind": "Report"})
    with pytest.raises(InvalidInputError) as raised:
        io_manager.handle_output(out, {"a": 1})
    message = str(raised.value)
    assert "cannot store asset 'k' as package 'k': invalid kind 'Report'" in message
    assert message.endswith("(from the 'artifactstore/kind' metadata of the asset or output)")
    assert store.list_packages() == []


@asset
def folder() -> Path:
    return Path(__file__).parent / "mp_pipeline.py"


def test_tracking_lives_as_long_as_the_run(
    resource: ArtifactStoreResource, store: ArtifactStore, instance: DagsterInstance
) -> None:
    seen: list[Path] = []

    @asset
    def sized(folder: Path) -> int:
        seen.append(folder)
        assert folder.is_file()
        return folder.stat().st_size

    io_manager = ArtifactStoreIOManager(store=resource)
    for _ in range(2):
        result = materialize(
            [folder, sized],
            resources={"io_manager": io_manager},
            instance=instance,
            run_config=QUIET,
        )
        assert result.success
    # The loaded file was exported to scratch space that the run's teardown removed.
    assert len(seen) == 2 and not any(p.exists() or p.parent.parent.exists() for p in seen)
    assert seen[0].parent.parent != seen[1].parent.parent  # each run had its own
    # Each run's step recorded exactly its own input, the version that run wrote.
    assert [store.describe(f"sized@{v}").provenance.inputs for v in (1, 2)] == [
        (str(store.describe(f"folder@{v}").id),) for v in (1, 2)
    ]


def test_storage_uri_is_where_the_registry_reads_the_bytes(
    io_manager: ArtifactStoreIOManager, store: ArtifactStore
) -> None:
    out = build_output_context(asset_key="one")
    io_manager.handle_output(out, b"bytes")
    metadata = {k: v.value for k, v in out.get_logged_metadata().items()}
    package = store.describe(metadata[PACKAGE_ID])
    assert metadata[STORAGE_URI] == store.uri_of(package)
    assert Path(metadata[STORAGE_URI].removeprefix("file://")).read_bytes() == b"bytes"


def test_the_resource_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    results = doctest.testmod(resources, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 5 and results.failed == 0


def test_the_translator_is_public() -> None:
    assert {"PackageTranslator", "OutputKey"} <= set(artifactstore_dagster.__all__)
    assert artifactstore_dagster.PackageTranslator is PackageTranslator


def test_the_package_prefix_applies_under_a_custom_translator(
    resource: ArtifactStoreResource, store: ArtifactStore
) -> None:
    io_manager = TeamIOManager(store=resource, package_prefix="p")
    io_manager.handle_output(build_output_context(asset_key=["x", "y"]), [1, 2])
    assert store.describe("team-a/p/x/y").retention_class == "summary-evidence"
    assert io_manager.load_input(build_input_context(asset_key=AssetKey(["x", "y"]))) == [1, 2]
