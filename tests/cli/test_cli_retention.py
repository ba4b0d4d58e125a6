"""Retention commands of the console script: hold, release, retention set/sweep/explain,
tier move, restore."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.cli.test_cli import Cli

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    runner = Cli(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "hot", tmp_path)
    runner.env["ARTIFACTSTORE_TIER_COLD_URL"] = str(tmp_path / "cold")
    runner.env["ARTIFACTSTORE_TIER_ARCHIVE_URL"] = str(tmp_path / "archive")
    runner.env["ARTIFACTSTORE_GC_GRACE_SECONDS"] = "0"
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.txt").write_text("beta")
    return runner


def test_hold_sweep_explain_release(cli: Cli, tmp_path: Path) -> None:
    cli("put", "logs/a", "a.txt", "--retention-class", "transient")
    cli("put", "logs/b", "b.txt", "--retention-class", "transient")
    hold = cli.json("hold", "logs/a", "--reason", "incident 7")
    assert isinstance(hold, dict)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).isoformat()

    plan = cli.json("retention", "sweep", "--now", later, "--dry-run")
    assert isinstance(plan, dict) and plan["dry_run"] is True
    assert [p["reference"] for p in plan["plan"]["expire"]] == ["logs/b@1"]
    assert plan["plan"]["bytes_to_reclaim"] == len("beta")
    human = cli("retention", "sweep", "--now", later, "--dry-run").stdout
    assert "would expire 1 package(s)" in human

    done = cli.json("retention", "sweep", "--now", later)
    assert isinstance(done, dict) and done["plan"] == plan["plan"]
    assert done["bytes_reclaimed"] == len("beta")

    explained = cli("retention", "explain", "logs/a").stdout
    assert "1 hold(s)" in explained and "incident 7" in explained
    assert "expired" in cli("show", "logs/b").stdout
    result = cli("get", "logs/b", str(tmp_path / "out"), expect=2)
    assert "'transient' expired on" in result.stderr

    cli("release", "logs/a", "--hold", hold["hold_id"], "--reason", "closed")
    assert cli.json("retention", "explain", "logs/a")["holds"] == []  # type: ignore[index]


def test_retention_set_rules(cli: Cli) -> None:
    cli("put", "r/x", "a.txt", "--retention-class", "summary-evidence")
    result = cli("retention", "set", "r/x", "--class", "transient", expect=2)
    assert "--override" in result.stderr
    cli("retention", "set", "r/x", "--class", "transient", "--override", "--reason", "cleanup")
    assert cli.json("show", "r/x")["retention_class"] == "transient"  # type: ignore[index]
    cli("retention", "set", "r/x", "--class", "release-evidence")
    result = cli("retention", "set", "r/x", "--expires-at", "2027-01-01T00:00:00+00:00",
                 "--override", "--reason", "x", expect=2)  # fmt: skip
    assert "protected" in result.stderr
    cli("retention", "set", "r/x", "--expires-at", "never")
    assert cli.json("show", "r/x")["expires_at"] is None  # type: ignore[index]


def test_tier_move_and_restore(cli: Cli) -> None:
    cli("put", "t/x", "a.txt")
    assert "tier cold" in cli("tier", "move", "t/x", "--to", "cold").stdout
    cli("tier", "move", "t/x", "--to", "archive")
    result = cli("get", "t/x", "out", expect=2)
    assert "artifactstore restore t/x@1" in result.stderr
    assert "restored" in cli("restore", "t/x").stdout
    cli("get", "t/x", "out")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("retention", "sweep", "--now", "tomorrow"), "not an ISO 8601 timestamp"),
        (("retention", "set", "r/x", "--class", "forever"), "unknown retention class"),
        (("release", "r/x", "--hold", "00000000-0000-0000-0000-000000000000"), "has no hold"),
        (("hold", "r/x"), "Missing option '--reason'"),
        (("tier", "move", "r/x", "--to", "lukewarm"), "Invalid value for '--to'"),
    ],
)
def test_bad_retention_input(cli: Cli, args: tuple[str, ...], message: str) -> None:
    cli("put", "r/x", "a.txt")
    events = len(cli.json("events"))  # type: ignore[arg-type]
    result = cli(*args, expect=2)
    assert message in result.stderr + result.stdout
    assert len(cli.json("events")) == events  # type: ignore[arg-type]


def test_tier_without_backend_is_a_clear_error(cli: Cli) -> None:
    del cli.env["ARTIFACTSTORE_TIER_COLD_URL"]
    cli("put", "r/x", "a.txt")
    result = cli("tier", "move", "r/x", "--to", "cold", expect=2)
    assert "ARTIFACTSTORE_TIER_COLD_URL" in result.stderr
