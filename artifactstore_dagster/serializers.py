"""How Python values become package files and back, chosen by type from a small registry.

Built in, in the order they are tried: ``bytes``, ``text`` (``str``), ``json`` (dicts and
lists that survive a JSON round trip unchanged), ``directory`` and ``file`` (a
``pathlib.Path``: a directory becomes a multi-file package), ``parquet`` (pandas
DataFrames, when pandas and pyarrow are installed) and ``pickle`` (everything else).

Extend it with ``register_serializer(MySerializer())``; serializers registered later are
tried first. An asset picks one by name with the definition metadata key
``artifactstore/serializer``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifactstore_core.domain.package import Package
from artifactstore_core.errors import InvalidInputError
from artifactstore_core.sources import Files


class Unsuitable(Exception):
    """Raised by ``Serializer.dump`` when this value is better left to the next serializer."""


@dataclass(frozen=True)
class StoredContent:
    """A stored package handed to ``Serializer.load``: its manifest and verified reads."""

    package: Package
    read: Callable[[str | None], bytes]
    export: Callable[[], Path]

    def read_bytes(self, path: str | None = None) -> bytes:
        """All bytes of one file (``None``: the only file), verified against its digest."""
        return self.read(path)

    def export_directory(self) -> Path:
        """A fresh local directory holding every file of the package, verified."""
        return self.export()


class Serializer(ABC):
    """Turns values of some types into package files and back."""

    #: Recorded with the package and used to pick the serializer again when loading.
    name: str = ""

    @abstractmethod
    def handles(self, value: object) -> bool:
        """Whether this serializer is a candidate for ``value`` (cheap: a type test)."""

    @abstractmethod
    def dump(self, value: Any) -> Files:
        """The files to store (what ``ArtifactStore.put`` accepts); ``Unsuitable`` to pass."""

    @abstractmethod
    def load(self, content: StoredContent) -> Any:
        """The value back from a stored package."""


class BytesSerializer(Serializer):
    name = "bytes"

    def handles(self, value: object) -> bool:
        return isinstance(value, bytes | bytearray | memoryview)

    def dump(self, value: Any) -> Files:
        return {"data.bin": bytes(value)}

    def load(self, content: StoredContent) -> Any:
        return content.read_bytes("data.bin")


class TextSerializer(Serializer):
    name = "text"

    def handles(self, value: object) -> bool:
        return isinstance(value, str)

    def dump(self, value: Any) -> Files:
        return {"data.txt": value.encode("utf-8")}

    def load(self, content: StoredContent) -> Any:
        return content.read_bytes("data.txt").decode("utf-8")


class JsonSerializer(Serializer):
    """Dicts and lists as canonical JSON; values JSON would change go to the next one."""

    name = "json"

    def handles(self, value: object) -> bool:
        return type(value) in (dict, list)

    def dump(self, value: Any) -> Files:
        try:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise Unsuitable(str(exc)) from exc
        # Tuples, non-text keys and the like would come back changed: not JSON's job.
        if json.loads(text) != value:
            raise Unsuitable("value changes in a JSON round trip")
        return {"data.json": text.encode("utf-8")}

    def load(self, content: StoredContent) -> Any:
        return json.loads(content.read_bytes("data.json"))


class DirectorySerializer(Serializer):
    """A ``pathlib.Path`` to a directory: every file under it, paths relative to it."""

    name = "directory"

    def handles(self, value: object) -> bool:
        return isinstance(value, Path) and value.is_dir()

    def dump(self, value: Any) -> Files:
        path: Path = value
        return path

    def load(self, content: StoredContent) -> Any:
        return content.export_directory()


class FileSerializer(Serializer):
    """A ``pathlib.Path`` to a file, stored under its base name; loads as a local path."""

    name = "file"

    def handles(self, value: object) -> bool:
        return isinstance(value, Path) and not value.is_dir()

    def dump(self, value: Any) -> Files:
        path: Path = value
        if not path.is_file():
            raise InvalidInputError(f"output path {str(path)!r} does not exist or is not a file")
        return {path.name: path}

    def load(self, content: StoredContent) -> Any:
        directory = content.export_directory()
        return directory / content.package.file().path


class ParquetSerializer(Serializer):
    """pandas DataFrames as Parquet; used only when pandas and pyarrow are installed. A
    frame Arrow cannot convert (mixed-type object columns) is left to the next serializer."""

    name = "parquet"

    def handles(self, value: object) -> bool:
        pandas = sys.modules.get("pandas")
        return (
            pandas is not None
            and isinstance(value, pandas.DataFrame)
            and importlib.util.find_spec("pyarrow") is not None
        )

    def dump(self, value: Any) -> Files:
        arrow_error = importlib.import_module("pyarrow").lib.ArrowException
        buffer = io.BytesIO()
        try:
            value.to_parquet(buffer, engine="pyarrow")
        except arrow_error as exc:  # e.g. an object column of mixed types (rows of JSON)
            raise Unsuitable(f"pyarrow cannot convert it ({type(exc).__name__}: {exc})") from exc
        return {"data.parquet": buffer.getvalue()}

    def load(self, content: StoredContent) -> Any:
        pandas = importlib.import_module("pandas")
        return pandas.read_parquet(io.BytesIO(content.read_bytes("data.parquet")))


class PickleSerializer(Serializer):
    """The fallback: anything ``pickle`` can write. Load only packages you trust."""

    name = "pickle"

    def handles(self, value: object) -> bool:
        return True

    def dump(self, value: Any) -> Files:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # pickle raises TypeError, PicklingError, AttributeError...
            raise InvalidInputError(
                f"cannot serialise a {type(value).__module__}.{type(value).__qualname__} "
                f"value: pickle failed ({type(exc).__name__}: {exc}); return bytes, str, "
                "JSON data, a pathlib.Path or a picklable object, or register a serializer"
            ) from exc
        return {"data.pkl": data}

    def load(self, content: StoredContent) -> Any:
        return pickle.loads(content.read_bytes("data.pkl"))


class SerializerRegistry:
    """An ordered set of serializers; the first that handles a value and accepts it wins."""

    def __init__(self, serializers: Iterable[Serializer] = ()) -> None:
        self._serializers: list[Serializer] = []
        self._lock = threading.Lock()
        for serializer in serializers:
            self.register(serializer, first=False)

    def register(self, serializer: Serializer, *, first: bool = True) -> None:
        """Add ``serializer``, replacing one of the same name.

        It is tried first, or with ``first=False`` last but before the ``pickle`` fallback.
        """
        if not serializer.name:
            raise InvalidInputError(f"serializer {serializer!r} has no name")
        with self._lock:
            kept = [s for s in self._serializers if s.name != serializer.name]
            if first:
                kept.insert(0, serializer)
            else:
                names = [s.name for s in kept]
                kept.insert(names.index("pickle") if "pickle" in names else len(kept), serializer)
            self._serializers = kept

    @property
    def names(self) -> Sequence[str]:
        return [s.name for s in self._serializers]

    def get(self, name: str) -> Serializer:
        """The serializer called ``name``; ``InvalidInputError`` lists the known ones."""
        for serializer in self._serializers:
            if serializer.name == name:
                return serializer
        raise InvalidInputError(
            f"unknown serializer {name!r}; registered: {', '.join(self.names)} "
            "(register it with artifactstore_dagster.register_serializer)"
        )

    def serialize(self, value: object, name: str | None = None) -> tuple[Serializer, Files]:
        """The serializer chosen for ``value`` (or the one called ``name``) and its files."""
        if name is not None:
            serializer = self.get(name)
            try:
                return serializer, serializer.dump(value)
            except Unsuitable as exc:
                raise InvalidInputError(
                    f"serializer {name!r} cannot store a {type(value).__qualname__} value: {exc}"
                ) from exc
        reasons = []
        for serializer in list(self._serializers):
            if not serializer.handles(value):
                continue
            try:
                return serializer, serializer.dump(value)
            except Unsuitable as exc:
                reasons.append(f"{serializer.name}: {exc}")
        raise InvalidInputError(
            f"no serializer accepts a {type(value).__qualname__} value"
            + (f" ({'; '.join(reasons)})" if reasons else "")
        )


def builtin_serializers() -> list[Serializer]:
    """Fresh instances of the built-in serializers, in the order they are tried."""
    return [
        BytesSerializer(),
        TextSerializer(),
        JsonSerializer(),
        DirectorySerializer(),
        FileSerializer(),
        ParquetSerializer(),
        PickleSerializer(),
    ]


#: The registry the IO manager uses unless a subclass overrides ``serializers()``.
default_registry = SerializerRegistry(builtin_serializers())


def register_serializer(serializer: Serializer, *, first: bool = True) -> None:
    """Add a serializer to the default registry (tried before the built-ins by default)."""
    default_registry.register(serializer, first=first)
