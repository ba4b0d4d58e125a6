"""``ArtifactStore.export``'s byte path: large files copied inside the kernel and checked
before they appear; many files made durable together, before the rename that shows them.

The order tests trace the system calls of a real export in a child process (``strace``).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from artifactstore_core.errors import IntegrityError, MissingBlobError
from artifactstore_core.storage.filecopy import MIN_SIZE
from artifactstore_core.storage.sync import SYNCFS_MIN
from artifactstore_core.store import ArtifactStore
from tests.syscalls import Call, traced

pytestmark = pytest.mark.integration

_CHILD = """
import os, sys
from artifactstore_core.storage import sync
from artifactstore_core.store import ArtifactStore
url, blobs, reference, destination, mode = sys.argv[1:]
if mode == "fsync":  # as on a kernel without a syncfs that reports errors
    sync._syncfs = None
with ArtifactStore.open(url, blobs, migrate=False) as store:
    package = store.describe(reference)
    os.write(2, b"EXPORT\\n")
    store.export(package, destination, record=False)
    os.write(2, b"RETURNED\\n")
"""


def _registry(tmp_path: Path, files: dict[str, bytes]) -> tuple[str, str]:
    url, blobs = f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "blobs")
    with ArtifactStore.open(url, blobs) as store:
        store.put("io/pkg", files)
    return url, blobs


def _trace(tmp_path: Path, files: dict[str, bytes], destination: Path, mode: str) -> list[Call]:
    """The completed calls of the child's export, in order of completion."""
    url, blobs = _registry(tmp_path, files)
    calls = "openat,fsync,fdatasync,syncfs,rename,renameat,renameat2,write,copy_file_range"
    argv = [sys.executable, "-c", _CHILD, url, blobs, "io/pkg@1", str(destination), mode]
    return traced(argv, calls, tmp_path / "trace.txt")


def _synced(call: Call) -> str | None:
    """The path an fsync (or fdatasync) call synced."""
    synced = re.fullmatch(r"\d+<(.*)>", call.args)
    if call.name in ("fsync", "fdatasync") and call.result == 0 and synced:
        return synced[1]
    return None


def _staged_files(calls: list[Call]) -> dict[str, int]:
    """Each file created in a staging directory: its path, and the position of its last
    write or copy."""
    last: dict[str, int] = {}
    for position, call in enumerate(calls):
        if call.name in ("write", "copy_file_range") and call.result > 0:
            for path in re.findall(r"\d+<([^>]*)>", call.args):
                if "artifactstore-tmp-" in path and "/new/" in path:
                    last[path] = position
    return last


def _first_exposure(calls: list[Call], destination: Path) -> int:
    """The position of the first rename that shows staged bytes at the destination: the
    staged tree renamed to it, or a staged file moved into it."""
    for position, call in enumerate(calls):
        if not call.name.startswith("rename") or call.result != 0:
            continue
        source = re.findall(r'"([^"]+)"', call.args)[0]
        if source == "new" or "/new" in call.args.split(",")[0]:
            return position
    raise AssertionError(f"no rename into {destination}")


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("mode", ["syncfs", "fsync"])
def test_many_files_are_durable_before_the_destination_shows_them(
    tmp_path: Path, mode: str, existing: bool
) -> None:
    count = 3 * SYNCFS_MIN
    files = {f"d{i % 3}/f{i}.bin": os.urandom(100 + i) for i in range(count)}
    destination = tmp_path / "out" / "restore"
    if existing:
        destination.mkdir(parents=True)
        (destination / "mine.txt").write_bytes(b"the user's")
    calls = _trace(tmp_path, files, destination, mode)
    staged = _staged_files(calls)
    assert len(staged) == count
    rename = _first_exposure(calls, destination)
    synced = [(position, _synced(call)) for position, call in enumerate(calls)]
    whole = [p for p, call in enumerate(calls) if call.name == "syncfs" and call.result == 0]
    for path, written in staged.items():
        assert written < rename
        assert any(written < p < rename for p in whole) or any(
            written < p < rename and synced_path == path for p, synced_path in synced
        ), f"{path} was not made durable before the destination showed it"
    parent = destination if existing else destination.parent
    assert any(p > rename and path == str(parent) for p, path in synced)
    per_file = sum(1 for _, path in synced if path in staged)
    if mode == "syncfs":
        # The point of the batch: one syncfs, not one fsync per file and directory.
        assert per_file == 0 and len(whole) >= 1
    else:
        assert per_file == count and not whole
    found = {p.relative_to(destination).as_posix(): p.read_bytes()
             for p in destination.rglob("*") if p.is_file()}  # fmt: skip
    assert found == ({**files, "mine.txt": b"the user's"} if existing else files)


def test_a_large_file_is_copied_inside_the_kernel(tmp_path: Path) -> None:
    data = os.urandom(MIN_SIZE + 12345)
    destination = tmp_path / "restore"
    calls = _trace(tmp_path, {"big.bin": data, "small.txt": b"small"}, destination, "syncfs")
    copies = [c for c in calls if c.name == "copy_file_range" and c.result > 0]
    assert sum(c.result for c in copies) == len(data)
    big_writes = [c for c in calls if c.name == "write" and "big.bin" in c.args]
    assert big_writes == [], "the large file's bytes went through Python"
    assert (destination / "big.bin").read_bytes() == data


@pytest.mark.parametrize("size", [100, MIN_SIZE + 1])
@pytest.mark.parametrize("existing", [False, True])
def test_a_corrupt_blob_fails_the_export_and_nothing_appears(
    store: ArtifactStore, tmp_path: Path, size: int, existing: bool
) -> None:
    data = os.urandom(size)
    package = store.put("io/bad", {"ok.txt": b"fine", "sub/bad.bin": data})
    path = Path(str(store.blobs.local_path(package.file("sub/bad.bin").blob.blake3)))
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    destination = tmp_path / "restore"
    if existing:
        destination.mkdir()
        (destination / "ok.txt").write_bytes(b"old")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(IntegrityError, match=r"io/bad@1.*'sub/bad\.bin'") as caught:
        store.export("io/bad", destination, force=True)
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if existing:
        assert [p.name for p in destination.iterdir()] == ["ok.txt"]
        assert (destination / "ok.txt").read_bytes() == b"old"


def test_progress_counts_every_byte_of_both_paths(store: ArtifactStore, tmp_path: Path) -> None:
    files = {"big.bin": os.urandom(MIN_SIZE + 7), "small.bin": os.urandom(1000), "empty": b""}
    store.put("io/progress", files)
    counted: list[int] = []
    store.export("io/progress", tmp_path / "restore", progress=counted.append)
    assert sum(counted) == sum(len(data) for data in files.values())
    assert (tmp_path / "restore" / "big.bin").read_bytes() == files["big.bin"]


def test_a_missing_large_blob_is_named_with_its_package_and_file(
    store: ArtifactStore, tmp_path: Path
) -> None:
    package = store.put("io/gone", {"big.bin": os.urandom(MIN_SIZE + 1)})
    Path(str(store.blobs.local_path(package.file("big.bin").blob.blake3))).unlink()
    with pytest.raises(MissingBlobError, match=r"io/gone@1, file 'big\.bin': .* is missing"):
        store.export("io/gone", tmp_path / "out" / "restore")
    assert not (tmp_path / "out").exists()
