"""An in-memory registry (``sqlite://`` + ``memory://``), for users' own tests."""

from __future__ import annotations

import threading

import pytest

from artifactstore_core import ArtifactStore, PutRequest
from artifactstore_core.seed import RETENTION_CLASS_SEEDS

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_registry_works_end_to_end(url: str) -> None:
    with ArtifactStore.open(url, "memory://in-memory-test") as store:
        first = store.put("mem/a", {"f": b"one"}, kind="report")
        batch = store.put_many(
            [PutRequest("mem/a", {"f": b"two", "g": b"three"}), PutRequest("mem/b", {"f": b"4"})]
        )
        assert [p.reference for p in (first, *batch)] == ["mem/a@1", "mem/a@2", "mem/b@1"]
        done: list[bytes] = []
        reader = threading.Thread(target=lambda: done.append(store.read_bytes("mem/a", "g")))
        reader.start()
        reader.join()
        assert done == [b"three"]  # another thread sees the same database
        # class definitions, puts, blobs, the read
        assert store.verify_log().checked == len(RETENTION_CLASS_SEEDS) + 1 + 2 + 2 + 2 + 1
        assert store.rebuild_views() == store.verify_log().checked
        assert store.check_views() == []
        assert store.verify().ok
