"""Retention commands: holds, retention set / sweep / explain, tier moves, restore."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from typing import TYPE_CHECKING, Any

import click

from artifactstore_core.cli._context import CliContext, pass_context
from artifactstore_core.cli._input import COUNT, parse_time
from artifactstore_core.cli._output import emit, json_option, size, table
from artifactstore_core.domain import limits
from artifactstore_core.domain.retention import MAX_KEEP_LATEST, TIERS

if TYPE_CHECKING:
    from artifactstore_core.retention.explain import Explanation
    from artifactstore_core.retention.sweep import SweepResult


@click.command()
@click.argument("reference")
@click.option("--reason", required=True, help="Why the package must be kept.")
@click.option("--kind", type=click.Choice(["legal", "operational"]), default="legal",
              show_default=True)  # fmt: skip
@json_option
@pass_context
def hold(ctx: CliContext, reference: str, reason: str, kind: str) -> None:
    """Place a hold on a package: it never expires and keeps its bytes until released."""
    placed = ctx.store.place_hold(reference, reason=reason, kind=kind)
    emit(placed, f"hold {placed.hold_id} placed on {reference}")


@click.command()
@click.argument("reference")
@click.option("--hold", "hold_id", required=True, help="Id of the hold to release.")
@click.option("--reason", help="Why it is released.")
@pass_context
def release(ctx: CliContext, reference: str, hold_id: str, reason: str | None) -> None:
    """Release one hold of a package."""
    package = ctx.store.release_hold(reference, hold_id, reason=reason)
    click.echo(f"hold {hold_id} released; {package.reference} has {len(package.holds)} left")


@click.group()
def retention() -> None:
    """Retention: change class or expiry, keep rules, sweep, explain."""


@retention.command("set")
@click.argument("reference")
@click.option("--class", "class_name", help="New retention class.")
@click.option("--expires-at", help="New expiry, ISO 8601, or 'never'.")
@click.option("--override", is_flag=True, help="Allow shortening (not for protected classes).")
@click.option("--reason", help="Why (required with --override).")
@json_option
@pass_context
def retention_set(
    ctx: CliContext,
    reference: str,
    class_name: str | None,
    expires_at: str | None,
    override: bool,
    reason: str | None,
) -> None:
    """Change the class and/or expiry of a package."""
    if not class_name and not expires_at:
        raise click.UsageError("give --class and/or --expires-at")
    never = expires_at == "never"
    package = ctx.store.set_retention(
        reference,
        retention_class=class_name,
        expires_at=None if never else parse_time(expires_at, "--expires-at"),
        never_expires=never,
        override=override,
        reason=reason,
    )
    emit(
        package,
        f"{package.reference}: {package.retention_class}, "
        f"expires {package.expires_at.isoformat() if package.expires_at else 'never'}",
    )


@retention.command("sweep")
@click.option("--now", help="Sweep as of this ISO 8601 time (default: now).")
@click.option("--dry-run", is_flag=True, help="Print the exact plan; change nothing.")
@click.option(
    "--grace-seconds",
    type=click.IntRange(min=0, max=limits.MAX_DURATION_SECONDS),
    help="Override the GC grace.",
)
@click.option("--limit", type=COUNT, help="At most this many items per step.")
@json_option
@pass_context
def retention_sweep(
    ctx: CliContext,
    now: str | None,
    dry_run: bool,
    grace_seconds: int | None,
    limit: int | None,
) -> None:
    """Expire due packages, move tiers, delete blobs no live package needs."""
    at = parse_time(now, "--now")
    grace = None if grace_seconds is None else dt.timedelta(seconds=grace_seconds)
    plan = ctx.store.plan_sweep(at, grace=grace, limit=limit)
    steps = len(plan.expire) + len(plan.tier_moves) + len(plan.delete)
    bar: Any = (
        click.progressbar(length=steps, label="sweeping", file=sys.stderr)
        if not dry_run and sys.stderr.isatty() and steps > 100
        else contextlib.nullcontext()
    )
    with bar as progress:
        update = (lambda _step, n: progress.update(n)) if progress else None
        result = ctx.store.sweep(plan=plan, dry_run=dry_run, progress=update)
    emit(result, lambda: _print_sweep(result))


def _print_sweep(result: SweepResult) -> None:
    plan = result.plan
    verb = "would" if result.dry_run else "did"
    click.echo(f"sweep at {plan.now.isoformat()} ({'dry run' if result.dry_run else 'done'})")
    if plan.expire:
        rows = [(p.reference, p.retention_class, p.expires_at.isoformat()) for p in plan.expire]
        table(["expire", "class", "expires at"], rows)
    if plan.tier_moves:
        table(
            ["move", "from", "to"], [(m.reference, m.from_tier, m.to_tier) for m in plan.tier_moves]
        )
    if plan.delete:
        deletions = [(d.content_address, d.backend, size(d.size), d.reason) for d in plan.delete]
        table(["delete blob", "tier", "size", "reason"], deletions)
    click.echo(
        f"{verb} expire {len(plan.expire)} package(s), move {len(plan.tier_moves)}, delete "
        f"{len(plan.delete)} blob(s) reclaiming {size(plan.bytes_to_reclaim)}; "
        f"{plan.shared_kept_blobs} blob(s) ({size(plan.shared_kept_bytes)}) stay because live "
        "packages share them"
        + (f"; {plan.moves_without_backend} tier move(s) skipped: no backend configured"
           if plan.moves_without_backend else "")
    )  # fmt: skip


@retention.command("explain")
@click.argument("reference")
@click.option("--now", help="As of this ISO 8601 time.")
@json_option
@pass_context
def retention_explain(ctx: CliContext, reference: str, now: str | None) -> None:
    """Say why a package is still kept, or when it will go."""
    explanation = ctx.store.explain(reference, now=parse_time(now, "--now"))
    emit(explanation, lambda: _print_explanation(explanation))


def _print_explanation(explanation: Explanation) -> None:
    info = explanation.to_dict()
    click.echo(f"{info['reference']}: {info['verdict']}")
    click.echo(f"  class {info['retention_class']}, expires {info['expires_at'] or 'never'}, "
               f"status {info['status']}, tier {info['tier']}")  # fmt: skip
    for hold_info in info["holds"]:
        click.echo(f"  hold {hold_info['hold_id']} ({hold_info['kind']}) by {hold_info['actor']}: "
                   f"{hold_info['reason']}")  # fmt: skip
    if explanation.kept_by:
        click.echo(f"  kept by keep rule {explanation.kept_by}")
    if explanation.shared_blobs:
        click.echo(
            f"  {explanation.shared_blobs} blob(s) ({size(explanation.shared_bytes)}) shared with "
            f"live packages: {', '.join(explanation.sharing_packages[:10])}"
        )


@retention.command("keep")
@click.argument("selector")
@click.option("--latest", type=click.IntRange(1, MAX_KEEP_LATEST), default=1, show_default=True,
              help="How many newest versions of each matching name to keep.")  # fmt: skip
@click.option("--reason", help="Why (required when lowering a rule's count).")
@json_option
@pass_context
def retention_keep(ctx: CliContext, selector: str, latest: int, reason: str | None) -> None:
    """Keep the newest versions of each name SELECTOR matches, whatever their expiry.

    SELECTOR is 'class:<retention class>' or 'prefix:<package name>' (whole segments).
    """
    rule = ctx.store.set_keep_rule(selector, latest, reason=reason)
    emit(rule, f"keep rule {rule.selector}: the newest {rule.keep_latest} version(s) are kept")


@retention.command("unkeep")
@click.argument("selector")
@click.option("--reason", required=True, help="Why: its packages may expire at the next sweep.")
@pass_context
def retention_unkeep(ctx: CliContext, selector: str, reason: str) -> None:
    """Remove a keep rule."""
    ctx.store.remove_keep_rule(selector, reason=reason)
    click.echo(f"keep rule {selector} removed")


@retention.command("rules")
@json_option
@pass_context
def retention_rules(ctx: CliContext) -> None:
    """List the keep rules in force."""
    rules = ctx.store.keep_rules()
    emit(rules, lambda: table(["selector", "keep latest"],
                              [(r.selector, r.keep_latest) for r in rules]))  # fmt: skip


@click.group()
def tier() -> None:
    """Storage tiers (hot, cold, archive)."""


@tier.command("move")
@click.argument("reference")
@click.option("--to", "target", required=True, type=click.Choice(TIERS))
@pass_context
def tier_move(ctx: CliContext, reference: str, target: str) -> None:
    """Move a package's bytes to another tier (copied, verified, then old copies removed)."""
    package = ctx.store.move_tier(reference, target)
    click.echo(f"{package.reference} is now in tier {package.retrieval_tier}")


@click.command()
@click.argument("reference")
@pass_context
def restore(ctx: CliContext, reference: str) -> None:
    """Bring an archived package back to the hot tier so it can be read."""
    package = ctx.store.restore(reference)
    click.echo(f"{package.reference} restored ({package.restore_status})")


COMMANDS = (hold, release, retention, tier, restore)
