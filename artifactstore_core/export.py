"""Writing a package's files into a directory: verified, all or nothing, never through a
symbolic link.

What ``export_files`` (``ArtifactStore.export``, ``artifactstore get``) promises:

* Every file is first staged, verified against its digest as it is written (a large one
  copied inside the kernel where the blob store allows, and its copy checked), and made
  durable (one ``syncfs`` for many files, else an fsync of each); the destination is not
  touched before all of them are.
* A destination that does not exist appears with one ``rename(2)``: the files are staged
  in a sibling directory ``.<name>.artifactstore-tmp-<hex>`` whose tree is then renamed
  to the destination (never over an entry that appeared meanwhile). Whatever happens, the
  destination is absent or complete. Parent directories it needed are created first and
  removed again on an error (not when the process is killed).
* Into an existing directory, files are staged in ``<destination>/.artifactstore-tmp-<hex>``
  and moved in one by one with ``rename(2)``, so no file is ever half-written; an entry
  that ``force`` replaces is first hard-linked (or moved) into the staging directory. The
  moves run under a journal: if one fails, the previous entries are put back at once; if
  the process is killed while they run, the next export into the same destination (or
  ``recover``) puts them back before anything else. Other readers may see the moves
  happen one file at a time. Files of the directory that the package does not name are
  left alone.
* Nothing is created, replaced or written through a symbolic link below the destination
  (the destination itself may be one): directories are opened relative to their parent
  with ``O_NOFOLLOW``; a link where a file goes is an existing entry, and ``force``
  replaces the link itself.
* A staging directory is locked (``flock``) while its export runs; the ones killed exports
  leave are removed (or rolled back) by the next export into the same destination.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from artifactstore_core.domain.manifest import FileEntry
from artifactstore_core.domain.names import validate_file_paths
from artifactstore_core.errors import ConflictError, InvalidInputError
from artifactstore_core.storage.sync import (
    SYNCFS_MIN,
    sync_file_system,
    sync_files,
    syncfs_supported,
)

CHUNK = 1024 * 1024
STAGING = "artifactstore-tmp-"
"""Part of the name of every staging directory (``.artifactstore-tmp-<hex>`` inside the
destination, ``.<name>.artifactstore-tmp-<hex>`` beside it)."""

_MARKER = "artifactstore-staging"  # identifies a staging directory as ours
_JOURNAL = "journal.json"  # present while files are moved in: roll back if killed
_DONE = "done"  # every file moved in: nothing to roll back
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Staged files are read back too: a kernel copy is hashed as it is read from the page cache.
_STAGED_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILES = 512  # staged files kept open until they are synced
_MAX_OPEN_DIRECTORIES = 256
_NAME_ROOM = 200  # of a destination's name in its sibling staging name (NAME_MAX is 255)

Progress = Callable[[int], None] | None
BlobOpener = Callable[[FileEntry], BinaryIO]
"""Opens a file's bytes as a stream that verifies them as they are read."""
BlobCopier = Callable[[FileEntry, int, Progress], bool]
"""Copies a file's bytes inside the kernel into an empty file (open for reading and
writing) and checks the copy against the file's digest, raising on a mismatch; ``False``,
having written nothing, where it cannot (then ``BlobOpener`` is used)."""


@dataclass(frozen=True)
class _Blobs:
    """How an export reads the bytes of a package's files: ``open`` always works,
    ``copy`` (if any) is tried first."""

    open: BlobOpener
    copy: BlobCopier | None = None

    def write(self, entry: FileEntry, fd: int, progress: Progress) -> None:
        """Write ``entry``'s verified bytes into the empty file ``fd``."""
        if self.copy is not None and self.copy(entry, fd, progress):
            return
        size = min(CHUNK, entry.blob.size + 1)  # no 1 MiB buffer for a small file
        with self.open(entry) as reader:
            while chunk := reader.read(size):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                if progress:
                    progress(len(chunk))


@dataclass(frozen=True)
class ExportPlan:
    """The files to write, sorted by path, and every directory they need, parents first."""

    files: tuple[FileEntry, ...]
    directories: tuple[str, ...]


def plan_export(files: Sequence[FileEntry], package: str) -> ExportPlan:
    """Check that the paths can stand side by side in a directory (a package registered
    before ``put`` checked them may not): ``InvalidInputError`` names the package."""
    try:
        validate_file_paths(entry.path for entry in files)
    except InvalidInputError as exc:
        raise InvalidInputError(f"package {package} cannot be exported: {exc}") from exc
    ordered = tuple(sorted(files, key=lambda entry: entry.path))
    directories = {e.path[:i] for e in ordered for i, char in enumerate(e.path) if char == "/"}
    return ExportPlan(ordered, tuple(sorted(directories)))


def export_files(
    files: Sequence[FileEntry],
    destination: str | os.PathLike[str],
    open_blob: BlobOpener,
    *,
    package: str,
    force: bool = False,
    progress: Progress = None,
    copy_blob: BlobCopier | None = None,
) -> None:
    """Write ``files`` (read with ``open_blob``, which verifies, or copied with
    ``copy_blob`` where it can) under ``destination``, as the module docstring promises.
    Existing entries are refused unless ``force``.

    A failure of the destination's file system (read-only, full, …) raises
    ``InvalidInputError`` naming the destination, after everything was put back.
    """
    plan = plan_export(files, package)
    dest = Path(destination)
    blobs = _Blobs(open_blob, copy_blob)
    try:
        if os.path.lexists(dest):
            _export_into(plan, dest, blobs, force, progress)
        else:
            _export_new(plan, dest, blobs, progress)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot export {package} to {str(dest)!r}: {exc.strerror or exc}; nothing was written"
        ) from exc


def recover(destination: str | os.PathLike[str]) -> int:
    """Roll back and remove what killed exports into ``destination`` left behind.

    Returns how many staging directories were removed; those of exports still running
    are left alone. Every export runs this first.
    """
    dest = Path(destination)
    removed = 0
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), _opened(dest.parent) as fd:
        removed += _discard_siblings(fd, dest.name)
    try:
        root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    target = _Tree(root, str(dest))
    try:
        fcntl.flock(root, fcntl.LOCK_EX)
        return removed + _discard_inside(target)
    finally:
        target.close()
        os.close(root)


# --------------------------------------------------------------------------- the two cases
def _export_new(
    plan: ExportPlan,
    dest: Path,
    blobs: _Blobs,
    progress: Progress,
) -> None:
    """Stage beside the destination, then rename the staged tree to it."""
    created = _make_parents(dest)
    try:
        with _opened(dest.parent) as parent_fd:
            _discard_siblings(parent_fd, dest.name)
            name = f".{dest.name[:_NAME_ROOM]}.{STAGING}{secrets.token_hex(8)}"
            with _staging(parent_fd, name, str(dest.parent / name)) as staging:
                staging.stage(plan, blobs, progress, keep_old=False)
                try:
                    _rename_noreplace(staging.fd, "new", parent_fd, dest.name)
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    raise ConflictError(
                        f"destination {str(dest)!r} appeared while the package was exported; "
                        "nothing was written to it"
                    ) from exc
                os.fsync(parent_fd)
    except BaseException:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


def _export_into(
    plan: ExportPlan,
    dest: Path,
    blobs: _Blobs,
    force: bool,
    progress: Progress,
) -> None:
    """Stage inside the existing destination, then move the files in under a journal."""
    try:
        root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise InvalidInputError(f"destination {str(dest)!r} exists and is not a directory") from exc
    target = _Tree(root, str(dest))
    try:
        fcntl.flock(root, fcntl.LOCK_EX)  # one export at a time into one directory
        with contextlib.suppress(PermissionError), _opened(dest.parent) as parent_fd:
            _discard_siblings(parent_fd, dest.name)
        _discard_inside(target)
        _check(plan, target, force)
        name = f".{STAGING}{secrets.token_hex(8)}"
        with _staging(root, name, target.name(name)) as staging:
            staging.stage(plan, blobs, progress, keep_old=True)
            missing = _check(plan, target, force)  # again: it may have changed meanwhile
            staging.commit(plan, target, missing, force)
    finally:
        target.close()
        os.close(root)


def _check(plan: ExportPlan, target: _Tree, force: bool) -> list[str]:
    """The directories to create; refuses links, files in the way of directories,
    directories in the way of files, and (without ``force``) existing entries."""
    missing: dict[str, None] = {}  # ordered, parents first
    for directory in plan.directories:
        if _split(directory)[0] in missing:
            missing[directory] = None
            continue
        found = target.lstat(directory)
        if found is None:
            missing[directory] = None
        elif not stat.S_ISDIR(found.st_mode):
            raise target.not_a_directory(directory, found)
    for entry in plan.files:
        if _split(entry.path)[0] in missing:
            continue
        found = target.lstat(entry.path)
        if found is None:
            continue
        if stat.S_ISDIR(found.st_mode):
            raise InvalidInputError(
                f"{target.name(entry.path)!r} is a directory, where the package has a file"
            )
        if not force:
            raise InvalidInputError(
                f"{target.name(entry.path)!r} already exists; "
                "pass force=True (--force) to overwrite"
            )
    return list(missing)


# ------------------------------------------------------------------------------ staging
class _Staging:
    """A locked staging directory: ``new/`` holds the staged files, ``old/`` the entries
    they replaced, ``journal.json`` what is being moved in."""

    def __init__(self, fd: int, label: str) -> None:
        self.fd = fd
        self.label = label
        self.keep = False  # set when it holds entries that could not be put back

    def stage(self, plan: ExportPlan, blobs: _Blobs, progress: Progress, *, keep_old: bool) -> None:
        """Write every file into ``new/``, verified, then make the files and directories
        durable: one ``syncfs`` for many files (``SYNCFS_MIN``), else an fsync of each file
        (their write-back started first, the fsyncs overlapped) and of each directory."""
        for part in ("new", "old") if keep_old else ("new",):
            os.mkdir(part, dir_fd=self.fd)
            with _subtree(self.fd, part, self.label) as tree:
                for directory in plan.directories:
                    tree.mkdir(directory)
        together = syncfs_supported() and len(plan.files) >= SYNCFS_MIN
        with _subtree(self.fd, "new", self.label) as new:
            for start in range(0, len(plan.files), _OPEN_FILES):
                fds: list[int] = []
                try:
                    for entry in plan.files[start : start + _OPEN_FILES]:
                        parent, base = _split(entry.path)
                        fds.append(os.open(base, _STAGED_FILE, 0o666, dir_fd=new.fd(parent)))
                        blobs.write(entry, fds[-1], progress)
                    if not together:
                        sync_files(fds)
                finally:
                    for fd in fds:
                        os.close(fd)
            if together:
                # Reports write-back errors since this staging directory was opened.
                sync_file_system(self.fd)
                return
            for directory in reversed(("", *plan.directories)):
                os.fsync(new.fd(directory))

    def commit(self, plan: ExportPlan, target: _Tree, missing: list[str], force: bool) -> None:
        """Move the staged files in; on any error put the previous entries back."""
        journal = {"files": [entry.path for entry in plan.files], "created": missing}
        _write_durably(self.fd, _JOURNAL, json.dumps(journal).encode())
        try:
            for directory in missing:
                target.mkdir(directory)
            with (
                _subtree(self.fd, "new", self.label) as new,
                _subtree(self.fd, "old", self.label) as old,
            ):
                for entry in plan.files:
                    parent, base = _split(entry.path)
                    here = target.fd(parent)
                    if _lstat(here, base) is not None:
                        if not force:  # created since the check
                            raise InvalidInputError(f"{target.name(entry.path)!r} already exists")
                        aside = old.fd(parent)
                        try:
                            os.link(
                                base, base, src_dir_fd=here, dst_dir_fd=aside, follow_symlinks=False
                            )
                        except OSError:
                            os.rename(base, base, src_dir_fd=here, dst_dir_fd=aside)
                    os.rename(base, base, src_dir_fd=new.fd(parent), dst_dir_fd=here)
            # The directories that gained entries: the files' own, and the parents of
            # the directories created.
            changed = {_split(path)[0] for path in (*(e.path for e in plan.files), *missing)}
            target.sync(changed | set(missing))
            _write_durably(self.fd, _DONE, b"")
        except BaseException:
            self.roll_back(target, journal)
            raise

    def roll_back(self, target: _Tree, journal: dict[str, list[str]]) -> None:
        """Put back what the journal's moves changed; safe to run again after a kill.

        Per file, a staged file missing from ``new/`` was moved in: it goes back there;
        then an entry in ``old/`` (what it replaced) goes back to its place.
        """
        try:
            with (
                _subtree(self.fd, "new", self.label) as new,
                _subtree(self.fd, "old", self.label) as old,
            ):
                for path in reversed(journal["files"]):
                    parent, base = _split(path)
                    if new.lstat(path) is None:
                        with contextlib.suppress(FileNotFoundError):
                            os.rename(
                                base, base, src_dir_fd=target.fd(parent), dst_dir_fd=new.fd(parent)
                            )
                    if old.lstat(path) is not None:
                        os.rename(
                            base, base, src_dir_fd=old.fd(parent), dst_dir_fd=target.fd(parent)
                        )
            for directory in reversed(journal["created"]):
                with contextlib.suppress(OSError):
                    parent, base = _split(directory)
                    os.rmdir(base, dir_fd=target.fd(parent))
            kept = {_split(path)[0] for path in journal["files"]} - set(journal["created"])
            target.sync(kept)
        except (OSError, InvalidInputError) as exc:
            self.keep = True
            raise InvalidInputError(
                f"could not put back the entries of {target.label!r} an interrupted export "
                f"replaced ({exc}); they are kept in {self.label!r}, and the next export into "
                "the same destination tries again"
            ) from exc


@contextlib.contextmanager
def _staging(parent_fd: int, name: str, label: str) -> Iterator[_Staging]:
    """A new locked staging directory ``name``, removed afterwards."""
    os.mkdir(name, 0o700, dir_fd=parent_fd)
    staging = None
    try:
        fd = os.open(name, _DIR, dir_fd=parent_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(os.open(_MARKER, _NEW_FILE, 0o600, dir_fd=fd))
            staging = _Staging(fd, label)
            yield staging
        finally:
            if staging is None or not staging.keep:
                with contextlib.suppress(OSError):  # what is left, the next export removes
                    _remove(parent_fd, name, fd)
            os.close(fd)
    except BaseException:
        if staging is None:
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent_fd)
        raise


def _remove(parent_fd: int, name: str, fd: int) -> None:
    """Delete staging directory ``name`` (open as ``fd``) so that a kill at any point
    leaves it recognisable and safe to finish: the journal first (nothing is to be rolled
    back any more), the marker last."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_JOURNAL, dir_fd=fd)
        os.fsync(fd)
    with os.scandir(fd) as entries:
        found = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries if e.name != _MARKER]
    for entry, is_directory in found:
        if is_directory:
            shutil.rmtree(entry, dir_fd=fd)
        else:
            os.unlink(entry, dir_fd=fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_MARKER, dir_fd=fd)
    os.rmdir(name, dir_fd=parent_fd)


def _discard_siblings(parent_fd: int, name: str) -> int:
    """Remove the staging directories killed exports to a new ``name`` left beside it."""
    prefix = f".{name[:_NAME_ROOM]}.{STAGING}"
    with os.scandir(parent_fd) as entries:
        found = [e.name for e in entries if e.name.startswith(prefix)]
    return sum(_discard(parent_fd, leftover, None) for leftover in found)


def _discard_inside(target: _Tree) -> int:
    """Roll back and remove the staging directories killed exports left in ``target``."""
    with os.scandir(target.root) as entries:
        found = [e.name for e in entries if e.name.startswith(f".{STAGING}")]
    return sum(_discard(target.root, leftover, target) for leftover in found)


def _discard(parent_fd: int, name: str, target: _Tree | None) -> bool:
    """Remove one leftover staging directory unless an export still holds it; roll back
    its journal into ``target`` first if its moves did not finish."""
    try:
        fd = os.open(name, _DIR, dir_fd=parent_fd)
    except OSError:
        return False  # not a directory, or gone
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its export is running
        if _lstat(fd, _MARKER) is None:
            # Killed before it was marked (then it is empty), or not ours: only rmdir.
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent_fd)
            return False
        if target is not None and _lstat(fd, _JOURNAL) and not _lstat(fd, _DONE):
            with open(os.open(_JOURNAL, os.O_RDONLY | os.O_CLOEXEC, dir_fd=fd), "rb") as file:
                journal = json.loads(file.read())
            _Staging(fd, target.name(name)).roll_back(target, journal)
        _remove(parent_fd, name, fd)
        return True
    finally:
        os.close(fd)


# ------------------------------------------------------------------ directories by fd
class _Tree:
    """Directories below an open root, each opened relative to its parent without
    following a symbolic link; ``label`` names the root in errors."""

    def __init__(self, root: int, label: str) -> None:
        self.root = root
        self.label = label
        self._open: dict[str, int] = {}

    def name(self, path: str) -> str:
        return os.path.join(self.label, path) if path else self.label

    def fd(self, directory: str) -> int:
        """The open directory ``directory`` (``""``: the root). Use it before the next call:
        past ``_MAX_OPEN_DIRECTORIES`` the cache is closed and starts again."""
        if not directory:
            return self.root
        fd = self._open.get(directory)
        if fd is None:
            if len(self._open) >= _MAX_OPEN_DIRECTORIES:
                self.close()
            parent, base = _split(directory)
            parent_fd = self.fd(parent)
            try:
                fd = os.open(base, _DIR, dir_fd=parent_fd)
            except OSError as exc:
                found = _lstat(parent_fd, base)
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR) or found is None:
                    raise
                raise self.not_a_directory(directory, found) from exc
            self._open[directory] = fd
        return fd

    def lstat(self, path: str) -> os.stat_result | None:
        parent, base = _split(path)
        return _lstat(self.fd(parent), base)

    def mkdir(self, directory: str) -> None:
        parent, base = _split(directory)
        os.mkdir(base, dir_fd=self.fd(parent))

    def sync(self, directories: set[str]) -> None:
        for directory in sorted(directories, reverse=True):
            os.fsync(self.fd(directory))

    def not_a_directory(self, path: str, found: os.stat_result) -> InvalidInputError:
        if stat.S_ISLNK(found.st_mode):
            return InvalidInputError(
                f"refusing to write through the symbolic link {self.name(path)!r}"
            )
        return InvalidInputError(
            f"{self.name(path)!r} is not a directory, but the package has files under it"
        )

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()


@contextlib.contextmanager
def _subtree(parent_fd: int, name: str, label: str) -> Iterator[_Tree]:
    tree = _Tree(os.open(name, _DIR, dir_fd=parent_fd), os.path.join(label, name))
    try:
        yield tree
    finally:
        tree.close()
        os.close(tree.root)


@contextlib.contextmanager
def _opened(directory: Path) -> Iterator[int]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _split(path: str) -> tuple[str, str]:
    parent, _, base = path.rpartition("/")
    return parent, base


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _make_parents(dest: Path) -> list[Path]:
    """Create the missing parents of ``dest``, outermost first; returns those created."""
    missing: list[Path] = []
    parent = dest.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidInputError(
            f"{str(parent)!r} is not a directory; it is on the path to {str(dest)!r}"
        )
    created: list[Path] = []
    try:
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                directory.mkdir()
                created.append(directory)
    except BaseException:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    return created


def _write_durably(dir_fd: int, name: str, data: bytes) -> None:
    """Create ``name`` with ``data`` all at once: written to a temporary, fsync'd, renamed."""
    temporary = f"{name}.tmp"
    with open(os.open(temporary, _NEW_FILE, 0o600, dir_fd=dir_fd), "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    _renameat2.restype = ctypes.c_int


def _rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """``rename`` that fails with ``EEXIST`` rather than replace ``dst`` (``renameat2``
    with ``RENAME_NOREPLACE``; a check-then-rename where the kernel lacks it)."""
    if _renameat2 is not None:
        if _renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code), dst)
    if _lstat(dst_fd, dst) is not None:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
