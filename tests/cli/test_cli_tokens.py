"""``artifactstore token``: create (the secret once), list, revoke, on both databases."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.cli import EXIT_BAD_INPUT, exit_code
from artifactstore_core.cli.tokens import SHOWN_ONCE, parse_expiry
from artifactstore_core.domain.access import secret_digest
from artifactstore_core.errors import AccessDeniedError, AuthenticationError, InvalidInputError
from tests.cli.test_cli import Cli

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url, tmp_path / "blobs", tmp_path)


def test_token_round_trip(cli: Cli, tmp_path: Path) -> None:
    created = cli(
        "token", "create", "--actor", "ci-bot", "--scope", "package:team/**:read,write",
        "--scope", "package:**:read", "--expires", "30d", "--run-id", "run-9",
        "--description", "nightly ETL", "--json",
    )  # fmt: skip
    assert SHOWN_ONCE in created.stderr
    issued = json.loads(created.stdout)
    secret, token = issued["secret"], issued["token"]
    assert token["scopes"] == ["package:team/**:read,write", "package:**:read"]
    assert (token["actor"], token["issued_by"], token["run_id"]) == ("ci-bot", "cli-test", "run-9")
    assert (token["description"], token["status"], token["revoked_at"]) == (
        "nightly ETL", "active", None,
    )  # fmt: skip
    lifetime = dt.datetime.fromisoformat(token["expires_at"]) - dt.datetime.fromisoformat(
        token["issued_at"]
    )
    assert lifetime == dt.timedelta(days=30)

    plain = cli("token", "create", "--actor", "reader", "--scope", "package:a:read",
                "--expires", "2099-01-01T00:00:00Z", expect=EXIT_BAD_INPUT)  # fmt: skip
    assert "more than 400 days away" in plain.stderr
    plain = cli("token", "create", "--actor", "reader", "--scope", "package:a:read",
                "--expires", "12h")  # fmt: skip
    other_secret = plain.stdout.strip()
    assert plain.stdout == other_secret + "\n" and other_secret.startswith("asr_")
    assert "warning: " + SHOWN_ONCE in plain.stderr

    with ArtifactStore.open(cli.database_url, str(tmp_path / "blobs")) as store:
        principal = store.tokens.authenticate(secret)
        assert (principal.token_id, principal.actor) == (token["id"], "ci-bot")
        assert principal.allows("write", "team/x") and not principal.allows("write", "x")

    listed = cli("token", "list", "--json").stdout
    assert [t["actor"] for t in json.loads(listed)] == ["ci-bot", "reader"]
    for hidden in (secret, other_secret, secret_digest(secret), secret_digest(other_secret)):
        assert hidden not in listed

    revoked = cli.json("token", "revoke", token["id"])
    assert isinstance(revoked, dict)
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    assert cli.json("token", "revoke", token["id"]) == revoked
    table = cli("token", "list").stdout
    assert "ID" in table and "revoked" in table and "active" in table
    assert secret not in table and other_secret not in table
    with (
        ArtifactStore.open(cli.database_url, str(tmp_path / "blobs")) as store,
        pytest.raises(AuthenticationError, match="token revoked"),
    ):
        store.tokens.authenticate(secret)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "package:team/../x:read", "--expires", "1d"], "glob segment '..'"),
        (["--scope", "package:team:delete", "--expires", "1d"], "unknown action 'delete'"),
        (["--scope", "package:team:read", "--expires", "30x"], "neither a duration"),
        (["--scope", "package:team:read", "--expires", "-1d"], "neither a duration"),
        (["--scope", "package:team:read", "--expires", "2020-01-01"], "not in the future"),
    ],
)
def test_token_create_refuses_bad_input_in_one_line(
    sqlite_cli: Cli, args: list[str], message: str
) -> None:
    result = sqlite_cli("token", "create", "--actor", "ci", *args, expect=EXIT_BAD_INPUT)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert result.stdout == ""


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "blobs", tmp_path)


def test_revoking_an_unknown_token_is_bad_input(sqlite_cli: Cli) -> None:
    result = sqlite_cli("token", "revoke", "nope", expect=EXIT_BAD_INPUT)
    assert result.stderr == "error: no access token has id 'nope'\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", dt.timedelta(minutes=90)),
        ("12h", dt.timedelta(hours=12)),
        ("30d", dt.timedelta(days=30)),
        ("8w", dt.timedelta(weeks=8)),
        ("2026-12-31T00:00:00Z", dt.datetime(2026, 12, 31, tzinfo=dt.UTC)),
        ("2026-12-31T02:00:00+02:00", dt.datetime(2026, 12, 31, tzinfo=dt.UTC)),
        ("2026-12-31", dt.datetime(2026, 12, 31, tzinfo=dt.UTC)),
    ],
)
def test_expiry_forms(text: str, expected: dt.datetime | dt.timedelta) -> None:
    assert parse_expiry(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "30 d", "99999d", "1y", "tomorrow", "2026-13-01"])
def test_bad_expiry_forms(text: str) -> None:
    with pytest.raises(InvalidInputError, match="--expires"):
        parse_expiry(text)


def test_auth_errors_are_bad_input_for_the_cli() -> None:
    assert exit_code(AuthenticationError("token expired")) == EXIT_BAD_INPUT
    assert exit_code(AccessDeniedError("write", "team/x")) == EXIT_BAD_INPUT
