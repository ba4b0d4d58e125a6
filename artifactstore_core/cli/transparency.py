"""Transparency commands under ``log``: sign checkpoints, prove inclusion and consistency,
and verify a proof offline (no registry needed)."""

from __future__ import annotations

import base64
from pathlib import Path

import click

from artifactstore_core.cli._context import CliContext, pass_context
from artifactstore_core.cli._input import COUNT
from artifactstore_core.cli._output import emit, json_option
from artifactstore_core.cli.integrity import log
from artifactstore_core.domain.checkpoint import NoteVerifier
from artifactstore_core.domain.tlog_proof import TlogProof
from artifactstore_core.errors import CheckpointError, InvalidInputError
from artifactstore_core.eventlog.chain import split_chain_input
from artifactstore_core.transparency import load_note_signer

MAX_TEXT_FILE = 1 << 20


def read_text(value: str, what: str) -> str:
    """``value`` itself, or the text of the file ``@PATH`` or ``PATH`` names (at most 1 MiB)."""
    path = Path(value.removeprefix("@"))
    if value.startswith("@") or path.is_file():
        try:
            with path.open("rb") as file:
                data = file.read(MAX_TEXT_FILE + 1)
        except OSError as exc:
            raise InvalidInputError(f"cannot read the {what} {str(path)!r}: {exc}") from exc
        if len(data) > MAX_TEXT_FILE:
            raise InvalidInputError(f"the {what} {str(path)!r} is larger than 1 MiB")
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise InvalidInputError(f"the {what} {str(path)!r} is not UTF-8 text") from None
    return value


vkey_option = click.option(
    "--vkey",
    required=True,
    metavar="VKEY",
    help="The log's verifier key <origin>+<id>+<key> (text, or a file holding it).",
)


def _output(text: str, out: Path | None, result: dict[str, object]) -> None:
    """Write ``text`` to ``out`` (saying so) or print it; ``--json`` prints ``result``."""
    if out is not None:
        out.write_text(text)
    emit(result, lambda: click.echo(f"wrote {out}") if out else click.echo(text, nl=False))


@log.command("checkpoint")
@click.option("--key", help="Ed25519 PEM private key signing it [ARTIFACTSTORE_LOG_KEY].")
@click.option("--origin", help="The log's name in the checkpoint [ARTIFACTSTORE_LOG_ORIGIN].")
@click.option("--latest", is_flag=True, help="Print the latest checkpoint, sign nothing.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write it here.")
@json_option
@pass_context
def checkpoint(
    ctx: CliContext, key: str | None, origin: str | None, latest: bool, out: Path | None
) -> None:
    """Sign and store a checkpoint of the whole log (a C2SP signed note); exit 1 if the
    log does not extend the latest checkpoint (truncated or rewritten)."""
    store = ctx.local_store
    signer = None
    if key:
        name = origin or ctx.settings.log_origin
        if not name:
            raise click.UsageError("--key needs --origin (or ARTIFACTSTORE_LOG_ORIGIN)")
        signer = load_note_signer(key, name)
    signed = store.latest_checkpoint(origin) if latest else store.checkpoint(signer)
    _output(signed.note, out, signed.to_dict())


@log.command("prove")
@click.argument("sequence", type=COUNT, required=False)
@click.option("--package", "reference", help="Prove the event that registered this package.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write it here.")
@json_option
@pass_context
def prove(ctx: CliContext, sequence: int | None, reference: str | None, out: Path | None) -> None:
    """Print the offline inclusion proof (C2SP tlog-proof) of event SEQUENCE, or of a
    package's registration, against the latest checkpoint."""
    if (sequence is None) == (reference is None):
        raise click.UsageError("give an event SEQUENCE or --package REFERENCE")
    store = ctx.local_store
    proof = store.prove_package(reference) if reference else store.prove(sequence or 0)
    text = proof.to_text()
    _output(text, out, {"index": proof.index, "sequence": proof.index + 1, "proof": text})


@log.command("consistency")
@click.argument("old_checkpoint")
@vkey_option
@json_option
@pass_context
def consistency(ctx: CliContext, old_checkpoint: str, vkey: str) -> None:
    """Check that OLD_CHECKPOINT (a signed note, or a file holding one) is a prefix of the
    log's latest checkpoint and print the proof; exit 1 if the log was truncated,
    rewritten or forked since."""
    verifier = NoteVerifier.parse(read_text(vkey, "verifier key"))
    result = ctx.local_store.prove_consistency(read_text(old_checkpoint, "checkpoint"), verifier)
    proof = [base64.b64encode(h).decode() for h in result.proof]
    emit(
        lambda: {"ok": True, "old_size": result.old.size, "new": result.new.to_dict(),
                 "proof": proof},
        lambda: click.echo(
            f"OK: the checkpoint of size {result.old.size} is a prefix of the log's checkpoint "
            f"of size {result.new.checkpoint.size}\n" + "".join(p + "\n" for p in proof)
            + "\n" + result.new.note, nl=False,
        ),
    )  # fmt: skip


@log.command("verify-proof")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@vkey_option
@json_option
def verify_proof(proof_file: Path, vkey: str) -> None:
    """Verify a tlog-proof offline: the checkpoint's signature and the path from the leaf
    to its root; exit 1 naming what failed. Needs no registry."""
    verifier = NoteVerifier.parse(read_text(vkey, "verifier key"))
    proof = TlogProof.parse(read_text(f"@{proof_file}", "proof"))
    checkpoint = proof.verify(verifier)
    try:
        fields = split_chain_input(proof.extra) if proof.extra is not None else {}
    except ValueError as exc:
        raise CheckpointError(
            f"the proof's extra data is not an event's chain input: {exc}"
        ) from None
    emit(
        lambda: {"ok": True, "origin": checkpoint.origin, "size": checkpoint.size,
                 "index": proof.index, "event": fields},
        f"OK: event {fields.get('sequence', proof.index + 1)} "
        f"({fields.get('event_type', 'leaf')} {fields.get('subject_id', '')}) is in the log "
        f"{checkpoint.origin} of {checkpoint.size} events",
    )  # fmt: skip
