"""What consumers (the Dagster layer) rely on: errors with attributes, and where bytes live."""

from __future__ import annotations

from pathlib import Path

import pytest

from artifactstore_core.config import Settings
from artifactstore_core.errors import (
    InvalidInputError,
    UnknownKindError,
    UnknownRetentionClassError,
)
from artifactstore_core.ingest import PutRequest
from artifactstore_core.store import ArtifactStore

pytestmark = pytest.mark.integration


def test_unknown_retention_class_names_itself_and_the_known_ones(store: ArtifactStore) -> None:
    with pytest.raises(UnknownRetentionClassError) as raised:
        store.put("x", {"f": b"1"}, retention_class="forever")
    assert isinstance(raised.value, InvalidInputError)
    assert raised.value.name == "forever"
    assert {"transient", "release-evidence"} <= set(raised.value.known)
    assert str(raised.value).startswith("unknown retention class 'forever'; known classes: ")
    package = store.put("x", {"f": b"1"})
    with pytest.raises(UnknownRetentionClassError) as changed:
        store.set_retention(package.reference, retention_class="nope", reason="test")
    assert changed.value.name == "nope"


def test_a_batch_names_the_request_and_keeps_the_error_attributes(store: ArtifactStore) -> None:
    requests = [
        PutRequest("batch/ok", {"f": b"1"}),
        PutRequest("batch/bad", {"f": b"2"}, retention_class="nope"),
    ]
    with pytest.raises(UnknownRetentionClassError) as raised:
        store.put_many(requests)
    assert str(raised.value).startswith("request 1 ('batch/bad'): unknown retention class 'nope'")
    assert raised.value.name == "nope" and "transient" in raised.value.known
    assert store.list_packages() == []


def test_unknown_kind_names_itself_and_the_builtin_ones(store: ArtifactStore) -> None:
    with pytest.raises(UnknownKindError) as raised:
        store.put("x", {"f": b"1"}, kind="spreadsheet")
    assert isinstance(raised.value, InvalidInputError)
    assert raised.value.kind == "spreadsheet"
    assert "report" in raised.value.known and list(raised.value.known) == sorted(raised.value.known)


def test_uri_of_names_the_blob_or_the_tier_a_package_is_read_from(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=database_url,
        storage_url=str(tmp_path / "hot"),
        tier_cold_url=str(tmp_path / "cold"),
    )
    with ArtifactStore.from_settings(settings) as store:
        one = store.put("one", {"f": b"single"})
        two = store.put("two", {"a": b"1", "b": b"2"})
        hot, cold = store.tiers["hot"], store.tiers["cold"]
        assert store.uri_of(one) == hot.uri(one.files[0].blob.blake3) == store.uri_of("one")
        assert store.uri_of(two) == hot.url
        assert store.uri_of(two, "b") == hot.uri(two.file("b").blob.blake3)
        store.move_tier(one.reference, "cold")
        assert store.uri_of("one") == cold.uri(one.files[0].blob.blake3)
        assert Path(store.uri_of("one").removeprefix("file://")).read_bytes() == b"single"
