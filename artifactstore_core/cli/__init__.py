"""The ``artifactstore`` command line: parse, call ``ArtifactStore``, print.

Exit codes: 0 success, 1 a failed check (integrity, verification, view differences) or
a failing environment (disk full, read-only storage), 2 bad usage or input; one place
maps errors to them (``exit_code``, in ``_exit``), and every error is one ``error:`` line.

The commands live by group: ``packages`` (put, put-many, get, ls, show, tag, lineage,
schema), ``retention`` (hold, release, retention, tier, restore), ``integrity`` (verify,
log, views, events), ``transparency`` (log checkpoint, prove, consistency, verify-proof),
``admin`` (migrate), ``tokens`` (token create, list, revoke) and ``evidence`` (keys
generate, show; evidence statement), ``bundles`` (evidence export, verify), ``attest``
(evidence attest, attestations);
``_output`` prints (``emit`` chooses JSON or text), ``_input`` reads options and files,
``_spec`` parses the put-many spec.
"""

from __future__ import annotations

import sys

import click

from artifactstore_core.cli import (
    admin,
    attest,  # noqa: F401  (adds attest and attestations to `evidence`)
    bundles,  # noqa: F401  (adds export and verify to `evidence`)
    evidence,
    integrity,
    packages,
    retention,
    serve,
    tokens,
    transparency,  # noqa: F401  (adds checkpoint, prove, consistency, verify-proof to `log`)
)
from artifactstore_core.cli._context import CliContext
from artifactstore_core.cli._exit import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, Group, exit_code
from artifactstore_core.config import load_settings

__all__ = ["EXIT_BAD_INPUT", "EXIT_CHECK_FAILED", "cli", "exit_code", "main"]


@click.group(cls=Group)
@click.option("--database-url", help="Registry database URL [ARTIFACTSTORE_DATABASE_URL].")
@click.option("--storage-url", help="Blob storage URL [ARTIFACTSTORE_STORAGE_URL].")
@click.option("--actor", help="Actor recorded on events [ARTIFACTSTORE_ACTOR].")
@click.option(
    "--server",
    envvar="ARTIFACTSTORE_SERVER_URL",
    help="Use the registry server at this URL instead of the database [ARTIFACTSTORE_SERVER_URL].",
)
@click.option(
    "--token", envvar="ARTIFACTSTORE_TOKEN", help="Access token for --server [ARTIFACTSTORE_TOKEN]."
)
@click.version_option(package_name="artifact-store")
@click.pass_context
def cli(
    ctx: click.Context,
    database_url: str | None,
    storage_url: str | None,
    actor: str | None,
    server: str | None,
    token: str | None,
) -> None:
    """artifact-store: a content-addressed registry for generated artifacts."""
    overrides = {"database_url": database_url, "storage_url": storage_url, "actor": actor}
    settings = load_settings(**{k: v for k, v in overrides.items() if v})
    context = CliContext(settings, server=server or None, token=token or None)
    if server and actor:
        click.echo(
            "note: --actor is not used with --server: the token's actor is recorded", err=True
        )
    ctx.obj = context
    ctx.call_on_close(context.close)


for _command in (
    *admin.COMMANDS,
    *packages.COMMANDS,
    *retention.COMMANDS,
    *integrity.COMMANDS,
    *tokens.COMMANDS,
    *serve.COMMANDS,
    *evidence.COMMANDS,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point: typed errors become one line and the exit code of
    ``exit_code``; usage errors exit 2, an interrupt 130."""
    try:
        cli.main(standalone_mode=False, prog_name="artifactstore")
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
