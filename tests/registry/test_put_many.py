"""``put_many``: many packages in one call, all or none of them, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from artifactstore_core import (
    ArtifactStore,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PutRequest,
    SchemaViolationError,
)
from artifactstore_core.hashing import hash_bytes

from .conftest import blob_count, event_count

pytestmark = pytest.mark.integration


def test_registers_every_request_in_order(store: ArtifactStore, tmp_path: Path) -> None:
    store.put("batch/a", {"f": b"before"})
    big = tmp_path / "big.bin"
    big.write_bytes(b"z" * 3_000_000)
    head = store.verify_log().head_sequence
    packages = store.put_many(
        [
            PutRequest("batch/a", {"f": b"one", "g": b"shared"}, kind="report"),
            PutRequest("batch/b", big, metadata={"rows": 3}, retention_class="transient"),
            PutRequest("batch/a", {"f": b"two", "g": b"shared"}, inputs=["batch/a@1"]),
        ],
        actor="loader",
    )
    assert [(p.name, p.version) for p in packages] == [
        ("batch/a", 2),
        ("batch/b", 1),
        ("batch/a", 3),
    ]
    assert packages == [store.describe(p.id) for p in packages]  # `latest` on batch/a@3 only
    for package in packages:
        assert store.describe(package.id) == store.describe(package.reference)
        assert store.describe(package.id).content_address == package.content_address
    assert store.describe("batch/a").version == 3  # `latest` moved to the last one
    assert store.read_bytes("batch/a@2", "g", record=False) == b"shared"
    assert store.read_bytes("batch/b", "big.bin", record=False) == big.read_bytes()
    assert packages[2].provenance.inputs == (str(store.describe("batch/a@1").id),)
    assert packages[1].retention_class == "transient"
    batch = store.events(since=head)
    assert {e.actor for e in batch} == {"loader"}
    assert (
        sorted(e.event.event_type for e in batch) == ["BlobStored"] * 4 + ["PackageRegistered"] * 3
    )  # "shared" is stored once: one, two, shared, the big file
    assert store.check_views() == []
    assert store.verify().ok


def test_an_invalid_request_writes_nothing(store: ArtifactStore) -> None:
    store.register_schema("report", {"type": "object", "required": ["rows"]})
    store.put("batch/first", {"f": b"x"})
    events, blobs = event_count(store), blob_count(store)
    bad_batches: list[tuple[list[PutRequest], type[Exception], str]] = [
        (
            [PutRequest("batch/ok", {"f": b"1"}), PutRequest("batch/bad", {"../up": b"2"})],
            InvalidInputError,
            "request 1 ('batch/bad'): .*'../up'",
        ),
        (
            [
                PutRequest("batch/ok", {"f": b"1"}),
                PutRequest("batch/r", {"f": b"3"}, kind="report"),
            ],
            SchemaViolationError,
            "request 1 ('batch/r'): .*rows",
        ),
        (
            [PutRequest("batch/ok", {"f": b"1"}, retention_class="nope")],
            InvalidInputError,
            "unknown retention class 'nope'",
        ),
        (
            [
                PutRequest("batch/ok", {"f": b"1"}),
                PutRequest("batch/i", {"f": b"4"}, inputs=["batch/ok"]),
            ],
            NotFoundError,
            "batch/ok",
        ),
        (
            [
                PutRequest("batch/ok", {"f": b"1"}),
                PutRequest("batch/d", {"f": b"5"}, expected={"f": hash_bytes(b"6").blake3}),
            ],
            IntegrityError,
            "mismatch",
        ),
    ]
    for requests, error, message in bad_batches:
        with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
            store.put_many(requests)
        assert event_count(store) == events, message
        if error is not IntegrityError:  # validation comes before any byte is written
            assert blob_count(store) == blobs, message
    # Validation failures write no byte; a digest mismatch is found while writing, and
    # the other blobs of that batch stay unregistered (orphans the sweep collects).
    assert blob_count(store) <= blobs + 1
    assert [p.name for p in store.list_packages()] == ["batch/first"]


def test_empty_batch_does_nothing(store: ArtifactStore) -> None:
    events = event_count(store)
    assert store.put_many([]) == []
    assert event_count(store) == events
