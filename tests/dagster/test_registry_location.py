"""Relative registry paths: every Dagster process opens one registry (issue #14 item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, asset, materialize

from artifactstore_core.config import DEFAULT_DATABASE_URL, DEFAULT_STORAGE_URL, load_settings
from artifactstore_core.errors import ConfigurationError
from artifactstore_dagster import (
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    close_cached_stores,
)

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


@asset
def numbers() -> list[int]:
    return [1, 2, 3]


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The built-in relative defaults (no ARTIFACTSTORE_* variable, no .env); DAGSTER_HOME
    is ``tmp_path/home``; returns ``tmp_path``."""
    for name in ("ARTIFACTSTORE_DATABASE_URL", "ARTIFACTSTORE_STORAGE_URL", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name in ("home", "dev", "cli"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    return tmp_path


def test_processes_in_different_directories_share_the_registry_under_dagster_home(
    defaults: Path, monkeypatch: pytest.MonkeyPatch, instance: DagsterInstance
) -> None:
    monkeypatch.chdir(defaults / "dev")  # e.g. where `dagster dev` started
    resource = ArtifactStoreResource()
    assert materialize(
        [numbers],
        resources={"io_manager": ArtifactStoreIOManager(store=resource)},
        instance=instance,
        run_config=QUIET,
    ).success
    close_cached_stores()

    monkeypatch.chdir(defaults / "cli")  # e.g. a run worker or a sensor elsewhere
    settings = ArtifactStoreResource().settings()
    assert settings.database_url == f"sqlite:///{defaults}/home/var/artifactstore.db"
    assert settings.storage_url == str(defaults / "home" / "var" / "blobs")
    assert ArtifactStoreResource().get_store().describe("numbers").reference == "numbers@1"
    assert not (defaults / "dev" / "var").exists() and not (defaults / "cli" / "var").exists()


def test_a_registry_left_in_the_working_directory_is_an_ambiguity_named(
    defaults: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(defaults / "cli")
    monkeypatch.delenv("DAGSTER_HOME")
    # Without DAGSTER_HOME: the working directory, as the CLI.
    ArtifactStoreResource().get_store().put("made-here", {"a.txt": b"a"})
    close_cached_stores()
    assert (defaults / "cli" / "var" / "artifactstore.db").exists()
    assert (defaults / "cli" / "var" / "blobs").is_dir()

    monkeypatch.setenv("DAGSTER_HOME", str(defaults / "home"))
    with pytest.raises(ConfigurationError) as raised:
        ArtifactStoreResource().get_store()
    assert str(raised.value) == (
        "relative registry path 'var/artifactstore.db' is ambiguous: it exists at "
        f"'{defaults}/cli/var/artifactstore.db' (the working directory) but not at "
        f"'{defaults}/home/var/artifactstore.db' (DAGSTER_HOME, where Dagster resolves "
        "relative paths); set ARTIFACTSTORE_DATABASE_URL and ARTIFACTSTORE_STORAGE_URL to "
        "absolute paths"
    )
    assert not (defaults / "home" / "var").exists()  # nothing created on refusal

    # An absolute database (shared PostgreSQL, say) does not hide relative blobs.
    absolute_db = ArtifactStoreResource(database_url=f"sqlite:///{defaults / 'shared.db'}")
    with pytest.raises(ConfigurationError, match="relative registry path 'var/blobs' is"):
        absolute_db.settings()


def test_absolute_remote_and_memory_locations_are_left_alone(
    defaults: Path, tmp_path: Path
) -> None:
    configured = ArtifactStoreResource(
        database_url=f"sqlite:///{tmp_path / 'abs.db'}",
        storage_url="s3://bucket/prefix",
        tier_cold_url=str(tmp_path / "cold"),
        tier_archive_url="archive",
    ).settings()
    assert configured.database_url == f"sqlite:///{tmp_path / 'abs.db'}"
    assert configured.storage_url == "s3://bucket/prefix"
    assert configured.tier_cold_url == str(tmp_path / "cold")
    assert configured.tier_archive_url == str(defaults / "home" / "archive")
    memory = ArtifactStoreResource(database_url="sqlite://", storage_url="memory://x")
    assert memory.settings().database_url == "sqlite://"


def test_a_relative_dagster_home_is_refused(
    defaults: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "dagster_home")
    with pytest.raises(ConfigurationError, match="DAGSTER_HOME 'dagster_home' is not an absolute"):
        ArtifactStoreResource().settings()


def test_the_core_settings_and_cli_keep_their_relative_defaults(defaults: Path) -> None:
    settings = load_settings()  # what the CLI reads: relative to its working directory
    assert (settings.database_url, settings.storage_url) == (
        DEFAULT_DATABASE_URL,
        DEFAULT_STORAGE_URL,
    )
