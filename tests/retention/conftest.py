"""A registry with hot, cold and archive tiers and a frozen clock, on each database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactstore_core import ArtifactStore, Settings
from artifactstore_core.testing.clock import FrozenClock

DAY = dt.timedelta(days=1)
GRACE = dt.timedelta(hours=1)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def tiered(database_url: str, tmp_path: Path, clock: FrozenClock) -> Iterator[ArtifactStore]:
    settings = Settings(
        database_url=database_url,
        storage_url=str(tmp_path / "hot"),
        tier_cold_url=str(tmp_path / "cold"),
        tier_archive_url=str(tmp_path / "archive"),
        gc_grace_seconds=int(GRACE.total_seconds()),
    )
    store = ArtifactStore.from_settings(settings, clock=clock)
    try:
        yield store
    finally:
        store.close()
