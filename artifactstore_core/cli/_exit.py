"""How errors leave the CLI: the one mapping of errors to exit codes, and every typed
error shown as one ``error:`` line."""

from __future__ import annotations

from typing import Any

import click

from artifactstore_core.errors import ArtifactStoreError, IntegrityError

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


def exit_code(error: BaseException) -> int:
    """The one mapping of errors to exit codes: a failed check (integrity) or a failing
    environment (disk full, read-only storage: ``OSError``) is 1, bad input is 2."""
    if isinstance(error, IntegrityError | OSError):
        return EXIT_CHECK_FAILED
    return EXIT_BAD_INPUT


class Failure(click.ClickException):
    """A typed error, shown as one ``error:`` line."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _CheckFailed(Failure):
    exit_code = EXIT_CHECK_FAILED


class _BadInput(Failure):
    exit_code = EXIT_BAD_INPUT


def _failure(error: ArtifactStoreError | OSError) -> Failure:
    message = " ".join(str(error).split()) or type(error).__name__
    return (_CheckFailed if exit_code(error) == EXIT_CHECK_FAILED else _BadInput)(message)


class Group(click.Group):
    """Turns the typed errors of every subcommand into ``Failure``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ArtifactStoreError, OSError) as error:
            raise _failure(error) from error
