"""A fresh ``ArtifactStore`` on each database backend, with blobs in a temp directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from artifactstore_core.schema import events
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.store import ArtifactStore


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[ArtifactStore]:
    opened = ArtifactStore.open(database_url, str(tmp_path / "blobs"))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def blobs(store: ArtifactStore) -> LocalBlobStore:
    assert isinstance(store.blobs, LocalBlobStore)
    return store.blobs


def event_count(store: ArtifactStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0)


def blob_count(store: ArtifactStore) -> int:
    return sum(1 for _ in store.blobs.iter_addresses())
