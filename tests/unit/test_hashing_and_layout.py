"""Digests, one-pass hashing and the blob layout (property-based)."""

from __future__ import annotations

import hashlib
import io

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from artifactstore_core.hashing import (
    BlobHash,
    Digest,
    DigestError,
    DigestMismatchError,
    VerifyingReader,
    hash_bytes,
    hash_copy,
)
from artifactstore_core.storage.layout import address_from_key, key_for

pytestmark = pytest.mark.unit
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)


@given(st.sampled_from(["blake3", "sha256"]), hex64)
def test_digest_text_round_trip(algorithm: str, hexpart: str) -> None:
    digest = Digest.parse(f"{algorithm}:{hexpart}")
    assert str(digest) == f"{algorithm}:{hexpart}"
    assert Digest.parse(str(digest)) == digest
    assert Digest.looks_like(str(digest))


@pytest.mark.parametrize(
    "text",
    ["", "blake3:", "blake3:abc", "md5:" + "0" * 64, "blake3:" + "A" * 64, "0" * 64,
     "blake3:" + "g" * 64, "blake3:" + "0" * 65],
)  # fmt: skip
def test_invalid_digests_are_refused(text: str) -> None:
    with pytest.raises(DigestError):
        Digest.parse(text)


def test_bare_hex_needs_an_algorithm() -> None:
    assert Digest.parse("0" * 64, algorithm="sha256") == Digest("sha256", "0" * 64)
    with pytest.raises(DigestError, match="expected a blake3 digest"):
        Digest.parse("sha256:" + "0" * 64, algorithm="blake3")


@given(hex64)
def test_layout_round_trip(hexpart: str) -> None:
    digest = Digest("blake3", hexpart)
    key = key_for(digest)
    assert key == f"blake3/{hexpart[:2]}/{hexpart[2:4]}/{hexpart}"
    assert address_from_key(key) == digest


@pytest.mark.parametrize("key", ["blake3/aa/bb", "blake3/00/00/" + "1" * 64, "x/y/z/w"])
def test_layout_refuses_foreign_keys(key: str) -> None:
    with pytest.raises(DigestError):
        address_from_key(key)


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=4096))
def test_hash_copy_equals_the_reference_hashes(data: bytes, chunk: int) -> None:
    out = io.BytesIO()
    result = hash_copy(io.BytesIO(data), out.write, chunk_size=max(chunk, 1))
    assert out.getvalue() == data
    assert result.blake3.hex == blake3.blake3(data).hexdigest()
    assert result.sha256.hex == hashlib.sha256(data).hexdigest()
    assert result.size == len(data) == hash_bytes(data).size


def test_hash_copy_large_stream_uses_the_threaded_path() -> None:
    data = bytes(range(256)) * 40_000  # 10 MB: several chunks
    out = io.BytesIO()
    assert hash_copy(io.BytesIO(data), out.write, chunk_size=1 << 20) == hash_bytes(data)
    assert out.getvalue() == data


def test_verifying_reader_detects_extra_bytes() -> None:
    expected = hash_bytes(b"short")
    with pytest.raises(DigestMismatchError):
        VerifyingReader(io.BytesIO(b"short and more"), expected).read()


def test_blob_hash_rejects_swapped_algorithms() -> None:
    with pytest.raises(DigestError):
        BlobHash(Digest("sha256", "0" * 64), Digest("blake3", "0" * 64), 1)
