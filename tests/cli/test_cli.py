"""The ``artifactstore`` console script, run as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from artifactstore_core.seed import RETENTION_CLASS_SEEDS

pytestmark = pytest.mark.integration

SCRIPT = shutil.which("artifactstore", path=str(Path(sys.executable).parent)) or "artifactstore"


class Cli:
    def __init__(self, database_url: str, storage: Path, cwd: Path) -> None:
        self.env = {
            **os.environ,
            "ARTIFACTSTORE_DATABASE_URL": database_url,
            "ARTIFACTSTORE_STORAGE_URL": str(storage),
            "ARTIFACTSTORE_ACTOR": "cli-test",
        }
        self.cwd = cwd
        self.database_url = database_url

    def __call__(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [SCRIPT, *args], capture_output=True, text=True, env=self.env, cwd=self.cwd, check=False
        )
        assert result.returncode == expect, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url, tmp_path / "blobs", tmp_path)


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "blobs", tmp_path)


def _bundle(root: Path) -> Path:
    (root / "bundle" / "sub").mkdir(parents=True)
    (root / "bundle" / "report.csv").write_text("a,b\n1,2\n")
    (root / "bundle" / "sub" / "log.txt").write_text("log line\n")
    return root / "bundle"


def test_put_show_get_ls_lineage_on_each_database(cli: Cli, tmp_path: Path) -> None:
    cli("migrate")
    bundle = _bundle(tmp_path)
    raw = cli.json("put", "raw/logs", str(bundle / "sub" / "log.txt"), "--kind", "log")
    assert isinstance(raw, dict)
    put = cli.json(
        "put", "reports/daily", str(bundle), "--kind", "report",
        "--retention-class", "summary-evidence", "--metadata", '{"rows": 1}',
        "--input", "raw/logs", "--run-id", "run-42",
    )  # fmt: skip
    assert isinstance(put, dict)
    for key in ("id", "name", "version", "kind", "content_address", "digest_sha256", "size",
                "created_at", "retention_class", "expires_at", "tags", "metadata", "provenance",
                "files"):  # fmt: skip
        assert key in put, key
    assert put["provenance"]["inputs"] == [raw["id"]]
    assert put["provenance"]["run_id"] == "run-42"
    assert [f["path"] for f in put["files"]] == ["report.csv", "sub/log.txt"]
    assert set(put["files"][0]) >= {"path", "content_address", "digest_sha256", "size"}
    assert cli.json("show", "reports/daily@1") == put
    human = cli("show", "reports/daily").stdout
    assert "summary-evidence" in human and "report.csv" in human

    cli("get", "reports/daily", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "log.txt").read_text() == "log line\n"
    cli("get", "reports/daily", str(tmp_path / "out"), expect=2)
    cli("get", "reports/daily", str(tmp_path / "out"), "--force")

    listed = cli.json("ls", "reports/")
    assert isinstance(listed, list) and [p["name"] for p in listed] == ["reports/daily"]
    assert "reports/daily@1" in cli("ls").stdout
    lineage = cli.json("lineage", "reports/daily")
    assert isinstance(lineage, dict) and lineage["edges"][0]["input_id"] == raw["id"]
    assert "raw/logs@1" in cli("lineage", "raw/logs", "--downstream").stdout.replace(
        "reports/daily@1", "raw/logs@1"
    )
    cli("tag", "reports/daily@1", "production")
    assert cli.json("show", "reports/daily:production")["tags"] == ["latest", "production"]  # type: ignore[index]
    cli("tag", "reports/daily@1", "staging")
    assert cli.json("untag", "reports/daily", "staging")["version"] == 1  # type: ignore[index]
    cli("show", "reports/daily:staging", expect=2)
    assert "OK" in cli("verify", "--all").stdout
    assert "OK" in cli("log", "verify").stdout
    assert "OK" in cli("views", "check").stdout
    types = [e["event_type"] for e in cli.json("events")]  # type: ignore[union-attr]
    assert types.count("PackageRegistered") == 2 and "PackageRetrieved" in types


def test_integrity_failures_exit_1(sqlite_cli: Cli, tmp_path: Path) -> None:
    put = sqlite_cli.json("put", "x/y", str(_bundle(tmp_path)))
    assert isinstance(put, dict)
    address = put["files"][0]["content_address"].split(":")[1]
    blob = tmp_path / "blobs" / "blake3" / address[:2] / address[2:4] / address
    blob.write_bytes(b"changed behind our back")
    result = sqlite_cli("verify", "x/y", expect=1)
    assert "CORRUPT" in result.stderr and put["files"][0]["content_address"] in result.stderr
    sqlite_cli("get", "x/y", str(tmp_path / "out"), expect=1)
    assert not (tmp_path / "out" / "report.csv").exists()

    engine = sa.create_engine(sqlite_cli.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET actor = 'mallory' WHERE sequence = 2"))
    result = sqlite_cli("log", "verify", expect=1)
    assert "sequence 2" in result.stderr

    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE artifact_packages SET kind = 'log'"))
    result = sqlite_cli("views", "check", expect=1)
    assert "DIFF artifact_packages" in result.stdout
    report = json.loads(sqlite_cli("views", "check", "--json", expect=1).stdout)
    assert report["ok"] is False
    assert "artifact_packages" in {difference["table"] for difference in report["differences"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("put", "x", "missing-file"), "does not exist"),
        (("put", "x", "bundle", "--retention-class", "forever"), "unknown retention class"),
        (("put", "x", "bundle", "--metadata", "{not json"), "not valid JSON"),
        (("put", "x", "bundle", "--metadata", "[1]"), "must be a JSON object"),
        (("put", "x", "bundle", "--kind", "nope"), "unknown kind"),
        (("show", "nothing"), "no package matches"),
        (("verify",), "REFERENCE or --all"),
        (("ls", "--created-after", "yesterday"), "not an ISO 8601 timestamp"),
        (("frobnicate",), "No such command"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    sqlite_cli: Cli, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    _bundle(tmp_path)
    sqlite_cli("migrate")
    engine = sa.create_engine(sqlite_cli.database_url)
    with engine.connect() as conn:
        recorded = conn.execute(sa.text("SELECT count(*) FROM events")).scalar()
    assert recorded == len(RETENTION_CLASS_SEEDS)  # `migrate` records the class definitions
    result = sqlite_cli(*args, expect=2)
    assert message in result.stderr + result.stdout
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar() == recorded
    assert not (tmp_path / "blobs" / "blake3").exists()


def test_schema_set_validates_metadata(sqlite_cli: Cli, tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["owner"]}))
    sqlite_cli("schema", "set", "evidence", str(schema))
    assert cli_json_keys(sqlite_cli) == ["evidence"]
    _bundle(tmp_path)
    result = sqlite_cli("put", "e/x", "bundle", "--kind", "evidence", expect=2)
    assert "'owner' is a required property" in result.stderr
    sqlite_cli("put", "e/x", "bundle", "--kind", "evidence", "--metadata", '{"owner": "me"}')


def cli_json_keys(cli: Cli) -> list[str]:
    value = cli.json("schema", "ls")
    assert isinstance(value, dict)
    return sorted(value)


def test_put_many_from_a_spec_all_or_nothing(cli: Cli, tmp_path: Path) -> None:
    _bundle(tmp_path)
    (tmp_path / "one.txt").write_text("one\n")
    good = [
        {"name": "many/a", "paths": ["one.txt"], "kind": "log", "run_id": "r-1"},
        {"name": "many/b", "paths": ["bundle"], "metadata": {"rows": 2}, "inputs": ["many/x"]},
    ]
    spec = tmp_path / "spec.jsonl"
    spec.write_text("\n".join(json.dumps(line) for line in good) + "\n")
    result = cli("put-many", str(spec), expect=2)  # many/x does not exist: nothing stored
    assert "many/x" in result.stderr
    assert cli.json("ls") == []
    good[1]["inputs"] = ["many/a"]  # a package of the same batch is not there yet either
    spec.write_text("\n".join(json.dumps(line) for line in good) + "\n")
    cli("put-many", str(spec), expect=2)
    del good[1]["inputs"]
    spec.write_text("\n".join(json.dumps(line) for line in good) + "\n\n")
    stored = cli.json("put-many", str(spec))
    assert isinstance(stored, list)
    assert [(p["name"], p["version"], p["kind"]) for p in stored] == [
        ("many/a", 1, "log"),
        ("many/b", 1, "output"),
    ]
    assert stored[0]["provenance"]["run_id"] == "r-1"
    assert sorted(f["path"] for f in stored[1]["files"]) == ["report.csv", "sub/log.txt"]
    shown = cli.json("show", "many/b")
    assert isinstance(shown, dict) and shown["metadata"] == {"rows": 2}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "spec line 1 is not valid JSON"),
        ('["a"]', "spec line 1 must be a JSON object"),
        ('{"name": "x/y", "paths": ["one.txt"], "colour": 1}', "unknown key(s) 'colour'"),
        ('{"name": "x/y"}', 'needs "name" (text) and "paths"'),
        ('{"name": "x/y", "paths": ["missing.txt"]}', "'missing.txt' does not exist"),
    ],
)
def test_put_many_names_the_bad_spec_line(
    sqlite_cli: Cli, tmp_path: Path, line: str, message: str
) -> None:
    (tmp_path / "one.txt").write_text("one\n")
    (tmp_path / "spec.jsonl").write_text(line + "\n")
    result = sqlite_cli("put-many", "spec.jsonl", expect=2)
    assert message in result.stderr
    assert sqlite_cli.json("ls") == []
