"""``ArtifactStore.export``: never through a symlink, never a package that cannot exist on
disk, all or nothing (on SQLite and PostgreSQL)."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from artifactstore_core import InvalidInputError, PutRequest
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.manifest import (
    FileEntry,
    Provenance,
    manifest_document,
    package_digest,
)
from artifactstore_core.export import recover
from artifactstore_core.store import ArtifactStore
from artifactstore_core.testing.tmpfs import tmpfs
from tests.registry.conftest import blob_count, event_count

pytestmark = pytest.mark.integration


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file bytes, or ``-> target`` for a symlink."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
    return found


def leftovers(*directories: Path) -> list[str]:
    """Staging directories of exports found in ``directories``."""
    return [
        p.name
        for d in directories
        if d.is_dir()
        for p in d.iterdir()
        if "artifactstore-tmp" in p.name
    ]


# --------------------------------------------------------------------- symlinks (item 5)
def test_symlinked_subdirectory_inside_destination_is_not_followed(
    store: ArtifactStore, tmp_path: Path
) -> None:
    store.put("r/x", {"a.txt": b"alpha", "sub/log.txt": b"escaped?"})
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    for force in (False, True):
        with pytest.raises(InvalidInputError, match="symbolic link") as caught:
            store.export("r/x", dest, force=force)
        assert str(dest / "sub") in str(caught.value) and "\n" not in str(caught.value)
        assert list(outside.iterdir()) == []
        assert tree(dest) == {"sub": f"-> {outside}"}


def test_symlink_at_a_file_path_is_replaced_never_written_through(
    store: ArtifactStore, tmp_path: Path
) -> None:
    store.put("r/x", {"a.txt": b"new a", "b.txt": b"new b"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"victim")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "b.txt").symlink_to(outside / "created-through-link.txt")  # dangling
    with pytest.raises(InvalidInputError, match="already exists") as caught:
        store.export("r/x", dest)
    assert str(dest / "b.txt") in str(caught.value)
    (dest / "a.txt").symlink_to(outside / "victim.txt")
    with pytest.raises(InvalidInputError, match="already exists"):
        store.export("r/x", dest)
    assert tree(outside) == {"victim.txt": b"victim"}
    store.export("r/x", dest, force=True)
    assert tree(dest) == {"a.txt": b"new a", "b.txt": b"new b"}
    assert tree(outside) == {"victim.txt": b"victim"}


def test_file_where_the_package_needs_a_directory_is_refused(
    store: ArtifactStore, tmp_path: Path
) -> None:
    store.put("r/x", {"sub/log.txt": b"log", "sub2/x": b"x"})
    dest = tmp_path / "dest"
    (dest / "sub2").mkdir(parents=True)
    (dest / "sub").write_bytes(b"a file")
    (dest / "sub2" / "x").mkdir()
    with pytest.raises(InvalidInputError, match="not a directory") as caught:
        store.export("r/x", dest, force=True)
    assert str(dest / "sub") in str(caught.value)
    (dest / "sub").unlink()
    with pytest.raises(InvalidInputError, match="is a directory") as caught:
        store.export("r/x", dest, force=True)
    assert str(dest / "sub2" / "x") in str(caught.value)
    assert tree(dest) == {}


# ------------------------------------------------------- file/directory clashes (item 6)
@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"x": b"1", "x/y": b"2"}, ("'x'", "'x/y'")),
        ({"a/b": b"1", "a/b/c/d.txt": b"2", "z": b"3"}, ("'a/b'", "'a/b/c/d.txt'")),
    ],
)
def test_put_and_put_many_reject_a_path_that_is_both_file_and_directory(
    store: ArtifactStore, files: dict[str, bytes], named: tuple[str, str]
) -> None:
    events, blobs = event_count(store), blob_count(store)
    with pytest.raises(InvalidInputError) as caught:
        store.put("r/clash", files)
    assert all(name in str(caught.value) for name in named)
    with pytest.raises(InvalidInputError, match="request 1") as caught:
        store.put_many([PutRequest("r/fine", {"x-y": b"1", "x": b"2"}), PutRequest("r/c", files)])
    assert all(name in str(caught.value) for name in named)
    assert (event_count(store), blob_count(store)) == (events, blobs)


def register_unchecked(store: ArtifactStore, name: str, files: dict[str, bytes]) -> None:
    """Register a package the way a registry without path checks did: blobs, then the
    events, through the store's own transaction, skipping ``put``'s validation."""
    stored = {path: store.blobs.write(io.BytesIO(data)) for path, data in files.items()}
    entries = [FileEntry(path, blob.hash) for path, blob in stored.items()]
    document = manifest_document("output", entries, {}, Provenance())
    digest = package_digest(document)
    registered = ev.PackageRegistered(
        package_id=str(uuid.uuid4()),
        name=name,
        version=1,
        kind="output",
        content_address=digest.content_address,
        digest_sha256=digest.sha256.hex,
        size=sum(len(data) for data in files.values()),
        files=document["files"],
        metadata={},
        provenance=Provenance().to_dict(),
        retention_class="transient",
        expires_at=None,
    )
    located = [
        ev.BlobStored(
            content_address=blob.hash.content_address,
            backend="hot",
            digest_sha256=blob.hash.sha256.hex,
            size=blob.hash.size,
            uri=blob.uri,
        )
        for blob in stored.values()
    ]
    store.ledger.record(lambda _conn, _now: [registered, *located])


def test_get_of_a_registered_clashing_package_fails_clearly(
    store: ArtifactStore, tmp_path: Path
) -> None:
    register_unchecked(store, "legacy/clash", {"x": b"1", "x/y": b"2", "ok.txt": b"3"})
    dest = tmp_path / "dest"
    with pytest.raises(InvalidInputError, match="legacy/clash@1") as caught:
        store.export("legacy/clash", dest)
    assert "'x'" in str(caught.value) and "'x/y'" in str(caught.value)
    assert not dest.exists() and leftovers(tmp_path) == []
    dest.mkdir()
    with pytest.raises(InvalidInputError, match="'x/y'"):
        store.export("legacy/clash", dest, force=True)
    assert tree(dest) == {}


# --------------------------------------------------------------- all or nothing (item 7)
class Interrupted(Exception):
    pass


def interrupt_after(limit: int) -> Callable[[int], None]:
    seen = [0]

    def progress(count: int) -> None:
        seen[0] += count
        if seen[0] >= limit:
            raise Interrupted

    return progress


def test_failure_while_writing_leaves_a_new_destination_absent(
    store: ArtifactStore, tmp_path: Path
) -> None:
    store.put("r/x", {f"d{i}/f{i}.bin": os.urandom(300_000) for i in range(4)})
    dest = tmp_path / "a" / "b" / "dest"
    with pytest.raises(Interrupted):
        store.export("r/x", dest, progress=interrupt_after(700_000))
    assert not (tmp_path / "a").exists() and leftovers(tmp_path) == []


def test_failure_while_writing_leaves_an_existing_destination_unchanged(
    store: ArtifactStore, tmp_path: Path
) -> None:
    store.put("r/x", {"keep.txt": b"new", **{f"f{i}.bin": os.urandom(300_000) for i in range(4)}})
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"old")
    with pytest.raises(Interrupted):
        store.export("r/x", dest, force=True, progress=interrupt_after(700_000))
    assert tree(dest) == {"keep.txt": b"old"} and leftovers(tmp_path, dest) == []


@pytest.fixture
def failing_rename(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``fail(n)``: the ``n``-th ``os.rename`` from now on raises EIO (a failing disk)."""

    def fail(n: int) -> None:
        real = os.rename
        calls = [0]

        def rename(*args: object, **kwargs: object) -> None:
            calls[0] += 1
            if calls[0] == n:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "rename", rename)

    return fail


def test_failure_while_moving_files_in_restores_the_previous_files(
    store: ArtifactStore, tmp_path: Path, failing_rename: Callable[[int], None]
) -> None:
    files = {f"d{i % 3}/f{i}.txt": f"new {i}".encode() for i in range(9)}
    store.put("r/x", files)
    dest = tmp_path / "dest"
    (dest / "d1").mkdir(parents=True)
    (dest / "d1" / "f1.txt").write_bytes(b"old 1")
    (dest / "d1" / "f4.txt").symlink_to(tmp_path / "elsewhere")
    (dest / "mine.txt").write_bytes(b"not in the package")
    before = tree(dest)
    for n in range(1, 12):
        failing_rename(n)
        with pytest.raises(InvalidInputError, match="Input/output error"):
            store.export("r/x", dest, force=True)
        assert tree(dest) == before, n
        assert sorted(p.name for p in dest.iterdir()) == ["d1", "mine.txt"], n
    failing_rename(0)
    store.export("r/x", dest, force=True)
    assert tree(dest) == {**files, "mine.txt": b"not in the package"}


def test_destination_that_is_a_file_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    store.put("r/x", {"a.txt": b"alpha"})
    (tmp_path / "dest").write_bytes(b"a file")
    with pytest.raises(InvalidInputError, match="not a directory") as caught:
        store.export("r/x", tmp_path / "dest", force=True)
    assert str(tmp_path / "dest") in str(caught.value)
    assert (tmp_path / "dest").read_bytes() == b"a file"
    with pytest.raises(InvalidInputError, match="not a directory"):
        store.export("r/x", tmp_path / "dest" / "below")


def test_export_is_complete_and_leaves_nothing_behind(store: ArtifactStore, tmp_path: Path) -> None:
    files = {"a.txt": b"alpha", "d/e/b.txt": b"beta", "d/c.txt": b""}
    store.put("r/x", files)
    dest = tmp_path / "fresh"
    store.export("r/x", dest)
    assert tree(dest) == files and leftovers(tmp_path, dest) == []
    mode = dest.stat().st_mode & 0o777
    (tmp_path / "plain").mkdir()
    assert mode == (tmp_path / "plain").stat().st_mode & 0o777
    store.export("r/x", dest, force=True)
    assert tree(dest) == files and leftovers(tmp_path, dest) == []


# ------------------------------------------------- full and read-only file systems (item 7)
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (needs root; skipped, saying why, otherwise)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    with tmpfs(mount_point) as error:
        if error is not None:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {error}")
        yield mount_point


def remount_read_only(mount_point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)


def test_full_disk_leaves_nothing_behind(store: ArtifactStore, small_fs: Path) -> None:
    big = {"a.txt": b"new", "big.bin": os.urandom(2 * 1024 * 1024)}
    store.put("r/big", big)
    with pytest.raises(InvalidInputError, match="No space left on device") as caught:
        store.export("r/big", small_fs / "new" / "dest")
    assert str(small_fs / "new" / "dest") in str(caught.value)
    assert list(small_fs.iterdir()) == []
    (small_fs / "dest").mkdir()
    (small_fs / "dest" / "a.txt").write_bytes(b"old")
    with pytest.raises(InvalidInputError, match="No space left on device"):
        store.export("r/big", small_fs / "dest", force=True)
    assert tree(small_fs) == {"dest/a.txt": b"old"}
    assert os.statvfs(small_fs).f_bfree > 200  # the staged bytes were freed


def test_read_only_destination_is_refused_and_untouched(
    store: ArtifactStore, small_fs: Path
) -> None:
    store.put("r/x", {"a.txt": b"new", "d/b.txt": b"b"})
    (small_fs / "dest").mkdir()
    (small_fs / "dest" / "a.txt").write_bytes(b"old")
    remount_read_only(small_fs)
    for dest in (small_fs / "dest", small_fs / "new", small_fs / "new" / "deeper"):
        with pytest.raises(InvalidInputError, match="Read-only file system") as caught:
            store.export("r/x", dest, force=True)
        assert str(dest) in str(caught.value) and "\n" not in str(caught.value)
    assert tree(small_fs) == {"dest/a.txt": b"old"}


def test_staging_of_a_running_export_is_left_alone(store: ArtifactStore, tmp_path: Path) -> None:
    store.put("r/x", {f"f{i}.bin": os.urandom(200_000) for i in range(3)})
    dest = tmp_path / "dest"
    staged, release = threading.Event(), threading.Event()

    def progress(_count: int) -> None:
        staged.set()
        assert release.wait(30)

    worker = threading.Thread(target=lambda: store.export("r/x", dest, progress=progress))
    worker.start()
    try:
        assert staged.wait(30)
        running = leftovers(tmp_path)
        assert len(running) == 1
        assert recover(dest) == 0 and leftovers(tmp_path) == running
    finally:
        release.set()
        worker.join(30)
    assert len(tree(dest)) == 3 and leftovers(tmp_path, dest) == []
