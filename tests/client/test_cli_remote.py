"""The CLI in remote mode (``ARTIFACTSTORE_SERVER_URL`` / ``--server``) prints what it
prints in local mode for the same registry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from artifactstore_core.cli import cli
from tests.client.conftest import LiveServer, issue_token

pytestmark = pytest.mark.integration


class Modes:
    """Runs the CLI against the registry directly or through the gateway (in this process,
    with click's runner: the console script itself is run in test_remote_mode_offline)."""

    def __init__(self, gateway: LiveServer) -> None:
        store = gateway.store
        unset = {k: None for k in os.environ if k.startswith("ARTIFACTSTORE_")}
        self.local_env = unset | {
            "ARTIFACTSTORE_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
            "ARTIFACTSTORE_STORAGE_URL": store.blobs.url,
        }
        self.remote_env = unset | {
            "ARTIFACTSTORE_SERVER_URL": gateway.url,
            "ARTIFACTSTORE_TOKEN": issue_token(store),
        }

    def run(self, *args: str, remote: bool, expect: int = 0) -> Result:
        result = CliRunner().invoke(
            cli, list(args), env=self.remote_env if remote else self.local_env
        )
        assert result.exit_code == expect, (args, remote, result.output, result.exception)
        return result

    def json(self, *args: str, remote: bool) -> Any:
        return json.loads(self.run(*args, "--json", remote=remote).stdout)

    def same(self, *args: str) -> Any:
        """Both modes' JSON for ``args`` (a read): equal."""
        local, remote = self.json(*args, remote=False), self.json(*args, remote=True)
        assert remote == local, args
        return remote


@pytest.fixture
def modes(sqlite_gateway: LiveServer) -> Modes:
    return Modes(sqlite_gateway)


def test_remote_commands_print_what_local_commands_print(
    modes: Modes, sqlite_gateway: LiveServer, tmp_path: Path
) -> None:
    (tmp_path / "bundle" / "sub").mkdir(parents=True)
    (tmp_path / "bundle" / "report.csv").write_text("a,b\n1,2\n")
    (tmp_path / "bundle" / "sub" / "log.txt").write_text("log line\n")
    raw = modes.json("put", "in/raw", str(tmp_path / "bundle" / "report.csv"), remote=True)
    assert raw == sqlite_gateway.store.describe("in/raw@1").to_dict()
    put = modes.json(
        "put", "reports/daily", str(tmp_path / "bundle"), "--input", "in/raw@1",
        "--metadata", '{"rows": 1}', "--run-id", "r-1", remote=True,
    )  # fmt: skip
    assert put == sqlite_gateway.store.describe("reports/daily@1").to_dict()
    assert modes.same("show", "reports/daily@1") == put
    modes.json("put", "reports/daily", str(tmp_path / "bundle"), remote=False)  # version 2
    assert len(modes.same("ls")) == 3
    modes.same("ls", "reports/", "--limit", "1")
    modes.same("ls", "--run-id", "r-1")
    modes.same("lineage", "reports/daily@1")
    modes.same("lineage", "in/raw", "--downstream")
    tagged = modes.json("tag", "reports/daily@1", "stable", remote=True)
    assert tagged == modes.json("show", "reports/daily:stable", remote=False)
    modes.json("tag", "reports/daily@1", "old", remote=False)
    untagged = modes.json("untag", "reports/daily", "old", remote=True)
    assert untagged == modes.json("show", "reports/daily@1", remote=False)
    assert modes.same("verify", "reports/daily@1")["ok"] is True
    explained = [modes.json("retention", "explain", "reports/daily@1", remote=r) for r in (0, 1)]
    assert [{k: v for k, v in e.items() if k != "now"} for e in explained] == [
        {k: v for k, v in explained[0].items() if k != "now"}
    ] * 2
    modes.same("schema", "ls")

    for remote in (False, True):
        target = tmp_path / f"out-{remote}"
        got = modes.json("get", "reports/daily@1", str(target), remote=remote)
        assert got == modes.json("show", "reports/daily@1", remote=False)
        assert (target / "sub" / "log.txt").read_text() == "log line\n"

    hold = modes.json("hold", "reports/daily@1", "--reason", "audit", remote=True)
    assert modes.same("show", "reports/daily@1")["holds"] == [hold]
    modes.run("release", "reports/daily@1", "--hold", hold["hold_id"], remote=True)
    assert modes.same("show", "reports/daily@1")["holds"] == []
    local, remote = (modes.json("events", "--limit", "100", remote=r) for r in (False, True))
    for event in local:  # the server withholds a token secret's hash
        if event["event_type"] == "TokenIssued":
            event["payload"]["secret_sha256"] = ""
    assert remote == local and len(local) > 10


def test_remote_errors_keep_the_local_exit_codes_and_one_line(modes: Modes) -> None:
    for remote in (False, True):
        missing = modes.run("show", "no/such", remote=remote, expect=2)
        assert missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1
    local = modes.run("show", "no/such", remote=False, expect=2).stderr
    assert modes.run("show", "no/such", remote=True, expect=2).stderr == local
    noted = modes.run("--actor", "me", "ls", remote=True).stderr
    assert noted == "note: --actor is not used with --server: the token's actor is recorded\n"


def test_tokens_are_minted_listed_and_revoked_through_the_server(
    modes: Modes, sqlite_gateway: LiveServer
) -> None:
    created = modes.json(
        "token", "create", "--actor", "alice", "--scope", "package:reports/**:read",
        "--expires", "30m", "--run-id", "run-7", remote=True,
    )  # fmt: skip
    child = created["token"]
    assert created["secret"].startswith("asr_") and child["actor"] == "alice"
    assert child["parent_id"] is not None and child["run_id"] == "run-7"
    principal = sqlite_gateway.store.tokens.authenticate(created["secret"])
    assert principal.token_id == child["id"]
    assert modes.same("token", "list") == [t.to_dict() for t in sqlite_gateway.store.tokens.list()]
    revoked = modes.json("token", "revoke", child["id"], remote=True)
    assert revoked["status"] == "revoked"
    assert sqlite_gateway.store.tokens.get(child["id"]).status == "revoked"
    refused = modes.run(
        "token", "create", "--actor", "mallory", "--scope", "package:**:read",
        "--expires", "30m", remote=True, expect=2,
    )  # fmt: skip
    assert "for the calling token's actor 'alice' only, not for 'mallory'" in refused.stderr


def test_keep_rules_from_the_cli_in_both_modes(modes: Modes) -> None:
    rule = modes.json("retention", "keep", "prefix:reports", "--latest", "2", remote=True)
    assert rule == {"selector": "prefix:reports", "keep_latest": 2}
    assert modes.same("retention", "rules") == [rule]
    lowered = modes.run("retention", "keep", "prefix:reports", remote=True, expect=2)
    assert "lowering keep rule 'prefix:reports' from 2 to 1" in lowered.output
    modes.run("retention", "unkeep", "prefix:reports", "--reason", "cost", remote=True)
    assert modes.same("retention", "rules") == []
    modes.run("retention", "keep", "class:transient", remote=False)
    assert modes.same("retention", "rules") == [{"selector": "class:transient", "keep_latest": 1}]
