"""Package commands: put, put-many, get, ls, show, tag, untag, lineage, metadata schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from artifactstore_core.cli._context import CliContext, pass_context
from artifactstore_core.cli._input import COUNT, load_json, parse_time, read_text
from artifactstore_core.cli._output import emit, json_option, progress, size, table
from artifactstore_core.cli._spec import read_spec
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import InvalidInputError
from artifactstore_core.sources import collect


def _parse_metadata(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    text = read_text(value[1:], "metadata file") if value.startswith("@") else value
    parsed = load_json(text, "--metadata")
    if not isinstance(parsed, dict):
        raise InvalidInputError(f"--metadata must be a JSON object, got {text[:60]!r}")
    return parsed


@click.command()
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--kind", default="output", show_default=True, help="Package kind.")
@click.option("--retention-class", help="Retention class (default from settings).")
@click.option("--metadata", help="JSON object, or @file with one.")
@click.option("--input", "inputs", multiple=True, help="Reference of an input package.")
@click.option("--run-id", help="Run that produced the package.")
@click.option("--producer", help="What produced the package.")
@click.option("--code-version", help="Version of the producing code.")
@json_option
@pass_context
def put(
    ctx: CliContext,
    name: str,
    paths: tuple[Path, ...],
    kind: str,
    retention_class: str | None,
    metadata: str | None,
    inputs: tuple[str, ...],
    run_id: str | None,
    producer: str | None,
    code_version: str | None,
) -> None:
    """Store files (or directories) as a new version of package NAME."""
    sources = collect(paths[0] if len(paths) == 1 else list(paths))  # walked once
    total = sum(source.size_hint or 0 for source in sources)
    provenance = {"run_id": run_id, "producer": producer, "code_version": code_version}
    with progress(total, f"storing {name}") as update:
        package = ctx.store.put(
            name,
            sources,
            kind=kind,
            metadata=_parse_metadata(metadata),
            retention_class=retention_class,
            inputs=inputs,
            provenance=provenance,
            progress=update,
        )
    emit(package, f"stored {package.reference} {package.content_address} ({size(package.size)})")


@click.command("put-many")
@click.argument("spec", type=click.File("rb"))
@json_option
@pass_context
def put_many(ctx: CliContext, spec: Any) -> None:
    """Store many packages in one transaction, all or none, from SPEC (JSON Lines, - for
    stdin): one object per line with "name", "paths" and optionally "kind",
    "retention_class", "metadata", "inputs", "run_id", "producer", "code_version"."""
    packages = ctx.store.put_many(read_spec(spec))

    def text() -> None:
        for package in packages:
            click.echo(f"stored {package.reference} {package.content_address}")

    emit(packages, text)


@click.command()
@click.argument("reference")
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--purpose", help="Why the package is read (recorded).")
@click.option("--no-record", is_flag=True, help="Do not record the retrieval.")
@json_option
@pass_context
def get(
    ctx: CliContext,
    reference: str,
    destination: Path,
    force: bool,
    purpose: str | None,
    no_record: bool,
) -> None:
    """Write the files of package REFERENCE into DESTINATION (verified).

    The retrieval is recorded unless --no-record or the registry is read-only (then a
    note says so on stderr).
    """
    package = ctx.store.describe(reference)
    read_only = ctx.read_only
    with progress(package.size, f"reading {package.reference}") as update:
        package = ctx.store.export(
            package.id,
            destination,
            force=force,
            purpose=purpose,
            progress=update,
            record=not (no_record or read_only),
        )
    if read_only and not no_record:
        click.echo("retrieval not recorded: the registry is read-only", err=True)
    emit(package, f"wrote {len(package.files)} file(s) of {package.reference} to {destination}")


@click.command("ls")
@click.argument("prefix", required=False)
@click.option("--kind")
@click.option("--tag")
@click.option("--retention-class")
@click.option("--status", type=click.Choice(["active", "expired"]))
@click.option("--run-id", help="Only packages produced by this run.")
@click.option("--created-after", help="ISO timestamp.")
@click.option("--created-before", help="ISO timestamp.")
@click.option("--limit", type=COUNT)
@json_option
@pass_context
def list_command(
    ctx: CliContext,
    prefix: str | None,
    kind: str | None,
    tag: str | None,
    retention_class: str | None,
    status: str | None,
    run_id: str | None,
    created_after: str | None,
    created_before: str | None,
    limit: int | None,
) -> None:
    """List packages, optionally those whose name starts with PREFIX."""
    packages = ctx.store.list_packages(
        name_prefix=prefix,
        kind=kind,
        tag=tag,
        retention_class=retention_class,
        status=status,
        run_id=run_id,
        created_after=parse_time(created_after, "--created-after"),
        created_before=parse_time(created_before, "--created-before"),
        limit=limit,
    )
    emit(packages, lambda: table(
        ["reference", "kind", "size", "files", "class", "status", "tags", "created"],
        [
            (p.reference, p.kind, size(p.size), len(p.files), p.retention_class, p.status,
             ",".join(p.tags), p.created_at.isoformat(timespec="seconds"))
            for p in packages
        ],
    ))  # fmt: skip


def _print_package(package: Package) -> None:
    rows = [
        ("id", package.id),
        ("reference", package.reference),
        ("kind", package.kind),
        ("status", package.status + (" (on hold)" if package.on_hold else "")),
        ("content address", package.content_address),
        ("sha256", package.digest_sha256),
        ("size", f"{size(package.size)} in {len(package.files)} file(s)"),
        ("created", f"{package.created_at.isoformat()} by {package.actor}"),
        ("retention", f"{package.retention_class}, expires {package.expires_at or 'never'}"),
        (
            "tier",
            package.retrieval_tier
            + (f" ({package.restore_status})" if package.restore_status else ""),
        ),
        ("tags", ", ".join(package.tags) or "-"),
        ("inputs", ", ".join(package.provenance.inputs) or "-"),
        ("attestations", ", ".join(package.attestations) or "-"),
    ]
    if package.attests:
        rows.append(("attests", package.attests))
    if package.provenance.run_id:
        rows.append(("run id", package.provenance.run_id))
    if package.metadata:
        rows.append(("metadata", json.dumps(package.metadata, sort_keys=True)))
    for hold in package.holds:
        rows.append(("hold", f"{hold.hold_id} {hold.kind} by {hold.actor}: {hold.reason}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")
    click.echo("")
    table(
        ["path", "size", "content address"],
        [(e.path, size(e.blob.size), e.blob.content_address) for e in package.files],
    )


@click.command()
@click.argument("reference")
@json_option
@pass_context
def show(ctx: CliContext, reference: str) -> None:
    """Show a package: identity, retention, provenance, files."""
    package = ctx.store.describe(reference)
    emit(package, lambda: _print_package(package))


@click.command()
@click.argument("reference")
@click.argument("tag")
@json_option
@pass_context
def tag(ctx: CliContext, reference: str, tag: str) -> None:
    """Point TAG of the package's name at package REFERENCE."""
    package = ctx.store.tag(reference, tag)
    emit(package, f"{package.name}:{tag} -> {package.reference}")


@click.command()
@click.argument("name")
@click.argument("tag")
@json_option
@pass_context
def untag(ctx: CliContext, name: str, tag: str) -> None:
    """Remove TAG of package NAME (the package it pointed at stays)."""
    package = ctx.store.untag(name, tag)
    emit(package, f"removed {name}:{tag} (was {package.reference})")


@click.command()
@click.argument("reference")
@click.option("--downstream", is_flag=True, help="Follow consumers instead of inputs.")
@click.option("--depth", type=COUNT, help="Hops to follow (default all).")
@json_option
@pass_context
def lineage(ctx: CliContext, reference: str, downstream: bool, depth: int | None) -> None:
    """Show the inputs (or consumers) of a package, transitively."""
    start = ctx.store.describe(reference)
    edges = ctx.store.lineage(start.id, downstream=downstream, depth=depth)

    def text() -> None:
        click.echo(start.reference)
        arrow = "<-" if not downstream else "->"
        for edge, package in edges:
            click.echo(
                f"{'  ' * edge.depth}{arrow} {package.reference} ({package.kind}, {package.id})"
            )

    emit(
        lambda: {
            "package": start.to_dict(),
            "direction": "downstream" if downstream else "upstream",
            "edges": [
                {"depth": e.depth, "package_id": str(e.package_id),
                 "input_id": str(e.input_id), "related": p.to_dict()}
                for e, p in edges
            ],
        },
        text,
    )  # fmt: skip


@click.group()
def schema() -> None:
    """Metadata schemas per package kind."""


@schema.command("set")
@click.argument("kind")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@pass_context
def schema_set(ctx: CliContext, kind: str, file: Path) -> None:
    """Require metadata of KIND to satisfy the JSON Schema in FILE."""
    document = load_json(read_text(str(file), "schema file"), f"schema file {str(file)!r}")
    ctx.store.register_schema(kind, document)
    click.echo(f"metadata of kind {kind!r} must now satisfy {file}")


@schema.command("ls")
@json_option
@pass_context
def schema_list(ctx: CliContext) -> None:
    """List registered metadata schemas."""
    schemas = ctx.store.schemas()
    emit(
        schemas,
        lambda: table(
            ["kind", "schema"], [(k, json.dumps(v)[:80]) for k, v in sorted(schemas.items())]
        ),
    )


COMMANDS = (put, put_many, get, list_command, show, tag, untag, lineage, schema)
