"""``artifactstore get``: refusals are one line with exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artifactstore_core.testing.tmpfs import tmpfs
from tests.cli.test_cli import Cli

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url, tmp_path / "blobs", tmp_path)


def refused(cli: Cli, *args: str) -> str:
    """The one-line error of a command that must exit 2."""
    result = cli(*args, expect=2)
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    return result.stderr


def test_get_refuses_symlinks_clashes_and_files_in_one_line(cli: Cli, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "sub").mkdir(parents=True)
    (bundle / "sub" / "log.txt").write_text("log\n")
    cli("put", "r/x", str(bundle))
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    message = refused(cli, "get", "r/x", str(dest), "--force")
    assert "symbolic link" in message and str(dest / "sub") in message
    assert list(outside.iterdir()) == []

    (tmp_path / "a-file").write_text("mine")
    message = refused(cli, "get", "r/x", str(tmp_path / "a-file"))
    assert "not a directory" in message and str(tmp_path / "a-file") in message

    assert cli("get", "r/x", str(tmp_path / "fresh")).returncode == 0
    assert (tmp_path / "fresh" / "sub" / "log.txt").read_text() == "log\n"


def test_put_and_put_many_refuse_a_path_that_is_both_file_and_directory(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "x").write_text("a file named x")
    (tmp_path / "two" / "x").mkdir(parents=True)
    (tmp_path / "two" / "x" / "y").write_text("a file under a directory named x")
    paths = [str(tmp_path / "one" / "x"), str(tmp_path / "two" / "x")]
    message = refused(cli, "put", "r/clash", *paths)
    assert "'x'" in message and "'x/y'" in message
    spec = tmp_path / "spec.jsonl"
    spec.write_text(json.dumps({"name": "r/clash", "paths": paths}) + "\n")
    message = refused(cli, "put-many", str(spec))
    assert "'x'" in message and "'x/y'" in message
    assert cli.json("ls") == []


def test_get_onto_a_read_only_file_system_exits_2(cli: Cli, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "a.txt").write_text("a\n")
    cli("put", "r/x", str(bundle))
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    with tmpfs(mount_point, read_only=True) as error:
        if error is not None:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {error}")
        message = refused(cli, "get", "r/x", str(mount_point / "out"))
        assert "Read-only file system" in message and str(mount_point / "out") in message
        assert list(mount_point.iterdir()) == []
