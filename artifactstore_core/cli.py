"""The ``artifactstore`` command line: parse, call ``ArtifactStore``, print.

Exit codes: 0 success, 1 a failed check (integrity, verification, view differences) or
a failing environment (disk full, read-only storage), 2 bad usage or input; one place
maps errors to them (``exit_code``), and every error is one ``error:`` line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from artifactstore_core import migrate as migrations
from artifactstore_core.config import Settings, is_read_only, load_settings
from artifactstore_core.domain import limits
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.retention import TIERS
from artifactstore_core.errors import ArtifactStoreError, IntegrityError, InvalidInputError
from artifactstore_core.ingest import PutRequest
from artifactstore_core.sources import collect
from artifactstore_core.store import ArtifactStore

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


def exit_code(error: BaseException) -> int:
    """The one mapping of errors to exit codes: a failed check (integrity) or a failing
    environment (disk full, read-only storage: ``OSError``) is 1, bad input is 2."""
    if isinstance(error, IntegrityError | OSError):
        return EXIT_CHECK_FAILED
    return EXIT_BAD_INPUT


class _Failure(click.ClickException):
    """A typed error, shown as one ``error:`` line."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _CheckFailed(_Failure):
    exit_code = EXIT_CHECK_FAILED


class _BadInput(_Failure):
    exit_code = EXIT_BAD_INPUT


def _failure(error: ArtifactStoreError | OSError) -> _Failure:
    message = " ".join(str(error).split()) or type(error).__name__
    return (_CheckFailed if exit_code(error) == EXIT_CHECK_FAILED else _BadInput)(message)


class _Group(click.Group):
    """Turns the typed errors of every subcommand into ``_Failure``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ArtifactStoreError, OSError) as error:
            raise _failure(error) from error


class _Context:
    """Settings from options and environment; the store is opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: ArtifactStore | None = None

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = ArtifactStore.from_settings(self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_context = click.make_pass_decorator(_Context)


def _json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(function)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers], *[["" if v is None else str(v) for v in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * w for w in widths))


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(count)


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A byte progress bar on a terminal for large work; nothing otherwise."""
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _time(value: str | None, option: str) -> dt.datetime | None:
    return None if value is None else limits.parse_time(value, option)


def _read_text(path: str, what: str) -> str:
    """The UTF-8 text of file ``path``, refused beyond ``MAX_READ_BYTES`` (``@/dev/zero``)."""
    try:
        with open(path, "rb") as file:
            data = file.read(limits.MAX_READ_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read {what} {path!r}: {exc}") from exc
    if len(data) > limits.MAX_READ_BYTES:
        raise InvalidInputError(
            f"{what} {path!r} is larger than the limit of {limits.MAX_READ_BYTES:,} bytes"
        )
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what} {path!r} is not UTF-8 text: {exc}") from exc


def _load_json(text: str, what: str) -> Any:
    """JSON text as a value; malformed, too deep or huge-integer JSON is ``InvalidInputError``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} is not valid JSON ({exc}): {text[:60]!r}") from exc
    except RecursionError as exc:
        raise InvalidInputError(
            f"{what} is nested too deeply (the limit is {limits.MAX_JSON_DEPTH} levels)"
        ) from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise InvalidInputError(f"{what} is not acceptable JSON: {exc}") from exc


_INT = click.IntRange(min=0, max=limits.INT_MAX)
_COUNT = click.IntRange(min=1, max=limits.INT_MAX)


@click.group(cls=_Group)
@click.option("--database-url", help="Registry database URL [ARTIFACTSTORE_DATABASE_URL].")
@click.option("--storage-url", help="Blob storage URL [ARTIFACTSTORE_STORAGE_URL].")
@click.option("--actor", help="Actor recorded on events [ARTIFACTSTORE_ACTOR].")
@click.version_option(package_name="artifact-store")
@click.pass_context
def cli(
    ctx: click.Context, database_url: str | None, storage_url: str | None, actor: str | None
) -> None:
    """artifact-store: a content-addressed registry for generated artifacts."""
    overrides = {"database_url": database_url, "storage_url": storage_url, "actor": actor}
    context = _Context(load_settings(**{k: v for k, v in overrides.items() if v}))
    ctx.obj = context
    ctx.call_on_close(context.close)


@cli.command()
@pass_context
def migrate(ctx: _Context) -> None:
    """Create or upgrade the registry schema (alembic upgrade head)."""
    migrations.migrate(ctx.settings.database_url)
    click.echo(f"registry at {ctx.settings.database_url} is at the latest schema revision")


def _print_package(package: Package) -> None:
    rows = [
        ("id", package.id),
        ("reference", package.reference),
        ("kind", package.kind),
        ("status", package.status + (" (on hold)" if package.on_hold else "")),
        ("content address", package.content_address),
        ("sha256", package.digest_sha256),
        ("size", f"{_size(package.size)} in {len(package.files)} file(s)"),
        ("created", f"{package.created_at.isoformat()} by {package.actor}"),
        ("retention", f"{package.retention_class}, expires {package.expires_at or 'never'}"),
        (
            "tier",
            package.retrieval_tier
            + (f" ({package.restore_status})" if package.restore_status else ""),
        ),
        ("tags", ", ".join(package.tags) or "-"),
        ("inputs", ", ".join(package.provenance.inputs) or "-"),
    ]
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
    _table(
        ["path", "size", "content address"],
        [(e.path, _size(e.blob.size), e.blob.content_address) for e in package.files],
    )


def _parse_metadata(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    text = _read_text(value[1:], "metadata file") if value.startswith("@") else value
    parsed = _load_json(text, "--metadata")
    if not isinstance(parsed, dict):
        raise InvalidInputError(f"--metadata must be a JSON object, got {text[:60]!r}")
    return parsed


@cli.command()
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--kind", default="output", show_default=True, help="Package kind.")
@click.option("--retention-class", help="Retention class (default from settings).")
@click.option("--metadata", help="JSON object, or @file with one.")
@click.option("--input", "inputs", multiple=True, help="Reference of an input package.")
@click.option("--run-id", help="Run that produced the package.")
@click.option("--producer", help="What produced the package.")
@click.option("--code-version", help="Version of the producing code.")
@_json_option
@pass_context
def put(
    ctx: _Context,
    name: str,
    paths: tuple[Path, ...],
    kind: str,
    retention_class: str | None,
    metadata: str | None,
    inputs: tuple[str, ...],
    run_id: str | None,
    producer: str | None,
    code_version: str | None,
    as_json: bool,
) -> None:
    """Store files (or directories) as a new version of package NAME."""
    sources = collect(paths[0] if len(paths) == 1 else list(paths))  # walked once
    total = sum(source.size_hint or 0 for source in sources)
    provenance = {"run_id": run_id, "producer": producer, "code_version": code_version}
    with _progress(total, f"storing {name}") as progress:
        package = ctx.store.put(
            name,
            sources,
            kind=kind,
            metadata=_parse_metadata(metadata),
            retention_class=retention_class,
            inputs=inputs,
            provenance=provenance,
            progress=progress,
        )
    if as_json:
        _echo_json(package.to_dict())
    else:
        click.echo(f"stored {package.reference} {package.content_address} ({_size(package.size)})")


_SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "paths": (list,), "kind": (str,), "retention_class": (str, type(None)),
    "metadata": (dict, type(None)), "inputs": (list,), "run_id": (str, type(None)),
    "producer": (str, type(None)), "code_version": (str, type(None)),
}  # fmt: skip
_SPEC_KEYS = set(_SPEC_TYPES)


def _spec_lines(spec: Any) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines of a binary spec stream, each bounded and decoded."""
    number = 0
    while line := spec.readline(limits.MAX_READ_BYTES + 1):
        number += 1
        if len(line) > limits.MAX_READ_BYTES:
            raise InvalidInputError(
                f"spec line {number} is longer than {limits.MAX_READ_BYTES:,} bytes"
            )
        try:
            text = line.decode()
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"spec line {number} is not UTF-8 text: {exc}") from exc
        if text.strip():
            yield number, text


def _put_request(line_number: int, line: str) -> PutRequest:
    """One line of a ``put-many`` spec as a request; errors name the line."""
    where = f"spec line {line_number}"
    spec = _load_json(line, where)
    if not isinstance(spec, dict):
        raise InvalidInputError(f"{where} must be a JSON object, got {line[:60]!r}")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(_SPEC_KEYS))}"
        )
    paths = spec.get("paths")
    if not isinstance(spec.get("name"), str) or not isinstance(paths, list) or not paths:
        raise InvalidInputError(f'{where}: needs "name" (text) and "paths" (a non-empty list)')
    for key, value in spec.items():
        if not isinstance(value, _SPEC_TYPES[key]):
            wanted = " or ".join(
                "null" if t is type(None) else t.__name__ for t in _SPEC_TYPES[key]
            )
            raise InvalidInputError(f"{where}: {key!r} must be {wanted}, got {value!r:.60}")
    for key in ("paths", "inputs"):
        for index, item in enumerate(spec.get(key, ())):
            limits.check_text(item, f"{where}: {key}[{index}]")
    for path in map(Path, paths):
        if not path.exists():
            raise InvalidInputError(f"{where}: path {str(path)!r} does not exist")
    return PutRequest(
        spec["name"],
        Path(paths[0]) if len(paths) == 1 else [Path(p) for p in paths],
        kind=spec.get("kind", "output"),
        metadata=spec.get("metadata"),
        retention_class=spec.get("retention_class"),
        inputs=spec.get("inputs", ()),
        provenance={k: spec.get(k) for k in ("run_id", "producer", "code_version")},
    )


@cli.command("put-many")
@click.argument("spec", type=click.File("rb"))
@_json_option
@pass_context
def put_many(ctx: _Context, spec: Any, as_json: bool) -> None:
    """Store many packages in one transaction, all or none, from SPEC (JSON Lines, - for
    stdin): one object per line with "name", "paths" and optionally "kind",
    "retention_class", "metadata", "inputs", "run_id", "producer", "code_version"."""
    requests = [_put_request(number, line) for number, line in _spec_lines(spec)]
    packages = ctx.store.put_many(requests)
    if as_json:
        _echo_json([package.to_dict() for package in packages])
    else:
        for package in packages:
            click.echo(f"stored {package.reference} {package.content_address}")


@cli.command()
@click.argument("reference")
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--purpose", help="Why the package is read (recorded).")
@click.option("--no-record", is_flag=True, help="Do not record the retrieval.")
@_json_option
@pass_context
def get(
    ctx: _Context,
    reference: str,
    destination: Path,
    force: bool,
    purpose: str | None,
    no_record: bool,
    as_json: bool,
) -> None:
    """Write the files of package REFERENCE into DESTINATION (verified).

    The retrieval is recorded unless --no-record or the registry is read-only (then a
    note says so on stderr).
    """
    package = ctx.store.describe(reference)
    read_only = is_read_only(ctx.store.engine)
    with _progress(package.size, f"reading {package.reference}") as progress:
        package = ctx.store.export(
            package.id,
            destination,
            force=force,
            purpose=purpose,
            progress=progress,
            record=not (no_record or read_only),
        )
    if read_only and not no_record:
        click.echo("retrieval not recorded: the registry is read-only", err=True)
    if as_json:
        _echo_json(package.to_dict())
    else:
        click.echo(f"wrote {len(package.files)} file(s) of {package.reference} to {destination}")


@cli.command("ls")
@click.argument("prefix", required=False)
@click.option("--kind")
@click.option("--tag")
@click.option("--retention-class")
@click.option("--status", type=click.Choice(["active", "expired"]))
@click.option("--run-id", help="Only packages produced by this run.")
@click.option("--created-after", help="ISO timestamp.")
@click.option("--created-before", help="ISO timestamp.")
@click.option("--limit", type=_COUNT)
@_json_option
@pass_context
def list_command(
    ctx: _Context,
    prefix: str | None,
    kind: str | None,
    tag: str | None,
    retention_class: str | None,
    status: str | None,
    run_id: str | None,
    created_after: str | None,
    created_before: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List packages, optionally those whose name starts with PREFIX."""
    packages = ctx.store.list_packages(
        name_prefix=prefix,
        kind=kind,
        tag=tag,
        retention_class=retention_class,
        status=status,
        run_id=run_id,
        created_after=_time(created_after, "--created-after"),
        created_before=_time(created_before, "--created-before"),
        limit=limit,
    )
    if as_json:
        _echo_json([p.to_dict() for p in packages])
        return
    _table(
        ["reference", "kind", "size", "files", "class", "status", "tags", "created"],
        [
            (p.reference, p.kind, _size(p.size), len(p.files), p.retention_class, p.status,
             ",".join(p.tags), p.created_at.isoformat(timespec="seconds"))
            for p in packages
        ],
    )  # fmt: skip


@cli.command()
@click.argument("reference")
@_json_option
@pass_context
def show(ctx: _Context, reference: str, as_json: bool) -> None:
    """Show a package: identity, retention, provenance, files."""
    package = ctx.store.describe(reference)
    if as_json:
        _echo_json(package.to_dict())
    else:
        _print_package(package)


@cli.command()
@click.argument("reference")
@click.argument("tag")
@_json_option
@pass_context
def tag(ctx: _Context, reference: str, tag: str, as_json: bool) -> None:
    """Point TAG of the package's name at package REFERENCE."""
    package = ctx.store.tag(reference, tag)
    if as_json:
        _echo_json(package.to_dict())
    else:
        click.echo(f"{package.name}:{tag} -> {package.reference}")


@cli.command()
@click.argument("reference")
@click.option("--downstream", is_flag=True, help="Follow consumers instead of inputs.")
@click.option("--depth", type=_COUNT, help="Hops to follow (default all).")
@_json_option
@pass_context
def lineage(
    ctx: _Context, reference: str, downstream: bool, depth: int | None, as_json: bool
) -> None:
    """Show the inputs (or consumers) of a package, transitively."""
    start = ctx.store.describe(reference)
    edges = ctx.store.lineage(start.id, downstream=downstream, depth=depth)
    if as_json:
        _echo_json(
            {
                "package": start.to_dict(),
                "direction": "downstream" if downstream else "upstream",
                "edges": [
                    {"depth": e.depth, "package_id": str(e.package_id),
                     "input_id": str(e.input_id), "related": p.to_dict()}
                    for e, p in edges
                ],
            }
        )  # fmt: skip
        return
    click.echo(start.reference)
    for edge, package in edges:
        arrow = "<-" if not downstream else "->"
        click.echo(f"{'  ' * edge.depth}{arrow} {package.reference} ({package.kind}, {package.id})")


@cli.command()
@click.argument("reference", required=False)
@click.option("--all", "everything", is_flag=True, help="Verify every active package.")
@click.option("--exists-only", is_flag=True, help="Check presence, do not re-hash.")
@click.option(
    "--repair",
    is_flag=True,
    help="Copy missing or corrupt blobs from an intact copy in another tier.",
)
@_json_option
@pass_context
def verify(
    ctx: _Context,
    reference: str | None,
    everything: bool,
    exists_only: bool,
    repair: bool,
    as_json: bool,
) -> None:
    """Re-hash the stored bytes of REFERENCE (or --all); exit 1 on any problem left."""
    if bool(reference) == everything:
        raise click.UsageError("give a package REFERENCE or --all")
    total = ctx.store.describe(reference).size if reference else 0
    with _progress(total, "verifying") as progress:
        result = ctx.store.verify(
            reference, rehash=not exists_only, repair=repair, progress=progress
        )
    if as_json:
        _echo_json(
            {
                "ok": result.ok,
                "packages": result.packages,
                "blobs": result.blobs,
                "bytes_verified": result.bytes_verified,
                "problems": [problem.__dict__ for problem in result.problems],
                "repaired": [problem.__dict__ for problem in result.repaired],
            }
        )
    else:
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
            f"{_size(result.bytes_verified)} re-hashed"
        )
    if not result.ok:
        sys.exit(EXIT_CHECK_FAILED)


@cli.group()
def log() -> None:
    """The event log."""


@log.command("verify")
@_json_option
@pass_context
def log_verify(ctx: _Context, as_json: bool) -> None:
    """Walk the hash chain; exit 1 naming the first bad sequence."""
    report = ctx.store.verify_log()
    if as_json:
        _echo_json({"ok": True, "checked": report.checked, "head_sequence": report.head_sequence,
                    "head_digest": report.head_digest})  # fmt: skip
    else:
        click.echo(
            f"OK: {report.checked} event(s), head {report.head_sequence} {report.head_digest}"
        )


@cli.group()
def views() -> None:
    """The projections (view tables) derived from the event log."""


@views.command("rebuild")
@pass_context
def views_rebuild(ctx: _Context) -> None:
    """Drop the views and replay the whole event log into them."""
    count = ctx.store.rebuild_views()
    click.echo(f"rebuilt the views from {count} event(s)")


@views.command("check")
@_json_option
@pass_context
def views_check(ctx: _Context, as_json: bool) -> None:
    """Replay the log into scratch tables and compare; exit 1 on any difference."""
    differences = ctx.store.check_views()
    if as_json:
        _echo_json({"ok": not differences, "differences": [d.__dict__ for d in differences]})
    else:
        for diff in differences:
            click.echo(f"DIFF {diff.table} {diff.key}: live={diff.live} rebuilt={diff.rebuilt}")
        click.echo("OK: views match the event log" if not differences else "FAILED")
    if differences:
        sys.exit(EXIT_CHECK_FAILED)


@cli.command()
@click.option("--since", type=_INT, default=0, help="After this sequence.")
@click.option("--subject", help="KIND:ID, e.g. package:<id> or blob:blake3:<hex>.")
@click.option("--limit", type=_COUNT, default=1000, show_default=True)
@_json_option
@pass_context
def events(ctx: _Context, since: int, subject: str | None, limit: int, as_json: bool) -> None:
    """List recorded events."""
    kind, _, subject_id = (subject or "").partition(":")
    if subject and not subject_id:
        raise click.BadParameter("use KIND:ID", param_hint="--subject")
    items = ctx.store.events(
        since=since, subject_kind=kind or None, subject_id=subject_id or None, limit=limit
    )
    if as_json:
        _echo_json(
            [
                {"sequence": e.sequence, "created_at": e.created_at.isoformat(), "actor": e.actor,
                 "event_type": e.event.event_type, "subject_kind": e.event.subject_kind,
                 "subject_id": e.event.subject_id, "payload": e.event.to_payload(),
                 "payload_digest": e.payload_digest, "chain_digest": e.chain_digest}
                for e in items
            ]
        )  # fmt: skip
        return
    _table(
        ["seq", "time", "type", "subject", "actor"],
        [(e.sequence, e.created_at.isoformat(timespec="seconds"), e.event.event_type,
          f"{e.event.subject_kind}:{e.event.subject_id}", e.actor) for e in items],
    )  # fmt: skip


@cli.group()
def schema() -> None:
    """Metadata schemas per package kind."""


@schema.command("set")
@click.argument("kind")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@pass_context
def schema_set(ctx: _Context, kind: str, file: Path) -> None:
    """Require metadata of KIND to satisfy the JSON Schema in FILE."""
    document = _load_json(_read_text(str(file), "schema file"), f"schema file {str(file)!r}")
    ctx.store.register_schema(kind, document)
    click.echo(f"metadata of kind {kind!r} must now satisfy {file}")


@schema.command("ls")
@_json_option
@pass_context
def schema_list(ctx: _Context, as_json: bool) -> None:
    """List registered metadata schemas."""
    schemas = ctx.store.schemas()
    if as_json:
        _echo_json(schemas)
    else:
        _table(["kind", "schema"], [(k, json.dumps(v)[:80]) for k, v in sorted(schemas.items())])


@cli.command()
@click.argument("reference")
@click.option("--reason", required=True, help="Why the package must be kept.")
@click.option("--kind", type=click.Choice(["legal", "operational"]), default="legal",
              show_default=True)  # fmt: skip
@_json_option
@pass_context
def hold(ctx: _Context, reference: str, reason: str, kind: str, as_json: bool) -> None:
    """Place a hold on a package: it never expires and keeps its bytes until released."""
    placed = ctx.store.place_hold(reference, reason=reason, kind=kind)
    if as_json:
        _echo_json(placed.to_dict())
    else:
        click.echo(f"hold {placed.hold_id} placed on {reference}")


@cli.command()
@click.argument("reference")
@click.option("--hold", "hold_id", required=True, help="Id of the hold to release.")
@click.option("--reason", help="Why it is released.")
@pass_context
def release(ctx: _Context, reference: str, hold_id: str, reason: str | None) -> None:
    """Release one hold of a package."""
    package = ctx.store.release_hold(reference, hold_id, reason=reason)
    click.echo(f"hold {hold_id} released; {package.reference} has {len(package.holds)} left")


@cli.group()
def retention() -> None:
    """Retention: change class or expiry, sweep, explain."""


@retention.command("set")
@click.argument("reference")
@click.option("--class", "class_name", help="New retention class.")
@click.option("--expires-at", help="New expiry, ISO 8601, or 'never'.")
@click.option("--override", is_flag=True, help="Allow shortening (not for protected classes).")
@click.option("--reason", help="Why (required with --override).")
@_json_option
@pass_context
def retention_set(
    ctx: _Context,
    reference: str,
    class_name: str | None,
    expires_at: str | None,
    override: bool,
    reason: str | None,
    as_json: bool,
) -> None:
    """Change the class and/or expiry of a package."""
    if not class_name and not expires_at:
        raise click.UsageError("give --class and/or --expires-at")
    never = expires_at == "never"
    package = ctx.store.set_retention(
        reference,
        retention_class=class_name,
        expires_at=None if never else _time(expires_at, "--expires-at"),
        never_expires=never,
        override=override,
        reason=reason,
    )
    if as_json:
        _echo_json(package.to_dict())
    else:
        click.echo(
            f"{package.reference}: {package.retention_class}, "
            f"expires {package.expires_at.isoformat() if package.expires_at else 'never'}"
        )


@retention.command("sweep")
@click.option("--now", help="Sweep as of this ISO 8601 time (default: now).")
@click.option("--dry-run", is_flag=True, help="Print the exact plan; change nothing.")
@click.option(
    "--grace-seconds",
    type=click.IntRange(min=0, max=limits.MAX_DURATION_SECONDS),
    help="Override the GC grace.",
)
@click.option("--limit", type=_COUNT, help="At most this many items per step.")
@_json_option
@pass_context
def retention_sweep(
    ctx: _Context,
    now: str | None,
    dry_run: bool,
    grace_seconds: int | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Expire due packages, move tiers, delete blobs no live package needs."""
    at = _time(now, "--now")
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
    if as_json:
        _echo_json(result.to_dict())
        return
    plan = result.plan
    verb = "would" if result.dry_run else "did"
    click.echo(f"sweep at {plan.now.isoformat()} ({'dry run' if result.dry_run else 'done'})")
    if plan.expire:
        rows = [(p.reference, p.retention_class, p.expires_at.isoformat()) for p in plan.expire]
        _table(["expire", "class", "expires at"], rows)
    if plan.tier_moves:
        _table(
            ["move", "from", "to"], [(m.reference, m.from_tier, m.to_tier) for m in plan.tier_moves]
        )
    if plan.delete:
        deletions = [(d.content_address, d.backend, _size(d.size), d.reason) for d in plan.delete]
        _table(["delete blob", "tier", "size", "reason"], deletions)
    click.echo(
        f"{verb} expire {len(plan.expire)} package(s), move {len(plan.tier_moves)}, delete "
        f"{len(plan.delete)} blob(s) reclaiming {_size(plan.bytes_to_reclaim)}; "
        f"{plan.shared_kept_blobs} blob(s) ({_size(plan.shared_kept_bytes)}) stay because live "
        "packages share them"
        + (f"; {plan.moves_without_backend} tier move(s) skipped: no backend configured"
           if plan.moves_without_backend else "")
    )  # fmt: skip


@retention.command("explain")
@click.argument("reference")
@click.option("--now", help="As of this ISO 8601 time.")
@_json_option
@pass_context
def retention_explain(ctx: _Context, reference: str, now: str | None, as_json: bool) -> None:
    """Say why a package is still kept, or when it will go."""
    explanation = ctx.store.explain(reference, now=_time(now, "--now"))
    if as_json:
        _echo_json(explanation.to_dict())
        return
    info = explanation.to_dict()
    click.echo(f"{info['reference']}: {info['verdict']}")
    click.echo(f"  class {info['retention_class']}, expires {info['expires_at'] or 'never'}, "
               f"status {info['status']}, tier {info['tier']}")  # fmt: skip
    for hold_info in info["holds"]:
        click.echo(f"  hold {hold_info['hold_id']} ({hold_info['kind']}) by {hold_info['actor']}: "
                   f"{hold_info['reason']}")  # fmt: skip
    if explanation.shared_blobs:
        click.echo(
            f"  {explanation.shared_blobs} blob(s) ({_size(explanation.shared_bytes)}) shared with "
            f"live packages: {', '.join(explanation.sharing_packages[:10])}"
        )


@cli.group()
def tier() -> None:
    """Storage tiers (hot, cold, archive)."""


@tier.command("move")
@click.argument("reference")
@click.option("--to", "target", required=True, type=click.Choice(TIERS))
@pass_context
def tier_move(ctx: _Context, reference: str, target: str) -> None:
    """Move a package's bytes to another tier (copied, verified, then old copies removed)."""
    package = ctx.store.move_tier(reference, target)
    click.echo(f"{package.reference} is now in tier {package.retrieval_tier}")


@cli.command()
@click.argument("reference")
@pass_context
def restore(ctx: _Context, reference: str) -> None:
    """Bring an archived package back to the hot tier so it can be read."""
    package = ctx.store.restore(reference)
    click.echo(f"{package.reference} restored ({package.restore_status})")


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
