"""The local store's batched writes: durability order, reuse, staging files.

The order test traces the system calls of a real ``write_many`` (``strace``): a blob's
bytes must be durable before its name appears under its address, and every name before
the call returns (ADR-0007).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import sys
from pathlib import Path
from typing import BinaryIO

import pytest

from artifactstore_core.errors import IntegrityError
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.storage.local import BATCH_SIZE, SMALL_SIZE, SYNCFS_MIN, LocalBlobStore
from artifactstore_core.storage.ports import BlobWrite
from artifactstore_core.testing.blobstore_contract import blob_writes
from tests.syscalls import Call, traced

pytestmark = pytest.mark.integration

_CHILD = """
import io, os, sys
from functools import partial
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.storage.ports import BlobWrite
root, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = LocalBlobStore(root, syncfs=mode == "syncfs")
store.write(io.BytesIO(b"stored before"))
contents = [b"stored before"] + [os.urandom(100 + i) for i in range(count)]
os.write(2, b"BATCH\\n")
store.write_many([BlobWrite(partial(io.BytesIO, d), None, len(d)) for d in contents])
os.write(2, b"RETURNED\\n")
"""


def _trace(tmp_path: Path, mode: str, count: int) -> list[Call]:
    """The completed calls of the child's ``write_many``, in order of completion."""
    calls = "fsync,fdatasync,syncfs,rename,renameat,renameat2,write"
    argv = [sys.executable, "-c", _CHILD, str(tmp_path / "blobs"), mode, str(count)]
    return traced(argv, calls, tmp_path / "trace.txt")


def _renames(calls: list[Call]) -> list[tuple[int, str, str]]:
    """``(position, temporary path, target path)`` of each rename."""
    found = []
    for position, call in enumerate(calls):
        if call.name.startswith("rename") and call.result == 0:
            paths = re.findall(r'"([^"]+)"', call.args)
            found.append((position, paths[0], paths[-1]))
    return found


def _fsynced(call: Call) -> str | None:
    """The path an fsync (or fdatasync) call synced."""
    if call.name in ("fsync", "fdatasync") and call.result == 0:
        return re.fullmatch(r"\d+<(.*)>", call.args)[1]  # type: ignore[index]
    return None


def test_fsync_mode_syncs_each_file_before_its_rename_and_each_directory_after(
    tmp_path: Path,
) -> None:
    calls = _trace(tmp_path, "fsync", SYNCFS_MIN + 4)
    renames = _renames(calls)
    assert len(renames) == SYNCFS_MIN + 4  # the blob stored before is not renamed again
    synced = [(position, _fsynced(call)) for position, call in enumerate(calls)]
    for position, temporary, target in renames:
        assert "/staging/" in temporary
        assert any(path == temporary and at < position for at, path in synced), temporary
        directory = os.path.dirname(target)
        assert any(path == directory and at > position for at, path in synced), directory
    before = hash_bytes(b"stored before").blake3
    reused = str(LocalBlobStore(tmp_path / "blobs").path(before).parent)
    assert any(path == reused for _, path in synced), "the reused blob's directory entry"
    assert not any(call.name == "syncfs" for call in calls)


def test_syncfs_mode_syncs_the_batch_before_the_renames_and_after(tmp_path: Path) -> None:
    calls = _trace(tmp_path, "syncfs", 3 * SYNCFS_MIN)
    renames = _renames(calls)
    assert len(renames) == 3 * SYNCFS_MIN
    syncs = [position for position, call in enumerate(calls) if call.name == "syncfs"]
    assert all(calls[position].result == 0 for position in syncs)
    staged = [
        position
        for position, call in enumerate(calls)
        if call.name == "write" and "/staging/" in call.args
    ]
    first_rename, last_rename = renames[0][0], renames[-1][0]
    assert any(max(staged) < position < first_rename for position in syncs)
    assert any(position > last_rename for position in syncs)
    # The point of the batch: no fsync per blob or per directory.
    assert sum(1 for call in calls if _fsynced(call)) == 0


def test_a_batch_of_several_chunks(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    contents = [i.to_bytes(4, "big") * 40 for i in range(2 * BATCH_SIZE + 76)]
    stored = store.write_many(blob_writes(*contents))
    assert [s.hash for s in stored] == [hash_bytes(d) for d in contents]
    assert set(store.iter_addresses()) == {s.hash.blake3 for s in stored}
    assert list((tmp_path / "blobs" / "staging").iterdir()) == []


def test_a_damaged_stored_blob_is_replaced_by_a_batch(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"the real bytes"
    stored = store.write(io.BytesIO(data))
    store.path(stored.hash.blake3).write_bytes(b"the rotten one")
    again = store.write_many(blob_writes(data, b"other"))
    assert again[0].created is True
    assert store.path(stored.hash.blake3).read_bytes() == data


def test_a_batch_with_bytes_that_do_not_match_leaves_no_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    contents = [os.urandom(200) for _ in range(SYNCFS_MIN * 2)]
    items = blob_writes(*contents)
    items[-1] = BlobWrite(items[-1].open, hash_bytes(b"something else"), len(contents[-1]))
    with pytest.raises(IntegrityError, match=hash_bytes(b"something else").content_address):
        store.write_many(items)
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_a_file_larger_than_its_size_hint_is_stored_whole(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    grown = os.urandom(SMALL_SIZE + 4096)  # the file grew after it was listed
    small = os.urandom(100)
    stored = store.write_many(
        [BlobWrite(lambda: io.BytesIO(grown), None, 100), *blob_writes(small)]
    )
    assert [s.hash for s in stored] == [hash_bytes(grown), hash_bytes(small)]
    assert store.path(stored[0].hash.blake3).read_bytes() == grown


def test_purge_staging_leaves_the_staged_files_of_a_batch_alone(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    sweeper = LocalBlobStore(tmp_path / "blobs")
    purged: list[int] = []

    def purge_then_open(data: bytes) -> BinaryIO:
        # The earlier items of the batch are staged (written, not renamed) by now.
        purged.append(sweeper.purge_staging(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)))
        return io.BytesIO(data)

    contents = [os.urandom(300) for _ in range(SYNCFS_MIN + 2)]
    items = [BlobWrite(lambda d=d: purge_then_open(d), None, len(d)) for d in contents]
    stored = store.write_many(items)
    assert purged == [0] * len(contents)
    for data, blob in zip(contents, stored, strict=True):
        assert store.path(blob.hash.blake3).read_bytes() == data
    assert list((tmp_path / "blobs" / "staging").iterdir()) == []
