"""Access tokens for the HTTP gateway: create (the secret is shown once), list, revoke."""

from __future__ import annotations

import datetime as dt
import re

import click

from artifactstore_core.cli._context import CliContext, pass_context
from artifactstore_core.cli._output import emit, json_option, table
from artifactstore_core.domain import limits
from artifactstore_core.errors import InvalidInputError

_DURATION = re.compile(r"([0-9]{1,4})([mhdw])")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SHOWN_ONCE = "the secret is shown this once: store it now (the registry keeps only its SHA-256)"


def parse_expiry(text: str) -> dt.datetime | dt.timedelta:
    """``--expires``: a lifetime (``90m``, ``12h``, ``30d``, ``8w``) or an ISO 8601
    timestamp (no zone means UTC)."""
    found = _DURATION.fullmatch(text)
    if found:
        return dt.timedelta(**{_UNITS[found[2]]: int(found[1])})
    if not _DATE.match(text):
        raise InvalidInputError(
            f"--expires {text[:60]!r} is neither a duration (30d, 12h, 90m, 8w; at most 4 "
            "digits) nor an ISO 8601 timestamp (2026-12-31T00:00:00Z)"
        )
    return limits.parse_time(text, "--expires")


@click.group()
def token() -> None:
    """Access tokens for the HTTP gateway: create, list, revoke."""


@token.command("create")
@click.option("--actor", "token_actor", required=True, help="Who the token acts as.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="package:<name-glob>:<actions>, e.g. package:team/**:read,write (repeat).",
)
@click.option(
    "--expires",
    required=True,
    help="Lifetime (30d, 12h, 90m, 8w) or expiry (ISO 8601); at most 400 days.",
)
@click.option("--run-id", help="Bind the token to this run id.")
@click.option("--description", help="What the token is for.")
@json_option
@pass_context
def create(
    ctx: CliContext,
    token_actor: str,
    scopes: tuple[str, ...],
    expires: str,
    run_id: str | None,
    description: str | None,
) -> None:
    """Issue a token and print its secret, once (the recorded actor issues it)."""
    store = ctx.store
    issued = store.tokens.issue(
        actor=token_actor,
        scopes=scopes,
        expires_at=parse_expiry(expires),
        run_id=run_id,
        description=description,
        issued_by=store.actor,
    )
    info = issued.token
    click.echo(f"token {info.id} for {info.actor}, expires {info.expires_at.isoformat()}", err=True)
    click.echo(f"warning: {SHOWN_ONCE}", err=True)
    emit(issued, issued.secret)


@token.command("list")
@json_option
@pass_context
def list_tokens(ctx: CliContext) -> None:
    """List tokens (never their secrets), revoked and expired ones included."""
    tokens = ctx.store.tokens.list()
    emit(
        tokens,
        lambda: table(
            ["ID", "ACTOR", "STATUS", "EXPIRES", "RUN", "SCOPES"],
            [
                (t.id, t.actor, t.status, t.expires_at.isoformat(), t.run_id, " ".join(t.scopes))
                for t in tokens
            ],
        ),
    )


@token.command("revoke")
@click.argument("token_id")
@json_option
@pass_context
def revoke(ctx: CliContext, token_id: str) -> None:
    """Revoke a token, and the tokens issued under it, at once (again: no change)."""
    info = ctx.store.tokens.revoke(token_id)
    emit(info, f"token {info.id} ({info.actor}) revoked at {info.revoked_at}")


COMMANDS = (token,)
