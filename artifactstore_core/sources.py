"""Turn what a caller hands to ``put`` into a list of (path in package, byte source)."""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from artifactstore_core.errors import InvalidInputError

#: One file's content: bytes, text (UTF-8), a path to a regular file, or a binary stream.
FileContent = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO
#: What ``put`` accepts: a mapping of package paths to contents, one path (file or
#: directory), a list of paths, a single bytes value / stream (stored as ``data``), or the
#: sources ``collect`` returned (so that a caller that needs them first walks once).
Files = (
    Mapping[str, FileContent]
    | os.PathLike[str]
    | Sequence[os.PathLike[str]]
    | Sequence["FileSource"]
    | bytes
    | BinaryIO
)
DEFAULT_FILE_NAME = "data"


@dataclass(frozen=True, slots=True)
class FileSource:
    """A file to store: its path inside the package and a way to open its bytes."""

    path: str
    open: Callable[[], BinaryIO]
    size_hint: int | None


def _from_path(path: Path | str, where: str) -> FileSource:
    """A regular file (one ``stat``, following symbolic links)."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise InvalidInputError(f"{where}: file {str(path)!r} does not exist") from None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise InvalidInputError(f"{where}: file {str(path)!r} does not exist") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInputError(f"{where}: {str(path)!r} is a directory, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError(f"{where}: {str(path)!r} is not a regular file")
    # Unbuffered: a small file is read in one call, with no buffer and no tty or seek check.
    return FileSource(where, lambda: open(path, "rb", buffering=0), info.st_size)


def _content(package_path: str, content: FileContent) -> FileSource:
    if isinstance(content, bytes | bytearray | memoryview):
        data = bytes(content)
        return FileSource(package_path, lambda: io.BytesIO(data), len(data))
    if isinstance(content, str):
        encoded = content.encode()
        return FileSource(package_path, lambda: io.BytesIO(encoded), len(encoded))
    if isinstance(content, os.PathLike):
        return _from_path(Path(content), package_path)
    if hasattr(content, "read"):
        stream = content
        return FileSource(package_path, lambda: _NonClosing(stream), None)  # type: ignore[arg-type,return-value]
    raise InvalidInputError(
        f"file {package_path!r}: cannot store a {type(content).__name__}; "
        "give bytes, text, a file path or a binary stream"
    )


def _walk(directory: Path) -> Iterator[tuple[str, str]]:
    """``(path relative to directory, with "/", full path)`` of every file below
    ``directory``, in sorted order; symbolic links to directories are not followed."""
    top = os.fspath(directory)
    for root, dirs, names in os.walk(top, followlinks=False):
        dirs.sort()
        base = os.path.relpath(root, top).replace(os.sep, "/")
        prefix = "" if base == "." else base + "/"
        for name in sorted(names):
            yield prefix + name, os.path.join(root, name)


def _tree(directory: Path, prefix: str) -> list[FileSource]:
    sources = [_from_path(path, f"{prefix}{relative}") for relative, path in _walk(directory)]
    if not sources:
        raise InvalidInputError(f"directory {str(directory)!r} contains no files")
    return sources


def collect(files: Files) -> list[FileSource]:
    """Resolve ``files`` to sources; directories are walked in sorted order.

    One directory puts its contents at the package root; several paths are placed under
    their base names.
    """
    if isinstance(files, Mapping):
        return [_content(str(path), content) for path, content in files.items()]
    if isinstance(files, bytes | bytearray | memoryview) or hasattr(files, "read"):
        return [_content(DEFAULT_FILE_NAME, files)]  # type: ignore[arg-type]
    if isinstance(files, str):
        raise InvalidInputError(
            f"ambiguous files argument {files[:40]!r}: pass a pathlib.Path for a file, "
            "or a mapping {'name.txt': text} for text content"
        )
    if isinstance(files, os.PathLike):
        path = Path(files)
        return _tree(path, "") if path.is_dir() else [_from_path(path, path.name)]
    sources: list[FileSource] = []
    for item in files:
        if isinstance(item, FileSource):
            sources.append(item)
            continue
        path = Path(item)
        sources.extend(
            _tree(path, f"{path.name}/") if path.is_dir() else [_from_path(path, path.name)]
        )
    return sources


class _NonClosing(io.RawIOBase):
    """Reads a caller's stream without closing it when we are done."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class CountingReader:
    """Reads ``stream``, reporting each count of bytes read to ``progress``.

    ``fileno``, ``tell`` and ``seek`` are the stream's own, so that a store may copy the
    underlying file without reading it through Python; it then reports to ``progress``.
    """

    def __init__(self, stream: BinaryIO, progress: Callable[[int], None]) -> None:
        self.stream = stream
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.progress(len(data))
        return data

    def readinto(self, buffer: memoryview) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self.progress(len(data))
        return len(data)

    def fileno(self) -> int:
        return self.stream.fileno()

    def tell(self) -> int:
        return self.stream.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.stream.seek(offset, whence)
