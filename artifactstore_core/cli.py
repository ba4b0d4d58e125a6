"""The ``artifactstore`` command line: parse, call the library, print."""

from __future__ import annotations

import sys

import click

from artifactstore_core import migrate as migrations
from artifactstore_core.config import load_settings
from artifactstore_core.errors import ArtifactStoreError, IntegrityError

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


@click.group()
@click.option("--database-url", envvar="ARTIFACTSTORE_DATABASE_URL", help="Registry database URL.")
@click.option("--storage-url", envvar="ARTIFACTSTORE_STORAGE_URL", help="Blob storage URL.")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, storage_url: str | None) -> None:
    """artifact-store: content-addressed artifact registry and storage gateway."""
    overrides = {"database_url": database_url, "storage_url": storage_url}
    ctx.obj = load_settings(**{k: v for k, v in overrides.items() if v})


@cli.command()
@click.pass_obj
def migrate(settings: object) -> None:
    """Create or upgrade the registry schema (alembic upgrade head)."""
    url = settings.database_url  # type: ignore[attr-defined]
    migrations.upgrade(url)
    click.echo(f"database at {url} is at the latest schema revision")


def main() -> None:
    """Console-script entry point: typed errors become a message and an exit code."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except IntegrityError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CHECK_FAILED)
    except ArtifactStoreError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
