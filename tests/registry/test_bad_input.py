"""Bad input gets a clear, typed error and writes nothing (events and blobs counted)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import re
import resource
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from artifactstore_core import ArtifactStore
from artifactstore_core.cli import cli as cli_command
from artifactstore_core.cli import exit_code
from artifactstore_core.errors import (
    AmbiguousReferenceError,
    BackendUnavailableError,
    ConfigurationError,
    EventLogTamperedError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    SchemaViolationError,
)
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.testing.tmpfs import tmpfs

from .conftest import blob_count, event_count

pytestmark = pytest.mark.integration


@pytest.fixture
def unchanged(store: ArtifactStore) -> Iterator[None]:
    """Asserts that the test wrote no event and no blob."""
    store.put("existing/pkg", {"f": b"already here"})
    events, blobs = event_count(store), blob_count(store)
    yield
    assert (event_count(store), blob_count(store)) == (events, blobs)


BAD_PATHS = [
    ("/etc/passwd", "absolute"),
    ("a/../b", "'..'"),
    ("../b", "'..'"),
    ("a//b", "empty segment"),
    ("a/", "empty segment"),
    ("a\\b", "backslash"),
    ("a\x00b", "NUL"),
    ("./a", "'.'"),
]


@pytest.mark.parametrize(("path", "message"), BAD_PATHS)
def test_bad_file_paths(store: ArtifactStore, unchanged: None, path: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.put("bad/paths", {"ok.txt": b"fine", path: b"x"})


def test_repeated_path_in_one_package(
    store: ArtifactStore, unchanged: None, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "same.txt").write_text("1")
    (tmp_path / "b" / "same.txt").write_text("2")
    with pytest.raises(InvalidInputError, match=r"'same.txt' appears more than once"):
        store.put("dup", [tmp_path / "a" / "same.txt", tmp_path / "b" / "same.txt"])


def test_package_with_no_files(store: ArtifactStore, unchanged: None, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="at least one file"):
        store.put("empty", {})
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(InvalidInputError, match="contains no files"):
        store.put("empty", tmp_path / "empty-dir")


def test_unknown_retention_class(store: ArtifactStore, unchanged: None) -> None:
    with pytest.raises(InvalidInputError, match=r"unknown retention class 'forever'.*transient"):
        store.put("x", {"f": b"1"}, retention_class="forever")


def test_unknown_kind(store: ArtifactStore, unchanged: None) -> None:
    with pytest.raises(InvalidInputError, match=r"unknown kind 'spreadsheet'"):
        store.put("x", {"f": b"1"}, kind="spreadsheet")


def test_metadata_violating_schema_names_the_field(store: ArtifactStore) -> None:
    store.register_schema(
        "report",
        {
            "type": "object",
            "properties": {
                "period": {"type": "object", "properties": {"days": {"type": "integer"}}}
            },
        },
    )
    events, blobs = event_count(store), blob_count(store)
    with pytest.raises(SchemaViolationError, match=r"field 'period.days'.*not of type 'integer'"):
        store.put("x", {"f": b"1"}, kind="report", metadata={"period": {"days": "seven"}})
    assert (event_count(store), blob_count(store)) == (events, blobs)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"when": dt.datetime(2026, 1, 1)}, r"metadata\.when is a datetime"),
        ({"nested": {"x": {1, 2}}}, r"metadata\.nested\.x is a set"),
        ({"ratio": float("nan")}, r"metadata\.ratio is nan"),
        ({1: "int key"}, "non-text key 1"),
        (["not", "an", "object"], "must be a JSON object"),
    ],
)
def test_metadata_not_json(
    store: ArtifactStore, unchanged: None, metadata: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.put("x", {"f": b"1"}, metadata=metadata)


@pytest.mark.parametrize(
    ("reference", "error", "message"),
    [
        ("nothing/here", NotFoundError, "no package matches reference 'nothing/here'"),
        ("existing/pkg@7", NotFoundError, "existing/pkg@7"),
        ("existing/pkg:prod", NotFoundError, "existing/pkg:prod"),
        ("existing/pkg@zero", InvalidInputError, "invalid version"),
        ("blake3:1234", InvalidInputError, "invalid digest reference"),
        ("bad name!", InvalidInputError, "invalid package name"),
    ],
)
def test_references_that_match_nothing(
    store: ArtifactStore,
    unchanged: None,
    reference: str,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        store.describe(reference)
    with pytest.raises(error, match=message):
        store.put("uses/input", {"f": b"1"}, inputs=[reference])


def test_ambiguous_reference(store: ArtifactStore) -> None:
    a = store.put("twin/a", {"f": b"same"})
    store.put("twin/b", {"f": b"same"})
    events = event_count(store)
    with pytest.raises(AmbiguousReferenceError, match=r"matches 2 packages \(twin/a@1, twin/b@1\)"):
        store.get(a.content_address)
    assert event_count(store) == events


def test_directory_where_a_file_is_expected(
    store: ArtifactStore, unchanged: None, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="is a directory, expected a file"):
        store.put("x", {"report.csv": tmp_path})


def test_missing_file(store: ArtifactStore, unchanged: None, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        store.put("x", {"report.csv": tmp_path / "nope.csv"})


def test_bytes_not_matching_expected_digest(store: ArtifactStore, unchanged: None) -> None:
    promised = hash_bytes(b"promised")
    with pytest.raises(IntegrityError, match=promised.content_address):
        store.put("x", {"f": io.BytesIO(b"delivered")}, expected={"f": promised.content_address})
    with pytest.raises(IntegrityError, match=str(promised.sha256)):
        store.put("x", {"f": b"delivered"}, expected={"f": str(promised.sha256)})


def test_expected_digest_that_matches_is_accepted(store: ArtifactStore) -> None:
    data = b"exact"
    package = store.put("x", {"f": data}, expected={"f": hash_bytes(data).content_address})
    assert package.files[0].blob == hash_bytes(data)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.put("", {"f": b"1"}),
        lambda s: s.put("a/../b", {"f": b"1"}),
        lambda s: s.put("x", {"f": b"1"}, expected={"g": "blake3:" + "0" * 64}),
        lambda s: s.put("x", {"f": b"1"}, expected={"f": "md5:abc"}),
        lambda s: s.put("x", "a string is ambiguous"),
        lambda s: s.put("x", {"f": 12}),
        lambda s: s.tag("existing/pkg", "latest"),
        lambda s: s.tag("existing/pkg", "bad tag"),
        lambda s: s.register_schema("report", {"type": "no-such-type"}),
        lambda s: s.register_schema("Bad Kind", {"type": "object"}),
        lambda s: s.lineage("existing/pkg", depth=0),
    ],
)
def test_other_invalid_calls(
    store: ArtifactStore, unchanged: None, call: Callable[[ArtifactStore], object]
) -> None:
    with pytest.raises(InvalidInputError):
        call(store)


# --------------------------------------------------------------------------- issue #11
# Nothing the registry accepts may make its log unreadable; every bad value is refused at
# the door with a typed, one-line error naming it, and nothing is recorded.


def nested(depth: int, leaf: Any = 1) -> Any:
    """A JSON value ``depth`` levels of maps deep (built without recursion)."""
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def replays(store: ArtifactStore) -> None:
    """The log reads back and replays into the views it produced."""
    store.events()
    assert store.check_views() == []
    store.rebuild_views()
    assert store.check_views() == []


def test_metadata_at_the_depth_limit_is_stored_and_replays(store: ArtifactStore) -> None:
    store.put("deep/ok", {"f": b"1"}, metadata=nested(63))
    store.put("deep/ok", {"f": b"2"}, provenance={"attributes": nested(63)})
    replays(store)
    assert store.describe("deep/ok@1").metadata == nested(63)


@pytest.mark.parametrize("depth", [65, 400, 970, 5000])
def test_deep_metadata_is_refused_and_the_log_stays_readable(
    store: ArtifactStore, unchanged: None, depth: int
) -> None:
    with pytest.raises(InvalidInputError, match="metadata is nested deeper than 64 levels"):
        store.put("deep/bad", {"f": b"1"}, metadata=nested(depth))
    with pytest.raises(InvalidInputError, match=r"provenance.* nested deeper than 64 levels"):
        store.put("deep/bad", {"f": b"1"}, provenance={"attributes": nested(depth)})
    with pytest.raises(InvalidInputError, match="nested deeper than 64 levels"):
        store.register_schema("report", {"type": "object", "properties": nested(depth, {})})
    replays(store)


NUL, SURROGATE = "a\x00b", "a\udc80b"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, t: s.put("x", {"f": b"1"}, metadata={"v": t}), r"metadata\.v contains|metadata\.v is not valid"),  # noqa: E501
        (lambda s, t: s.put("x", {"f": b"1"}, metadata={t: 1}), "metadata key"),
        (lambda s, t: s.put("x", {"f": b"1"}, metadata={"l": [1, {"z": t}]}), r"metadata\.l\[1\]\.z"),  # noqa: E501
        (lambda s, t: s.put("x", {"f": b"1"}, provenance={"run_id": t}), "provenance.run_id"),
        (lambda s, t: s.put("x", {"f": b"1"}, provenance={"attributes": {"a": t}}), "provenance"),
        (lambda s, t: s.put("x", {"f": b"1"}, retention_class=t), "retention class name"),
        (lambda s, t: s.put("x", {"f": b"1"}, actor=t), "actor"),
        (lambda s, t: s.put("x", {f"dir/{t}.txt": b"1"}), "file path"),
        (lambda s, t: s.put(f"x/{t}", {"f": b"1"}), "package name"),
        (lambda s, t: s.put("x", {"f": b"1"}, inputs=[f"existing/{t}"]), "reference"),
        (lambda s, t: s.place_hold("existing/pkg", reason=t), "HoldPlaced.reason"),
        (lambda s, t: s.place_hold("existing/pkg", reason="r", actor=t), "actor"),
        (lambda s, t: s.set_retention("existing/pkg", retention_class=t), "retention class name"),
        (lambda s, t: s.set_retention("existing/pkg", retention_class="permanent-record", reason=t), "reason"),  # noqa: E501
        (lambda s, t: s.register_schema("report", {"description": t}), "schema"),
        (lambda s, t: s.get("existing/pkg", purpose=t), "purpose"),
        (lambda s, t: s.describe(f"existing/{t}"), "reference"),
        (lambda s, t: s.list_packages(name_prefix=t), "prefix"),
        (lambda s, t: s.events(subject_kind="package", subject_id=t), "subject id"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("text", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_nul_and_lone_surrogates_are_refused_on_every_backend(
    store: ArtifactStore,
    unchanged: None,
    call: Callable[[ArtifactStore, str], object],
    message: str,
    text: str,
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(store, text)
    replays(store)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.put("x", {"f": b"1"}, metadata={"n": 2**64}), r"metadata\.n is 18446744073709551616"),  # noqa: E501
        (lambda s: s.put("x", {"f": b"1"}, metadata={"n": [-(2**63) - 1]}), r"metadata\.n\[0\]"),
        (lambda s: s.put("x", {"f": b"1"}, metadata={"n": 10**5000}), "integer of 16610 bits"),
        (lambda s: s.put("x", {"f": b"1"}, metadata={"s": "x" * 1_100_000}), "the limit is 1,048,576"),  # noqa: E501
        (lambda s: s.put("x", {"f": b"1"}, provenance={"inputs": "existing/pkg"}), "provenance inputs"),  # noqa: E501
        (lambda s: s.put("x", {"f": b"1"}, provenance={"attributes": [1]}), "provenance attributes"),  # noqa: E501
        (lambda s: s.put("x", {"f": b"1"}, provenance={"producer": 7}), "provenance producer"),
        (lambda s: s.put("x", {"f": b"1"}, inputs="existing/pkg"), "inputs must be a list"),
        (lambda s: s.describe("existing/pkg@99999999999999999999999"), "outside 1..9223372036854775807"),  # noqa: E501
        (lambda s: s.describe("existing/pkg@" + "9" * 5000), "reference is longer than 712"),
        (lambda s: s.describe("p@" + "9" * 600), "outside 1..9223372036854775807"),
        (lambda s: s.describe("existing/pkg@²"), "invalid version"),
        (lambda s: s.describe("x" * 10_000), "longer than"),
        (lambda s: s.set_retention("existing/pkg", expires_at=dt.datetime.fromisoformat("0001-01-01T00:00:00+05:00")), "outside the supported range"),  # noqa: E501
        (lambda s: s.set_retention("existing/pkg", expires_at=dt.datetime.fromisoformat("9999-12-31T23:59:59-05:00")), "outside the supported range"),  # noqa: E501
        (lambda s: s.sweep(dt.datetime.fromisoformat("9999-12-31T23:59:59-05:00")), "outside the supported range"),  # noqa: E501
        (lambda s: s.sweep(dt.datetime.fromisoformat("0001-01-01T00:00:00+05:00")), "outside the supported range"),  # noqa: E501
    ],
)  # fmt: skip
def test_out_of_range_values_are_refused(
    store: ArtifactStore, unchanged: None, call: Callable[[ArtifactStore], object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(store)
    replays(store)


def test_schema_with_a_remote_ref_is_refused(store: ArtifactStore) -> None:
    remote = {"type": "object", "properties": {"a": {"$ref": "https://example.invalid/a.json"}}}
    with pytest.raises(InvalidInputError, match=r"refers to 'https://example.invalid/a.json'"):
        store.register_schema("report", remote)
    local = {"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"}}}
    store.register_schema("report", local)
    with pytest.raises(SchemaViolationError, match="field 'a'"):
        store.put("x", {"f": b"1"}, kind="report", metadata={"a": "text"})


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pattern", ["^(a+)+$", "^(a|aa)+$", "^(\\w+\\s?)*$", "(.)\\1"])
def test_schema_pattern_that_backtracks_is_refused(
    store: ArtifactStore, unchanged: None, pattern: str
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}}
    with pytest.raises(
        InvalidInputError, match=rf"kind 'report' has pattern {re.escape(repr(pattern))}, refused"
    ):
        store.register_schema("report", schema)


@pytest.mark.timeout(20)
def test_put_against_a_logged_backtracking_pattern_does_not_hang(store: ArtifactStore) -> None:
    """A schema registered before the check (forged straight into the log) cannot hang a put."""
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a+)+$"}}}
    forge(store, "MetadataSchemaRegistered", {"kind": "report", "json_schema": schema})
    store.rebuild_views()
    with pytest.raises(InvalidInputError, match=r"pattern '\^\(a\+\)\+\$', refused"):
        store.put("x", {"f": b"1"}, kind="report", metadata={"a": "a" * 40 + "!"})
    safe = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(?>a+)+$"}}}
    store.register_schema("report", safe)
    with pytest.raises(SchemaViolationError, match="field 'a'"):
        store.put("x", {"f": b"1"}, kind="report", metadata={"a": "a" * 40 + "!"})


# --------------------------------------------------------------------------- forged events


def forge(store: ArtifactStore, event_type: str, payload: dict[str, Any]) -> int:
    """Append an event whose payload is well chained (``log verify`` passes) but whose
    content the application never wrote; its sequence."""
    from artifactstore_core.domain.merkle import leaf_hash
    from artifactstore_core.eventlog import codec
    from artifactstore_core.eventlog.chain import EventHeader, chain_input, input_digest
    from artifactstore_core.schema import events

    data = codec.encode(payload)
    with store.engine.begin() as conn:
        head = conn.execute(
            sa.select(events.c.sequence, events.c.chain_digest).order_by(events.c.sequence.desc())
        ).first()
        sequence, previous = (head.sequence + 1, head.chain_digest) if head else (1, None)
        row = {
            "sequence": sequence, "created_at": dt.datetime.now(dt.UTC),
            "event_type": event_type, "schema_version": 1, "subject_kind": "package",
            "subject_id": "forged", "actor": "mallory", "payload": data,
            "payload_digest": codec.payload_digest(data), "previous_digest": previous,
        }  # fmt: skip
        chained = chain_input(previous, EventHeader.from_row(row))
        row["chain_digest"], row["leaf_hash"] = input_digest(chained), leaf_hash(chained)
        conn.execute(events.insert().values(**row))
    return sequence


def _registered(store: ArtifactStore) -> dict[str, Any]:
    payload = next(
        e.event.to_payload() for e in store.events() if e.event.event_type == "PackageRegistered"
    )
    payload["package_id"] = str(uuid.uuid4())
    payload["name"] = "forged/pkg"
    return payload


FORGERIES: list[tuple[str, str, Callable[[dict[str, Any]], dict[str, Any]], str]] = [
    ("PackageRegistered", "version as text", lambda p: {**p, "version": "one"}, "field 'version'"),
    ("PackageRegistered", "missing field", lambda p: {k: v for k, v in p.items() if k != "files"}, "field 'files' is missing"),  # noqa: E501
    ("PackageRegistered", "files not maps", lambda p: {**p, "files": ["a"]}, "field 'files'"),
    ("PackageRegistered", "file size text", lambda p: {**p, "files": [{**p["files"][0], "size": "9"}]}, r"files\[0\]\.size"),  # noqa: E501
    ("PackageRegistered", "huge file size", lambda p: {**p, "files": [{**p["files"][0], "size": 2**64}]}, r"files\[0\]\.size"),  # noqa: E501
    ("PackageRegistered", "huge version", lambda p: {**p, "version": 2**70}, "field 'version'"),
    ("PackageRegistered", "metadata a list", lambda p: {**p, "metadata": [1]}, "field 'metadata'"),
    ("TagMoved", "tag as list", lambda p: {"package_id": p["package_id"], "name": "n", "tag": ["x"]}, "field 'tag'"),  # noqa: E501
    ("HoldReleased", "no hold id", lambda p: {"package_id": p["package_id"]}, "field 'hold_id' is missing"),  # noqa: E501
    ("HoldReleased", "remaining as bool", lambda p: {"package_id": p["package_id"], "hold_id": "h", "holds_remaining": "2"}, "field 'holds_remaining'"),  # noqa: E501
    ("BlobStored", "size as float", lambda p: {"content_address": "blake3:" + "0" * 64, "backend": "hot", "digest_sha256": "0" * 64, "size": 1.5, "uri": "u"}, "field 'size'"),  # noqa: E501
]  # fmt: skip
#: Well typed but meaningless values: readable as events, refused when projected.
UNPROJECTABLE: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str]] = [
    ("bad package id", lambda p: {**p, "package_id": "not-a-uuid"}, "badly formed hexadecimal UUID"),  # noqa: E501
    ("bad expiry", lambda p: {**p, "expires_at": "tomorrow"}, "Invalid isoformat"),
    ("bad input id", lambda p: {**p, "provenance": {**p["provenance"], "inputs": [5]}}, "Error"),
]  # fmt: skip


def _assert_replay_fails(store: ArtifactStore, expected: str) -> None:
    with pytest.raises(IntegrityError, match=expected):
        store.rebuild_views()
    with pytest.raises(IntegrityError, match=expected):
        store.check_views()
    assert store.describe("real/pkg").version == 1  # the views were left as they were


@pytest.mark.parametrize(
    ("event_type", "change", "message"),
    [(t, c, m) for t, _, c, m in FORGERIES],
    ids=[what for _, what, _, _ in FORGERIES],
)
def test_forged_well_chained_payload_is_a_typed_integrity_error(
    store: ArtifactStore,
    event_type: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    message: str,
) -> None:
    store.put("real/pkg", {"f": b"1"})
    sequence = forge(store, event_type, change(_registered(store)))
    assert store.verify_log().checked == sequence  # the chain itself is intact
    expected = rf"event {sequence} \({event_type}\) has a malformed payload: .*{message}"
    with pytest.raises(IntegrityError, match=expected):
        store.events()
    _assert_replay_fails(store, expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [(c, m) for _, c, m in UNPROJECTABLE],
    ids=[w for w, _, _ in UNPROJECTABLE],
)
def test_forged_values_that_cannot_be_projected(
    store: ArtifactStore, change: Callable[[dict[str, Any]], dict[str, Any]], message: str
) -> None:
    store.put("real/pkg", {"f": b"1"})
    sequence = forge(store, "PackageRegistered", change(_registered(store)))
    assert store.events()[-1].sequence == sequence  # readable: the types are right
    _assert_replay_fails(
        store, rf"event {sequence} \(PackageRegistered\) cannot be projected: .*{message}"
    )


# --------------------------------------------------------------------------- the CLI


class Cli:
    """The ``artifactstore`` command in process, on a SQLite registry in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            "ARTIFACTSTORE_DATABASE_URL": f"sqlite:///{root / 'r.db'}",
            "ARTIFACTSTORE_STORAGE_URL": str(root / "blobs"),
        }
        (root / "f.txt").write_text("content")

    def __call__(self, *args: str, input: bytes | None = None) -> Result:
        return CliRunner().invoke(cli_command, list(args), env=self.env, input=input)

    def events(self) -> int:
        with ArtifactStore.open(self.env["ARTIFACTSTORE_DATABASE_URL"], ":memory:") as store:
            return event_count(store)

    def fails(self, code: int, *args: str, input: bytes | None = None) -> str:
        """Run ``args``; expect exit ``code``, one error line, no traceback, nothing recorded.
        The error line."""
        before = self.events()
        result = self(*args, input=input)
        assert result.exit_code == code, (args, result.output, result.exception)
        assert isinstance(result.exception, SystemExit | None), repr(result.exception)
        assert "Traceback" not in result.output
        lines = result.stderr.strip().splitlines()
        assert lines, result.output
        if lines[-1].startswith("Error: "):  # click's own usage errors: usage, hint, error
            assert code == 2
        else:
            assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert self.events() == before
        return lines[-1]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    runner = Cli(tmp_path)
    assert runner("put", "existing/pkg", str(tmp_path / "f.txt")).exit_code == 0
    return runner


def _file(root: Path, name: str, data: str | bytes) -> str:
    path = root / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


DEEP_JSON = '{"a":' * 5000 + "1" + "}" * 5000


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--metadata", DEEP_JSON), "--metadata is nested too deeply"),
        (("--metadata", '{"a": ' + "1" * 5000 + "}"), "--metadata is not acceptable JSON"),
        (("--metadata", '{"a": 99999999999999999999999}'), r"metadata\.a is 99999999999999999999999"),  # noqa: E501
        (("--metadata", '{"a": "\\u0000"}'), r"metadata\.a contains a NUL"),
        (("--metadata", '{"a": "\\udc80"}'), r"metadata\.a is not valid Unicode"),
        (("--metadata", "@/dev/zero"), "larger than the limit of 16,777,216 bytes"),
        (("--retention-class", "raw\x00evidence"), "retention class name contains a NUL"),
        (("--run-id", "r\udc80"), "provenance.run_id is not valid Unicode"),
        (("--input", "existing/pkg@99999999999999999999999"), "outside 1..9223372036854775807"),
    ],
)  # fmt: skip
def test_cli_put_refuses_bad_values_in_one_line(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    line = cli.fails(2, "put", "new/pkg", str(cli.root / "f.txt"), *args)
    assert re.search(message, line), line


def test_cli_metadata_file_that_is_not_utf8(cli: Cli) -> None:
    path = _file(cli.root, "m.json", b'{"a": "\xff"}')
    assert "is not UTF-8 text" in cli.fails(
        2, "put", "x", str(cli.root / "f.txt"), "--metadata", f"@{path}"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "existing/pkg@99999999999999999999999"), "outside 1..9223372036854775807"),
        (("get", "existing/pkg@99999999999999999999999", "out"), "outside 1..9223372036854775807"),
        (("events", "--since", "99999999999999999999999"), "99999999999999999999999 is not in the range"),  # noqa: E501
        (("events", "--since", "9" * 5000), "is not a valid integer"),
        (("events", "--limit", "99999999999999999999999"), "is not in the range"),
        (("events", "--subject", "package:\x00"), "subject id contains a NUL"),
        (("ls", "--limit", "99999999999999999999999"), "is not in the range"),
        (("ls", "pre\x00fix"), "filter name_prefix contains a NUL"),
        (("ls", "--created-after", "0001-01-01T00:00:00+05:00"), "outside the supported range"),
        (("retention", "set", "existing/pkg", "--expires-at", "0001-01-01T00:00:00+05:00"), "--expires-at 0001-01-01T00:00:00\\+05:00 is outside"),  # noqa: E501
        (("retention", "set", "existing/pkg", "--expires-at", "9999-12-31T23:59:59-05:00"), "outside the supported range"),  # noqa: E501
        (("retention", "sweep", "--now", "9999-12-31T23:59:59-05:00"), "--now 9999-12-31T23:59:59-05:00 is outside"),  # noqa: E501
        (("retention", "sweep", "--grace-seconds", str(10**15)), "is not in the range"),
        (("retention", "explain", "existing/pkg", "--now", "0001-01-01T00:00:00+05:00"), "outside"),
        (("hold", "existing/pkg", "--reason", "r\x00"), "HoldPlaced.reason contains a NUL"),
        (("tag", "existing/pkg", "t\udc80"), "invalid tag"),
        (("lineage", "existing/pkg", "--depth", "99999999999999999999999"), "is not in the range"),
        (("--actor", "a\x00", "hold", "existing/pkg", "--reason", "r"), "actor contains a NUL"),
    ],
)  # fmt: skip
def test_cli_refuses_bad_arguments_in_one_line(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    line = cli.fails(2, *args)
    assert re.search(message, line), line


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("document", "message"),
    [
        (DEEP_JSON, "is nested too deeply"),
        ('{"properties": ' * 100 + "{}" + "}" * 100, "nested deeper than 64 levels"),
        ('{"$ref": "https://example.invalid/s.json"}', "refers to 'https://example.invalid/s.json'"),
        ('{"properties": {"a": {"pattern": "^(a+)+$"}}}', r"pattern '\^\(a\+\)\+\$', refused"),
        ('{"description": "\\u0000"}', "contains a NUL"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
        ('{"maximum": ' + "9" * 5000 + "}", "not acceptable JSON"),
    ],
)  # fmt: skip
def test_cli_schema_set_refuses_bad_documents(
    cli: Cli, document: str | bytes, message: str
) -> None:
    line = cli.fails(2, "schema", "set", "report", _file(cli.root, "s.json", document))
    assert re.search(message, line), line


@pytest.mark.timeout(60)
def test_cli_schema_set_from_dev_zero_is_bounded(cli: Cli) -> None:
    assert "larger than the limit" in cli.fails(2, "schema", "set", "report", "/dev/zero")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('{"name": 1, "paths": ["f.txt"]}', 'needs "name"'),
        ('{"name": "n", "paths": [1]}', r"paths\[0\] must be text"),
        ('{"name": "n", "paths": ["f.txt"], "kind": 5}', "'kind' must be str"),
        ('{"name": "n", "paths": ["f.txt"], "metadata": [1]}', "'metadata' must be dict or null"),
        ('{"name": "n", "paths": ["f.txt"], "inputs": "existing/pkg"}', "'inputs' must be list"),
        ('{"name": "n", "paths": ["f.txt"], "run_id": 7}', "'run_id' must be str or null"),
        ('{"name": "n", "paths": ["f\\u0000.txt"]}', "contains a NUL"),
        ('{"name": "n", "paths": ["f.txt"], "metadata": ' + DEEP_JSON + "}", "spec line 1 is nested too deeply"),  # noqa: E501
        (b'{"name": "n\xff", "paths": ["f.txt"]}', "spec line 1 is not UTF-8 text"),
    ],
)  # fmt: skip
def test_cli_put_many_refuses_bad_spec_lines(cli: Cli, spec: str | bytes, message: str) -> None:
    path = _file(cli.root, "spec.jsonl", spec)
    with contextlib.chdir(cli.root):
        line = cli.fails(2, "put-many", path)
    assert re.search(message, line), line


@pytest.mark.timeout(60)
def test_cli_put_many_from_dev_zero_is_bounded(cli: Cli) -> None:
    assert "longer than 16,777,216 bytes" in cli.fails(2, "put-many", "/dev/zero")


def test_cli_database_url_that_is_not_a_database(cli: Cli, tmp_path: Path) -> None:
    text = _file(tmp_path, "notes.txt", "these are notes, not a database\n" * 200)
    line = cli.fails(2, "--database-url", f"sqlite:///{text}", "ls")
    assert "notes.txt" in line and "not a database" in line, line
    assert Path(text).read_text().startswith("these are notes")


@pytest.mark.parametrize(
    "url", ["sqlite:////proc/self/nonexistent/r.db", "sqlite:///{root}/f.txt/r.db"]
)
def test_cli_database_url_at_an_unreachable_path(cli: Cli, url: str) -> None:
    line = cli.fails(2, "--database-url", url.format(root=cli.root), "ls")
    assert "r.db" in line, line


def test_cli_forged_payload_is_an_integrity_failure(cli: Cli) -> None:
    with ArtifactStore.open(cli.env["ARTIFACTSTORE_DATABASE_URL"], ":memory:") as store:
        sequence = forge(store, "PackageRegistered", {**_registered(store), "version": "one"})
    assert cli("log", "verify").exit_code == 0
    for args in (("events",), ("events", "--json"), ("views", "rebuild"), ("views", "check")):
        line = cli.fails(1, *args)
        assert f"event {sequence} (PackageRegistered) has a malformed payload" in line, line
    assert cli("show", "existing/pkg").exit_code == 0


# --------------------------------------------------------------------------- the blob store


@contextlib.contextmanager
def blob_store_that_fails(root: Path, failure: str) -> Iterator[Path]:
    """A blob directory where writes fail with ``failure``: ``full`` (ENOSPC on a small
    tmpfs; EFBIG from a file-size limit where mounting is not permitted) or ``read-only``
    (EROFS on a read-only tmpfs; EACCES from a read-only directory otherwise)."""
    path = root / f"blobs-{failure}"
    path.mkdir()
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    signal_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with tmpfs(path, read_only=failure != "full") as not_mounted:
            if not_mounted and failure == "full":
                resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, limit[1]))
            elif not_mounted:
                path.chmod(0o500)
            yield path
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, signal_handler)
        path.chmod(0o700)


@pytest.mark.parametrize(
    ("failure", "errors"),
    [
        ("full", ("No space left on device", "File too large")),
        ("read-only", ("Read-only file system", "Permission denied")),
    ],
)
def test_cli_put_on_a_failing_blob_store(
    cli: Cli, tmp_path: Path, failure: str, errors: tuple[str, ...]
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    with blob_store_that_fails(tmp_path, failure) as blobs:
        line = cli.fails(1, "--storage-url", str(blobs), "put", "big/pkg", str(big))
        assert any(error in line for error in errors), line
        assert not [p for p in blobs.rglob("*") if p.is_file()]  # no partial blob left


def test_cli_put_where_a_shard_directory_is_a_file(cli: Cli, tmp_path: Path) -> None:
    blobs = tmp_path / "clash"
    blobs.mkdir()
    (blobs / "blake3").write_text("a file where the blake3/ directory belongs")
    line = cli.fails(1, "--storage-url", str(blobs), "put", "x/pkg", str(tmp_path / "f.txt"))
    assert "blake3" in line, line
    file = str(tmp_path / "f.txt")
    line = cli.fails(2, "--storage-url", file, "put", "x/pkg", file)
    assert "is not a directory" in line, line


def test_file_name_that_is_not_utf8_is_refused(
    store: ArtifactStore, unchanged: None, tmp_path: Path
) -> None:
    directory = tmp_path / "tree"
    directory.mkdir()
    (directory / "fine.txt").write_text("1")
    with open(os.path.join(os.fsencode(directory), b"caf\xe9.txt"), "wb") as file:
        file.write(b"2")
    with pytest.raises(InvalidInputError, match=r"file path 'caf\\udce9.txt'.* not valid Unicode"):
        store.put("tree", directory)
    replays(store)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (EventLogTamperedError(3, "payload"), 1),
        (IntegrityError("digest mismatch"), 1),
        (OSError(28, "No space left on device"), 1),
        (InvalidInputError("bad"), 2),
        (SchemaViolationError("bad"), 2),
        (NotFoundError("none"), 2),
        (ConfigurationError("setting"), 2),
        (BackendUnavailableError("down"), 2),
    ],
)
def test_cli_exit_codes_come_from_one_mapping(error: Exception, code: int) -> None:
    assert exit_code(error) == code


def test_console_script_prints_one_line_and_the_mapped_exit_code(cli: Cli) -> None:
    """The installed ``artifactstore`` script, as a user runs it."""
    script = Path(sys.executable).parent / "artifactstore"
    env = {**os.environ, **cli.env}
    with ArtifactStore.open(cli.env["ARTIFACTSTORE_DATABASE_URL"], ":memory:") as store:
        sequence = forge(store, "TagMoved", {"package_id": str(uuid.uuid4()), "name": "n"})
    for args, code, message in [
        (["put", "x", "f.txt", "--metadata", DEEP_JSON], 2, "--metadata is nested too deeply"),
        (["show", "existing/pkg@99999999999999999999999"], 2, "outside 1..9223372036854775807"),
        (["events"], 1, f"event {sequence} (TagMoved) has a malformed payload"),
    ]:
        result = subprocess.run(
            [str(script), *args], capture_output=True, text=True, env=env, cwd=cli.root
        )
        assert result.returncode == code, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_provenance_inputs_are_references_resolved_like_inputs(store: ArtifactStore) -> None:
    """Provenance ``inputs`` reached the projector unresolved: a name raised a bare
    ``ValueError`` there, and an upper-case id was recorded beside its lower-case form."""
    raw = store.put("existing/pkg", {"f": b"already here"})
    events, blobs = event_count(store), blob_count(store)
    with pytest.raises(NotFoundError, match="no package matches reference 'not-a-uuid'"):
        store.put("x/y", {"f": b"1"}, provenance={"inputs": ["not-a-uuid"]})
    assert (event_count(store), blob_count(store)) == (events, blobs)
    made = store.put(
        "x/y", {"f": b"1"}, inputs=[raw.id],
        provenance={"inputs": [str(raw.id).upper(), "existing/pkg@1"]},
    )  # fmt: skip
    assert made.provenance.inputs == (str(raw.id),)
    replays(store)
