"""The Dagster integration's public API is exactly its ``__all__``: sorted, complete and
importable (the invariant only: the list grows with the integration)."""

from __future__ import annotations

import pytest

import artifactstore_dagster
from tests.unit.test_exported_members import assert_curated

pytestmark = [pytest.mark.dagster, pytest.mark.unit]


def test_the_dagster_api_is_curated() -> None:
    assert_curated(artifactstore_dagster)
