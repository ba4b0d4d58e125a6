"""The local store's kernel-copy fast path for large regular files, and its fallbacks."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactstore_core.errors import IntegrityError
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.sources import CountingReader
from artifactstore_core.storage.filecopy import MIN_SIZE, copy_and_hash
from artifactstore_core.storage.local import LocalBlobStore

pytestmark = pytest.mark.integration

SIZE = MIN_SIZE * 3 + 12_345  # several chunks and a short last one


@pytest.fixture(scope="module")
def data() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def big_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path


@pytest.fixture
def tmpfs_file(data: bytes) -> Iterator[Path]:
    """The same bytes on another file system (tmpfs), where the kernel copy is refused."""
    shm = Path("/dev/shm")
    assert shm.is_dir(), "these tests expect Linux's /dev/shm (tmpfs)"
    path = shm / f"artifactstore-test-{os.getpid()}.bin"
    path.write_bytes(data)
    yield path
    path.unlink()


def _target(tmp_path: Path, flags: int = os.O_RDWR) -> int:
    return os.open(tmp_path / "copy.bin", flags | os.O_CREAT | os.O_EXCL)


@pytest.mark.parametrize("write_back", [True, False])
def test_kernel_copy_hashes_and_stores_the_bytes(
    big_file: Path, tmp_path: Path, data: bytes, write_back: bool
) -> None:
    target = _target(tmp_path)
    with big_file.open("rb") as source:
        digest = copy_and_hash(source, target, write_back=write_back)
        assert source.tell() == SIZE  # the source is left at its end
    os.close(target)
    assert digest == hash_bytes(data)
    assert (tmp_path / "copy.bin").read_bytes() == data


def test_kernel_copy_starts_where_the_source_stands(
    big_file: Path, tmp_path: Path, data: bytes
) -> None:
    target = _target(tmp_path)
    with big_file.open("rb") as source:
        source.read(1000)  # buffered: the descriptor's offset is further on
        digest = copy_and_hash(source, target, write_back=True)
    os.close(target)
    assert digest == hash_bytes(data[1000:])
    assert (tmp_path / "copy.bin").read_bytes() == data[1000:]


def test_other_file_system_copies_nothing(tmpfs_file: Path, tmp_path: Path) -> None:
    target = _target(tmp_path)
    with tmpfs_file.open("rb") as source:
        assert copy_and_hash(source, target, write_back=True) is None
        assert source.tell() == 0
    os.close(target)
    assert (tmp_path / "copy.bin").stat().st_size == 0


def test_small_files_and_streams_take_the_streaming_path(tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * (MIN_SIZE - 1))
    target = _target(tmp_path)
    with small.open("rb") as source:
        assert copy_and_hash(source, target, write_back=True) is None
    assert copy_and_hash(io.BytesIO(b"y" * SIZE), target, write_back=True) is None
    os.close(target)


def test_a_failing_copy_raises_and_stops(big_file: Path, tmp_path: Path) -> None:
    target = _target(tmp_path, os.O_RDONLY)  # cannot be written to: EBADF
    with big_file.open("rb") as source, pytest.raises(OSError, match="Bad file descriptor"):
        copy_and_hash(source, target, write_back=True)
    os.close(target)


@pytest.mark.parametrize("where", ["same file system", "tmpfs"])
def test_local_store_writes_large_files_either_way(
    where: str, big_file: Path, tmpfs_file: Path, tmp_path: Path, data: bytes
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with (big_file if where == "same file system" else tmpfs_file).open("rb") as source:
        stored = store.write(source, hash_bytes(data).blake3)
    assert stored.created
    assert stored.hash == hash_bytes(data)
    assert store.path(stored.hash.blake3).read_bytes() == data
    assert not any((tmp_path / "blobs" / "staging").iterdir())


def test_local_store_refuses_a_large_file_with_other_bytes(big_file: Path, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with big_file.open("rb") as source, pytest.raises(IntegrityError, match="mismatch"):
        store.write(source, hash_bytes(b"other bytes").blake3)
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


def test_progress_is_reported_on_the_kernel_path(big_file: Path, tmp_path: Path) -> None:
    counts: list[int] = []
    copying: list[bool] = []

    def progress(count: int) -> None:
        counts.append(count)
        copying.append(any(t.name == "kernel-copy" for t in threading.enumerate()))

    store = LocalBlobStore(tmp_path / "blobs")
    with big_file.open("rb") as source:
        stored = store.write(CountingReader(source, progress))  # type: ignore[arg-type]
    assert sum(counts) == SIZE == stored.hash.size
    assert len(counts) > 1 and copying[0]  # reported while the copy thread ran
