"""Pure domain rules: names, paths, references, manifests, canonical CBOR, the chain."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from artifactstore_core.domain.manifest import (
    FileEntry,
    Provenance,
    manifest_document,
    package_digest,
)
from artifactstore_core.domain.names import validate_file_path, validate_name
from artifactstore_core.domain.references import parse_reference
from artifactstore_core.errors import InvalidInputError
from artifactstore_core.eventlog import codec
from artifactstore_core.eventlog.chain import EventHeader, chain_digest
from artifactstore_core.hashing import hash_bytes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["reports/daily_summary", "a", "A.b-c/d_e/1"])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "/a", "a/", "a//b", "a/../b", "a b", "a:b", "a@b", "-a"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="package name"):
        validate_name(name)


@given(st.lists(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,8}", fullmatch=True), min_size=1))
def test_generated_paths_are_accepted(segments: list[str]) -> None:
    segments = [s for s in segments if s not in (".", "..")] or ["x"]
    path = "/".join(segments)
    assert validate_file_path(path) == path


def test_reference_forms() -> None:
    package_id = uuid.uuid4()
    assert parse_reference(str(package_id)).package_id == package_id
    assert parse_reference("a/b@3").version == 3
    assert parse_reference("a/b:production").tag == "production"
    bare = parse_reference("a/b")
    assert (bare.name, bare.tag) == ("a/b", "latest")
    digest = "blake3:" + "a" * 64
    assert str(parse_reference(digest).digest) == digest


def _entries(*contents: bytes) -> list[FileEntry]:
    return [FileEntry(f"f{i}", hash_bytes(c)) for i, c in enumerate(contents)]


def test_manifest_digest_is_order_independent_and_sensitive_to_content() -> None:
    provenance = Provenance(producer="p", inputs=("x",))
    files = _entries(b"a", b"b")
    one = package_digest(manifest_document("report", files, {"k": 1}, provenance))
    two = package_digest(manifest_document("report", files[::-1], {"k": 1}, provenance))
    assert one == two
    changed = package_digest(
        manifest_document("report", _entries(b"a", b"c"), {"k": 1}, provenance)
    )
    other_meta = package_digest(manifest_document("report", files, {"k": 2}, provenance))
    assert len({one, changed, other_meta}) == 3


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_cbor_is_canonical(payload: dict[str, object]) -> None:
    reordered = dict(reversed(list(payload.items())))
    assert codec.encode(payload) == codec.encode(reordered)
    assert codec.decode(codec.encode(payload)) == payload


def test_chain_digest_covers_every_header_field() -> None:
    header = EventHeader(
        sequence=7,
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        event_type="TagMoved",
        schema_version=1,
        subject_kind="package",
        subject_id="x",
        actor="alice",
        payload_digest="blake3:" + "0" * 64,
    )
    base = chain_digest(None, header)
    variants = [
        dataclasses.replace(header, sequence=8),
        dataclasses.replace(header, created_at=header.created_at + dt.timedelta(microseconds=1)),
        dataclasses.replace(header, event_type="HoldPlaced"),
        dataclasses.replace(header, schema_version=2),
        dataclasses.replace(header, subject_kind="blob"),
        dataclasses.replace(header, subject_id="y"),
        dataclasses.replace(header, actor="mallory"),
        dataclasses.replace(header, payload_digest="blake3:" + "1" * 64),
    ]
    digests = {chain_digest(None, v) for v in variants} | {chain_digest(base, header)}
    assert base not in digests and len(digests) == len(variants) + 1


def test_header_from_row_reads_the_chained_columns_only() -> None:
    header = EventHeader(
        sequence=3,
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        event_type="TagMoved",
        schema_version=1,
        subject_kind="package",
        subject_id="x",
        actor="alice",
        payload_digest="blake3:" + "2" * 64,
    )
    row = {**dataclasses.asdict(header), "payload": b"\xa0", "previous_digest": None}
    assert EventHeader.from_row(row) == header
