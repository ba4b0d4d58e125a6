"""Serializers by type, the extensible registry, package names and the content digest."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from artifactstore_core.errors import InvalidInputError
from artifactstore_core.sources import collect
from artifactstore_dagster.names import (
    asset_package_name,
    content_digest,
    op_package_name,
    segment,
)
from artifactstore_dagster.serializers import (
    Serializer,
    SerializerRegistry,
    StoredContent,
    builtin_serializers,
)

pytestmark = [pytest.mark.dagster, pytest.mark.unit]


def _content(files: Any, tmp_path: Path) -> StoredContent:
    """A StoredContent over files as ``put`` would receive them (no registry needed)."""
    data = {}
    for source in collect(files):
        with source.open() as stream:
            data[source.path] = stream.read()

    def read(path: str | None) -> bytes:
        return data[path] if path is not None else next(iter(data.values()))

    def export() -> Path:
        target = tmp_path / f"export-{len(list(tmp_path.iterdir()))}"
        for path, content in data.items():
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            (target / path).write_bytes(content)
        return target

    return StoredContent(package=_FakePackage(list(data)), read=read, export=export)  # type: ignore[arg-type]


class _FakePackage:
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def file(self, path: str | None = None) -> Any:
        class Entry:
            pass

        entry = Entry()
        entry.path = self.paths[0]  # type: ignore[attr-defined]
        return entry


def _roundtrip(value: Any, tmp_path: Path, registry: SerializerRegistry | None = None) -> Any:
    registry = registry or SerializerRegistry(builtin_serializers())
    serializer, files = registry.serialize(value)
    return serializer.name, serializer.load(_content(files, tmp_path))


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (b"\x00\x01bytes", "bytes"),
        (bytearray(b"abc"), "bytes"),
        ("text with ünïcode", "text"),
        ({"b": [1, 2.5, None, True], "a": {"nested": "x"}}, "json"),
        ([1, "two", {"three": 3}], "json"),
        ({1: "int key"}, "pickle"),  # JSON would turn the key into "1"
        ({"t": (1, 2)}, "pickle"),  # JSON would turn the tuple into a list
        ({"f": float("nan")}, "pickle"),
        ((1, 2, 3), "pickle"),
        ({1, 2}, "pickle"),
    ],
)
def test_values_round_trip_with_the_serializer_chosen_by_type(
    value: Any, name: str, tmp_path: Path
) -> None:
    chosen, loaded = _roundtrip(value, tmp_path)
    assert chosen == name
    assert loaded == value or repr(loaded) == repr(value)  # repr: NaN != NaN


def test_paths_become_file_or_directory_packages(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    report.write_text("# report")
    bundle = tmp_path / "bundle"
    (bundle / "sub").mkdir(parents=True)
    (bundle / "a.txt").write_text("a")
    (bundle / "sub" / "b.txt").write_text("b")

    chosen, loaded = _roundtrip(report, tmp_path)
    assert chosen == "file"
    assert loaded.name == "report.md"
    assert loaded.read_text() == "# report"

    chosen, loaded = _roundtrip(bundle, tmp_path)
    assert chosen == "directory"
    assert sorted(p.relative_to(loaded).as_posix() for p in loaded.rglob("*") if p.is_file()) == [
        "a.txt",
        "sub/b.txt",
    ]


def test_a_missing_path_is_refused_not_pickled(tmp_path: Path) -> None:
    registry = SerializerRegistry(builtin_serializers())
    with pytest.raises(InvalidInputError, match="does not exist"):
        registry.serialize(tmp_path / "nope.txt")


def test_an_unserialisable_value_names_its_type_and_the_cause() -> None:
    registry = SerializerRegistry(builtin_serializers())
    with pytest.raises(InvalidInputError, match=r"cannot serialise a _thread\.lock value"):
        registry.serialize(threading.Lock())


def test_a_named_serializer_is_used_and_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    registry = SerializerRegistry(builtin_serializers())
    serializer, files = registry.serialize({"a": 1}, "pickle")
    assert serializer.name == "pickle"
    assert list(files) == ["data.pkl"]  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"unknown serializer 'yaml'; registered: bytes"):
        registry.serialize({"a": 1}, "yaml")


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


class PointSerializer(Serializer):
    name = "point"

    def handles(self, value: object) -> bool:
        return isinstance(value, Point)

    def dump(self, value: Any) -> Any:
        return {"point.csv": f"{value.x},{value.y}".encode()}

    def load(self, content: StoredContent) -> Any:
        x, y = content.read_bytes("point.csv").decode().split(",")
        return Point(int(x), int(y))


def test_users_extend_the_registry(tmp_path: Path) -> None:
    registry = SerializerRegistry(builtin_serializers())
    registry.register(PointSerializer())
    assert registry.names[0] == "point"
    chosen, loaded = _roundtrip(Point(3, 4), tmp_path, registry)
    assert (chosen, loaded.x, loaded.y) == ("point", 3, 4)
    # Registered last, a serializer still comes before the pickle fallback.
    other = SerializerRegistry(builtin_serializers())
    other.register(PointSerializer(), first=False)
    assert other.names[-2:] == ["point", "pickle"]


def test_parquet_for_dataframes_when_pandas_and_pyarrow_are_installed(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pandas.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    chosen, loaded = _roundtrip(frame, tmp_path)
    assert chosen == "parquet"
    assert loaded.equals(frame)


def test_a_dataframe_arrow_cannot_convert_falls_back_or_fails_named(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rows = pandas.DataFrame({"id": [1, 2, 3], "value": [1, "two", {"three": 3}]})  # JSON rows
    chosen, loaded = _roundtrip(rows, tmp_path)
    assert chosen == "pickle"
    assert loaded.equals(rows)
    registry = SerializerRegistry(builtin_serializers())
    with pytest.raises(InvalidInputError, match=r"serializer 'parquet' .*pyarrow cannot convert"):
        registry.serialize(rows, "parquet")


# ---------------------------------------------------------------------------- names
def test_valid_segments_stay_and_others_get_a_hash_suffix() -> None:
    assert segment("2024-05-01") == "2024-05-01"
    assert segment("raw_logs.v2") == "raw_logs.v2"
    cleaned = segment("eu|west 1")
    assert cleaned.startswith("eu_west_1-") and len(cleaned) == len("eu_west_1-") + 8
    assert segment("eu|west 1") != segment("eu_west_1")
    assert segment("..").startswith("_")
    assert segment("-x").startswith("_-x-")


def test_package_names_for_assets_partitions_and_op_outputs() -> None:
    assert asset_package_name("", ["reports", "daily"]) == "reports/daily"
    assert asset_package_name("team/", ["raw"], "2024-05-01") == "team/raw/2024-05-01"
    assert (
        asset_package_name("", ["m"], "red|2024-05-01", {"region": "red", "date": "2024-05-01"})
        == "m/2024-05-01/red"
    )
    assert op_package_name("", "job", "emit", "result", "a") == "job/emit/result/a"
    assert op_package_name("", "job", "process[a]", "result") == "job/process/a/result"


def test_content_digest_covers_paths_and_bytes_only() -> None:
    one = content_digest([("a", "blake3:" + "1" * 64), ("b", "blake3:" + "2" * 64)])
    same = content_digest([("b", "blake3:" + "2" * 64), ("a", "blake3:" + "1" * 64)])
    moved = content_digest([("c", "blake3:" + "1" * 64), ("b", "blake3:" + "2" * 64)])
    assert one == same != moved
    assert len(one) == 64 and int(one, 16) >= 0
