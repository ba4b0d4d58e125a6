"""SQLite readers: no write lock behind a long writer, and registries on read-only media."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from artifactstore_core.cli import cli
from artifactstore_core.errors import ReadOnlyRegistryError
from artifactstore_core.schema import events
from artifactstore_core.store import ArtifactStore

pytestmark = pytest.mark.integration

READ_COMMANDS = (
    ["ls"],
    ["show", "evidence/report@1"],
    ["verify", "--all"],
    ["verify", "evidence/report@1"],
    ["events"],
    ["log", "verify"],
    ["retention", "explain", "evidence/report@1"],
    ["lineage", "evidence/summary@1"],
    ["views", "check"],
)

_HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE retention_classes SET description = description || '.'")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def _registry(root: Path) -> tuple[str, Path]:
    """A SQLite registry with two packages (one an input of the other), closed."""
    url = f"sqlite:///{root / 'registry.db'}"
    blobs = root / "blobs"
    (root / "in").mkdir(parents=True)
    (root / "in" / "report.csv").write_text("a,b\n1,2\n")
    with ArtifactStore.open(url, str(blobs)) as store:
        report = store.put("evidence/report", root / "in", kind="report")
        store.put("evidence/summary", {"s.txt": b"summary"}, inputs=[report.id])
    return url, blobs


def _invoke(url: str, blobs: Path, args: list[str]) -> tuple[int, str]:
    env = {"ARTIFACTSTORE_DATABASE_URL": url, "ARTIFACTSTORE_STORAGE_URL": str(blobs)}
    result = CliRunner().invoke(cli, args, env=env)
    detail = result.output + (repr(result.exception) if result.exception else "")
    return result.exit_code, detail


def _retrievals(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).where(events.c.event_type == "PackageRetrieved")
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def write_lock(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """A registry whose write lock another process holds until its stdin is closed."""
    url, blobs = _registry(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_WRITE_LOCK, str(tmp_path / "registry.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        yield url, blobs, holder
    finally:
        if holder.poll() is None:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(10)


def test_read_commands_do_not_wait_for_a_long_writer(
    write_lock: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, blobs, _ = write_lock
    for args in READ_COMMANDS:
        started = time.monotonic()
        code, output = _invoke(url, blobs, args)
        assert code == 0, (args, output)
        assert time.monotonic() - started < 5, args


def test_get_exports_behind_a_writer_and_records_once_it_commits(
    write_lock: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, blobs, holder = write_lock
    outcome: list[tuple[int, str]] = []
    reader = threading.Thread(
        target=lambda: outcome.append(
            _invoke(url, blobs, ["get", "evidence/report@1", str(tmp_path / "out")])
        )
    )
    reader.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "out" / "report.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # The bytes are out while the writer still holds the lock; the record waits for it.
    assert (tmp_path / "out" / "report.csv").read_text() == "a,b\n1,2\n"
    assert reader.is_alive()
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(10)
    reader.join(30)
    assert outcome and outcome[0][0] == 0, outcome
    assert _retrievals(url) == 1


_READ_ONLY_RUNNER = """
import json, os, sys
from click.testing import CliRunner
from artifactstore_core.cli import cli
snapshot, commands = sys.argv[1], json.loads(sys.argv[2])
try:
    open(os.path.join(snapshot, "probe"), "w").close()
    probe = "writable"
except OSError as exc:
    probe = exc.strerror
results = []
for url, args in commands:
    env = {"ARTIFACTSTORE_DATABASE_URL": url,
           "ARTIFACTSTORE_STORAGE_URL": os.path.join(snapshot, "blobs")}
    result = CliRunner().invoke(cli, args, env=env)
    results.append([result.exit_code, result.output, repr(result.exception)])
print(json.dumps({"probe": probe, "results": results}))
"""


def _run_on_read_only_media(snapshot: Path, commands: list[tuple[str, list[str]]]) -> list[Any]:
    """Run CLI commands with ``snapshot`` read-only even for root (a read-only bind mount
    in a private mount namespace); an unprivileged user gets file permissions instead."""
    argv = [sys.executable, "-c", _READ_ONLY_RUNNER, str(snapshot), json.dumps(commands)]
    if os.geteuid() == 0:
        remount = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        argv = ["unshare", "--mount", "--propagation", "private",
                "sh", "-c", remount, "sh", str(snapshot), *argv]  # fmt: skip
    else:
        for path in [snapshot, *snapshot.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["probe"] != "writable", "the snapshot directory is not read-only"
    return list(report["results"])


def test_read_commands_work_on_a_read_only_copy(tmp_path: Path) -> None:
    _, blobs = _registry(tmp_path / "live")
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    shutil.copy2(tmp_path / "live" / "registry.db", snapshot / "registry.db")
    shutil.copytree(blobs, snapshot / "blobs")
    assert not list(snapshot.glob("registry.db-*"))
    snap_url = f"sqlite:///{snapshot / 'registry.db'}"
    out = tmp_path / "exported"
    commands = [(snap_url, args) for args in READ_COMMANDS]
    commands.append((snap_url, ["get", "evidence/report@1", str(out)]))
    commands.append((snap_url, ["tag", "evidence/report@1", "audited"]))
    commands.append((f"{snap_url}?mode=ro", ["show", "evidence/report@1"]))
    results = _run_on_read_only_media(snapshot, commands)
    for args, (code, output, exception) in zip(READ_COMMANDS, results, strict=False):
        assert code == 0, (args, output, exception)
    code, output, exception = results[len(READ_COMMANDS)]
    assert code == 0, (output, exception)
    assert "retrieval not recorded: the registry is read-only" in output
    assert (out / "report.csv").read_text() == "a,b\n1,2\n"
    code, output, _ = results[len(READ_COMMANDS) + 1]
    assert code == 2, output  # a write refused: one line naming the registry, exit 2
    assert "registry.db" in output and "read-only" in output and "Traceback" not in output
    assert results[-1][0] == 0, results[-1]


def test_mode_ro_url_opens_a_writable_file_read_only(tmp_path: Path) -> None:
    url, blobs = _registry(tmp_path)
    with ArtifactStore.open(f"{url}?mode=ro", str(blobs)) as store:
        assert [p.reference for p in store.list_packages()] == [
            "evidence/report@1",
            "evidence/summary@1",
        ]
        with pytest.raises(ReadOnlyRegistryError, match=r"registry\.db.*read-only"):
            store.tag("evidence/report@1", "audited")
        with pytest.raises(ReadOnlyRegistryError):
            store.get("evidence/report@1")  # recording the retrieval is a write
        package = store.export("evidence/report@1", tmp_path / "out", record=False)
        assert package.reference == "evidence/report@1"
    assert _retrievals(url) == 0


def test_read_only_registry_at_an_older_schema_is_refused_without_writing(
    tmp_path: Path,
) -> None:
    url, blobs = _registry(tmp_path)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    with pytest.raises(ReadOnlyRegistryError, match="'0000'"):
        ArtifactStore.open(f"{url}?mode=ro", str(blobs))
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0000"
    engine.dispose()


def test_get_no_record_exports_without_recording(tmp_path: Path) -> None:
    url, blobs = _registry(tmp_path)
    code, output = _invoke(url, blobs, ["get", "evidence/report@1", str(tmp_path / "out"),
                                        "--no-record"])  # fmt: skip
    assert code == 0, output
    assert (tmp_path / "out" / "report.csv").read_text() == "a,b\n1,2\n"
    assert "not recorded" not in output
    assert _retrievals(url) == 0
