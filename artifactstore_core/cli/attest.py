"""Attestations from the command line: ``evidence attest`` and ``evidence attestations``
(added to the ``evidence`` group on import)."""

from __future__ import annotations

from dataclasses import replace

import click

from artifactstore_core.cli._context import CliContext, pass_context
from artifactstore_core.cli._output import emit, json_option, table
from artifactstore_core.cli.evidence import evidence
from artifactstore_core.domain.package import Package
from artifactstore_core.evidence.attest import DsseAttestor


@evidence.command("attest")
@click.argument("reference")
@click.option(
    "--key",
    "key",
    required=True,
    help="Signing key: a private key file or a key URI (file2:, awskms:, gcpkms:, hv:).",
)
@click.option("--builder-id", help="builder.id of the statement [ARTIFACTSTORE_BUILDER_ID].")
@json_option
@pass_context
def attest(ctx: CliContext, reference: str, key: str, builder_id: str | None) -> None:
    """Sign the provenance statement of a package and store it as its attestation."""
    store = ctx.local_store
    # securesystemslib's signers import boto3 (~0.3 s): only the commands that use them pay.
    from artifactstore_core.evidence.keys import load_signer

    attestor = DsseAttestor.from_settings(load_signer(key), ctx.settings, actor=store.actor)
    if builder_id:
        attestor = replace(attestor, builder_id=builder_id)
    attestation = store.attest(reference, attestor)
    emit(
        attestation,
        f"attested {attestation.attests} as {attestation.reference} "
        f"(key {', '.join(attestation.metadata['key_ids'])})",
    )


@evidence.command("attestations")
@click.argument("reference")
@json_option
@pass_context
def attestations(ctx: CliContext, reference: str) -> None:
    """List the attestations of a package (retained exactly as long as it)."""
    found = ctx.store.attestations(reference)

    def text() -> None:
        table(["attestation", "status", "created", "keys"], [_row(a) for a in found])

    emit(found, text)


def _row(attestation: Package) -> tuple[str, str, str, str]:
    return (
        attestation.reference,
        attestation.status,
        attestation.created_at.isoformat(),
        ", ".join(attestation.metadata.get("key_ids", ())),
    )
