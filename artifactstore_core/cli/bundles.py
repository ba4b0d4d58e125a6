"""``evidence export`` and ``evidence verify``: offline evidence bundles."""

from __future__ import annotations

from pathlib import Path

import click

from artifactstore_core.cli._context import CliContext, pass_context
from artifactstore_core.cli._output import emit, json_option
from artifactstore_core.cli.evidence import evidence
from artifactstore_core.cli.transparency import read_text, vkey_option
from artifactstore_core.domain.checkpoint import NoteVerifier


@evidence.command("export")
@click.argument("reference")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--sign", "key", metavar="KEYURI", help="Also sign the statement with this key.")
@json_option
@pass_context
def export(ctx: CliContext, reference: str, target: Path, key: str | None) -> None:
    """Write the evidence bundle of REFERENCE to TARGET (a new directory, or FILE.tar):
    files, manifest, signed statements, the proof of its registration and a checkpoint."""
    # securesystemslib's signers import boto3 (~0.3 s): only the commands that use them pay.
    from artifactstore_core.evidence.keys import load_signer

    signer = load_signer(key) if key else None
    written = ctx.store.export_evidence(reference, target, signer=signer)
    emit({"ok": True, "bundle": str(written)}, f"wrote {written}")


@evidence.command("verify")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--key", "key_files", multiple=True, required=True, metavar="PUB",
    help="Public key (PEM) the statement must be signed by; repeatable.",
)  # fmt: skip
@vkey_option
@json_option
def verify(bundle: Path, key_files: tuple[str, ...], vkey: str) -> None:
    """Check BUNDLE offline, with no registry: the log's checkpoint and the proof of the
    registration, the manifest, every file, and a statement signed by --key naming them;
    exit 1 naming the part that fails."""
    from artifactstore_core.evidence.bundle import verify_bundle
    from artifactstore_core.evidence.keys import load_public_key

    report = verify_bundle(
        bundle,
        keys=[load_public_key(Path(path)) for path in key_files],
        log_verifier=NoteVerifier.parse(read_text(vkey, "verifier key")),
    )
    summary = report.to_dict()
    emit(
        summary,
        f"OK: {report.package} ({report.files} file(s), {report.size} bytes) is the package "
        f"registered as event {report.event_sequence} of log {report.checkpoint.origin} "
        f"(checkpoint size {report.checkpoint.size}); its statement is signed by "
        f"{', '.join(report.signed_by)}; built by run {summary['run_id'] or '(none)'} "
        f"from {len(summary['inputs'])} input(s)",
    )
