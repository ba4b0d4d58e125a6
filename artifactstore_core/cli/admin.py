"""Administration: the registry's schema."""

from __future__ import annotations

import click

from artifactstore_core import migrate as migrations
from artifactstore_core.cli._context import CliContext, pass_context


@click.command()
@pass_context
def migrate(ctx: CliContext) -> None:
    """Create or upgrade the registry schema (alembic upgrade head)."""
    ctx.require_local()
    migrations.migrate(ctx.settings.database_url)
    click.echo(f"registry at {ctx.settings.database_url} is at the latest schema revision")


COMMANDS = (migrate,)
