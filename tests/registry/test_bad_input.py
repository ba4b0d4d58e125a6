"""Bad input gets a clear, typed error and writes nothing (events and blobs counted)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.errors import (
    AmbiguousReferenceError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    SchemaViolationError,
)
from artifactstore_core.hashing import hash_bytes

from .conftest import blob_count, event_count

pytestmark = pytest.mark.integration


@pytest.fixture
def unchanged(store: ArtifactStore) -> Iterator[None]:
    """Asserts that the test wrote no event and no blob."""
    store.put("existing/pkg", {"f": b"already here"})
    events, blobs = event_count(store), blob_count(store)
    yield
    assert (event_count(store), blob_count(store)) == (events, blobs)


BAD_PATHS = [
    ("/etc/passwd", "absolute"),
    ("a/../b", "'..'"),
    ("../b", "'..'"),
    ("a//b", "empty segment"),
    ("a/", "empty segment"),
    ("a\\b", "backslash"),
    ("a\x00b", "NUL"),
    ("./a", "'.'"),
]


@pytest.mark.parametrize(("path", "message"), BAD_PATHS)
def test_bad_file_paths(store: ArtifactStore, unchanged: None, path: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.put("bad/paths", {"ok.txt": b"fine", path: b"x"})


def test_repeated_path_in_one_package(
    store: ArtifactStore, unchanged: None, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "same.txt").write_text("1")
    (tmp_path / "b" / "same.txt").write_text("2")
    with pytest.raises(InvalidInputError, match=r"'same.txt' appears more than once"):
        store.put("dup", [tmp_path / "a" / "same.txt", tmp_path / "b" / "same.txt"])


def test_package_with_no_files(store: ArtifactStore, unchanged: None, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="at least one file"):
        store.put("empty", {})
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(InvalidInputError, match="contains no files"):
        store.put("empty", tmp_path / "empty-dir")


def test_unknown_retention_class(store: ArtifactStore, unchanged: None) -> None:
    with pytest.raises(InvalidInputError, match=r"unknown retention class 'forever'.*transient"):
        store.put("x", {"f": b"1"}, retention_class="forever")


def test_unknown_kind(store: ArtifactStore, unchanged: None) -> None:
    with pytest.raises(InvalidInputError, match=r"unknown kind 'spreadsheet'"):
        store.put("x", {"f": b"1"}, kind="spreadsheet")


def test_metadata_violating_schema_names_the_field(store: ArtifactStore) -> None:
    store.register_schema(
        "report",
        {
            "type": "object",
            "properties": {
                "period": {"type": "object", "properties": {"days": {"type": "integer"}}}
            },
        },
    )
    events, blobs = event_count(store), blob_count(store)
    with pytest.raises(SchemaViolationError, match=r"field 'period.days'.*not of type 'integer'"):
        store.put("x", {"f": b"1"}, kind="report", metadata={"period": {"days": "seven"}})
    assert (event_count(store), blob_count(store)) == (events, blobs)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"when": dt.datetime(2026, 1, 1)}, r"metadata\.when is a datetime"),
        ({"nested": {"x": {1, 2}}}, r"metadata\.nested\.x is a set"),
        ({"ratio": float("nan")}, r"metadata\.ratio is nan"),
        ({1: "int key"}, "non-text key 1"),
        (["not", "an", "object"], "must be a JSON object"),
    ],
)
def test_metadata_not_json(
    store: ArtifactStore, unchanged: None, metadata: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.put("x", {"f": b"1"}, metadata=metadata)


@pytest.mark.parametrize(
    ("reference", "error", "message"),
    [
        ("nothing/here", NotFoundError, "no package matches reference 'nothing/here'"),
        ("existing/pkg@7", NotFoundError, "existing/pkg@7"),
        ("existing/pkg:prod", NotFoundError, "existing/pkg:prod"),
        ("existing/pkg@zero", InvalidInputError, "invalid version"),
        ("blake3:1234", InvalidInputError, "invalid digest reference"),
        ("bad name!", InvalidInputError, "invalid package name"),
    ],
)
def test_references_that_match_nothing(
    store: ArtifactStore,
    unchanged: None,
    reference: str,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        store.describe(reference)
    with pytest.raises(error, match=message):
        store.put("uses/input", {"f": b"1"}, inputs=[reference])


def test_ambiguous_reference(store: ArtifactStore) -> None:
    a = store.put("twin/a", {"f": b"same"})
    store.put("twin/b", {"f": b"same"})
    events = event_count(store)
    with pytest.raises(AmbiguousReferenceError, match=r"matches 2 packages \(twin/a@1, twin/b@1\)"):
        store.get(a.content_address)
    assert event_count(store) == events


def test_directory_where_a_file_is_expected(
    store: ArtifactStore, unchanged: None, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="is a directory, expected a file"):
        store.put("x", {"report.csv": tmp_path})


def test_missing_file(store: ArtifactStore, unchanged: None, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        store.put("x", {"report.csv": tmp_path / "nope.csv"})


def test_bytes_not_matching_expected_digest(store: ArtifactStore, unchanged: None) -> None:
    promised = hash_bytes(b"promised")
    with pytest.raises(IntegrityError, match=promised.content_address):
        store.put("x", {"f": io.BytesIO(b"delivered")}, expected={"f": promised.content_address})
    with pytest.raises(IntegrityError, match=str(promised.sha256)):
        store.put("x", {"f": b"delivered"}, expected={"f": str(promised.sha256)})


def test_expected_digest_that_matches_is_accepted(store: ArtifactStore) -> None:
    data = b"exact"
    package = store.put("x", {"f": data}, expected={"f": hash_bytes(data).content_address})
    assert package.files[0].blob == hash_bytes(data)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.put("", {"f": b"1"}),
        lambda s: s.put("a/../b", {"f": b"1"}),
        lambda s: s.put("x", {"f": b"1"}, expected={"g": "blake3:" + "0" * 64}),
        lambda s: s.put("x", {"f": b"1"}, expected={"f": "md5:abc"}),
        lambda s: s.put("x", "a string is ambiguous"),
        lambda s: s.put("x", {"f": 12}),
        lambda s: s.tag("existing/pkg", "latest"),
        lambda s: s.tag("existing/pkg", "bad tag"),
        lambda s: s.register_schema("report", {"type": "no-such-type"}),
        lambda s: s.register_schema("Bad Kind", {"type": "object"}),
        lambda s: s.lineage("existing/pkg", depth=0),
    ],
)
def test_other_invalid_calls(
    store: ArtifactStore, unchanged: None, call: Callable[[ArtifactStore], object]
) -> None:
    with pytest.raises(InvalidInputError):
        call(store)
