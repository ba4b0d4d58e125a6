"""Fixtures for the Dagster integration tests: a registry on SQLite and a Dagster instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import (
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    close_cached_stores,
)

#: Run config that keeps Dagster's console logger quiet in tests and benchmarks.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    close_cached_stores()


@pytest.fixture
def resource(tmp_path: Path) -> ArtifactStoreResource:
    """The resource on a fresh SQLite registry with blobs under ``tmp_path``."""
    return ArtifactStoreResource(
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        storage_url=str(tmp_path / "blobs"),
        tier_cold_url=str(tmp_path / "cold"),
        actor="tests",
    )


@pytest.fixture
def io_manager(resource: ArtifactStoreResource, tmp_path: Path) -> ArtifactStoreIOManager:
    return ArtifactStoreIOManager(store=resource, scratch_dir=str(tmp_path / "scratch"))


@pytest.fixture
def store(resource: ArtifactStoreResource) -> ArtifactStore:
    return resource.get_store()


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance
