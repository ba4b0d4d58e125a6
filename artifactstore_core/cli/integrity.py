"""Integrity commands: verify stored bytes, the event log's chain, the views, the events."""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING

import click

from artifactstore_core.cli._context import CliContext, pass_context
from artifactstore_core.cli._exit import EXIT_CHECK_FAILED
from artifactstore_core.cli._input import COUNT, INT
from artifactstore_core.cli._output import emit, json_option, progress, size, table

if TYPE_CHECKING:
    from artifactstore_core.store import VerifyResult


@click.command()
@click.argument("reference", required=False)
@click.option("--all", "everything", is_flag=True, help="Verify every active package.")
@click.option("--exists-only", is_flag=True, help="Check presence, do not re-hash.")
@click.option(
    "--repair",
    is_flag=True,
    help="Copy missing or corrupt blobs from an intact copy in another tier.",
)
@json_option
@pass_context
def verify(
    ctx: CliContext,
    reference: str | None,
    everything: bool,
    exists_only: bool,
    repair: bool,
) -> None:
    """Re-hash the stored bytes of REFERENCE (or --all); exit 1 on any problem left."""
    if bool(reference) == everything:
        raise click.UsageError("give a package REFERENCE or --all")
    total = ctx.store.describe(reference).size if reference else 0
    with progress(total, "verifying") as update:
        result = ctx.store.verify(reference, rehash=not exists_only, repair=repair, progress=update)
    emit(
        lambda: {
            "ok": result.ok,
            "packages": result.packages,
            "blobs": result.blobs,
            "bytes_verified": result.bytes_verified,
            "problems": [dataclasses.asdict(problem) for problem in result.problems],
            "repaired": [dataclasses.asdict(problem) for problem in result.repaired],
        },
        lambda: _print_verify(result),
    )
    if not result.ok:
        sys.exit(EXIT_CHECK_FAILED)


def _print_verify(result: VerifyResult) -> None:
    for problem in result.repaired:
        click.echo(
            f"REPAIRED: {problem.content_address} in {problem.backend} was {problem.problem}"
            f" (used by {', '.join(problem.packages)})",
            err=True,
        )
    for problem in result.problems:
        click.echo(
            f"{problem.problem.upper()}: {problem.content_address} in {problem.backend} "
            f"(used by {', '.join(problem.packages)}): {problem.detail}",
            err=True,
        )
    state = "OK" if result.ok else f"FAILED ({len(result.problems)} problem(s))"
    click.echo(
        f"{state}: {result.packages} package(s), {result.blobs} blob(s), "
        f"{size(result.bytes_verified)} re-hashed"
    )


@click.group()
def log() -> None:
    """The event log."""


@log.command("verify")
@json_option
@pass_context
def log_verify(ctx: CliContext) -> None:
    """Walk the hash chain, the Merkle tree's leaves and cached heads, and check the log
    against its latest checkpoints; exit 1 naming the first bad sequence."""
    report = ctx.local_store.verify_log()
    emit(
        {"ok": True, "checked": report.checked, "head_sequence": report.head_sequence,
         "head_digest": report.head_digest, "checkpoints": report.checkpoints},
        f"OK: {report.checked} event(s), head {report.head_sequence} {report.head_digest}"
        + (f"; extends the latest checkpoint of {report.checkpoints} log origin(s)"
           if report.checkpoints else ""),
    )  # fmt: skip


@click.group()
def views() -> None:
    """The projections (view tables) derived from the event log."""


@views.command("rebuild")
@pass_context
def views_rebuild(ctx: CliContext) -> None:
    """Drop the views and replay the whole event log into them."""
    count = ctx.local_store.rebuild_views()
    click.echo(f"rebuilt the views from {count} event(s)")


@views.command("check")
@json_option
@pass_context
def views_check(ctx: CliContext) -> None:
    """Replay the log into scratch tables and compare; exit 1 on any difference."""
    differences = ctx.local_store.check_views()

    def text() -> None:
        for diff in differences:
            click.echo(f"DIFF {diff.table} {diff.key}: live={diff.live} rebuilt={diff.rebuilt}")
        click.echo("OK: views match the event log" if not differences else "FAILED")

    emit(
        lambda: {
            "ok": not differences,
            "differences": [dataclasses.asdict(d) for d in differences],
        },
        text,
    )
    if differences:
        sys.exit(EXIT_CHECK_FAILED)


@click.command()
@click.option("--since", type=INT, default=0, help="After this sequence.")
@click.option("--subject", help="KIND:ID, e.g. package:<id> or blob:blake3:<hex>.")
@click.option("--limit", type=COUNT, default=1000, show_default=True)
@json_option
@pass_context
def events(ctx: CliContext, since: int, subject: str | None, limit: int) -> None:
    """List recorded events."""
    kind, _, subject_id = (subject or "").partition(":")
    if subject and not subject_id:
        raise click.BadParameter("use KIND:ID", param_hint="--subject")
    items = ctx.store.events(
        since=since, subject_kind=kind or None, subject_id=subject_id or None, limit=limit
    )
    emit(
        lambda: [
            {"sequence": e.sequence, "created_at": e.created_at.isoformat(), "actor": e.actor,
             "event_type": e.event.event_type, "subject_kind": e.event.subject_kind,
             "subject_id": e.event.subject_id, "payload": e.event.to_payload(),
             "payload_digest": e.payload_digest, "chain_digest": e.chain_digest}
            for e in items
        ],
        lambda: table(
            ["seq", "time", "type", "subject", "actor"],
            [(e.sequence, e.created_at.isoformat(timespec="seconds"), e.event.event_type,
              f"{e.event.subject_kind}:{e.event.subject_id}", e.actor) for e in items],
        ),
    )  # fmt: skip


COMMANDS = (verify, log, views, events)
