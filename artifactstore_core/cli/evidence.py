"""Signing keys and provenance statements: ``keys generate|show``, ``evidence statement``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from artifactstore_core.cli._context import CliContext, pass_context
from artifactstore_core.cli._output import emit, json_option
from artifactstore_core.evidence.statements import statement_for

if TYPE_CHECKING:
    from securesystemslib.signer import SSlibKey


@click.group()
def keys() -> None:
    """Signing keys: generate an Ed25519 key pair, show a key's id and verifier key."""


def _describe(path: Path, key: SSlibKey, origin: str | None) -> dict[str, Any]:
    # securesystemslib's signers import boto3 (~0.3 s): only the commands that use them pay.
    from artifactstore_core.evidence import keys as evidence_keys

    described: dict[str, Any] = {
        "file": str(path),
        "keyid": key.keyid,
        "keytype": key.keytype,
        "scheme": key.scheme,
        "public_key_pem": evidence_keys.public_pem(key),
    }
    if origin is not None:
        described["verifier_key"] = evidence_keys.verifier_key(origin, key)
    return described


def _show(described: dict[str, Any]) -> None:
    for field in ("file", "keyid", "keytype", "scheme", "verifier_key"):
        if field in described:
            click.echo(f"{field}: {described[field]}")
    click.echo(described["public_key_pem"], nl=False)


@keys.command("generate")
@click.argument("prefix", type=click.Path(path_type=Path))
@json_option
def generate(prefix: Path) -> None:
    """Write PREFIX.key (private, mode 0600) and PREFIX.pub; never overwrites."""
    from artifactstore_core.evidence import keys as evidence_keys

    private, public = evidence_keys.generate_keypair(prefix)
    described = _describe(public, evidence_keys.load_public_key(public), None)
    described = {"private_key": str(private), "public_key": described.pop("file"), **described}
    emit(
        described,
        f"wrote {private} (private, keep it secret) and {public} "
        f"(public); key id {described['keyid']}",
    )


@keys.command("show")
@click.argument("keyfile", type=click.Path(path_type=Path))
@click.option("--origin", help="Also print the C2SP verifier key of this log origin.")
@json_option
def show(keyfile: Path, origin: str | None) -> None:
    """Show the id, type and public PEM of a key file (public or private)."""
    from artifactstore_core.evidence import keys as evidence_keys

    described = _describe(keyfile, evidence_keys.load_public_key(keyfile), origin)
    emit(described, lambda: _show(described))


@click.group()
def evidence() -> None:
    """Verifiable evidence: provenance statements of packages."""


@evidence.command("statement")
@click.argument("reference")
@click.option("--builder-id", help="builder.id [ARTIFACTSTORE_BUILDER_ID].")
@json_option
@pass_context
def statement(ctx: CliContext, reference: str, builder_id: str | None) -> None:
    """Print the in-toto provenance statement of a package (canonical JSON)."""
    data = statement_for(ctx.store, reference, builder_id=builder_id, settings=ctx.settings)
    emit(lambda: json.loads(data), data.decode())


COMMANDS = (keys, evidence)
