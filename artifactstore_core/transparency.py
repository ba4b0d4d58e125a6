"""The registry as a transparency log: signed checkpoints of its event log's Merkle tree,
inclusion proofs for events and consistency proofs between checkpoints.

A checkpoint is issued under the chain lock and only after the tree it extends (the
latest stored checkpoint of the same origin) is checked to be a prefix of the current
tree: a truncated, rewritten or forked log is refused, never signed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from artifactstore_core.domain import merkle
from artifactstore_core.domain.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    SignedCheckpoint,
)
from artifactstore_core.domain.tlog_proof import TlogProof
from artifactstore_core.errors import (
    CheckpointError,
    ConfigurationError,
    EventLogTamperedError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)
from artifactstore_core.eventlog import codec
from artifactstore_core.eventlog.chain import EventHeader, chain_input
from artifactstore_core.eventlog.log import EventLog
from artifactstore_core.eventlog.tree import LogTree
from artifactstore_core.ledger import Ledger
from artifactstore_core.schema import artifact_packages, events, log_checkpoints


@dataclass(frozen=True)
class Consistency:
    """An older checkpoint shown to be a prefix of a newer one, with the proof."""

    old: Checkpoint
    new: SignedCheckpoint
    proof: tuple[bytes, ...]


def load_note_signer(key: str | Path, origin: str) -> NoteSigner:
    """The note signer for ``origin`` whose Ed25519 private key is the PEM file ``key``
    (a path, or a ``file2:`` URI as securesystemslib writes them)."""
    path = Path(str(key).removeprefix("file2:"))
    try:
        private = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the log key {str(path)!r}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"the log key {str(path)!r} is not a PEM private key") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigurationError(f"the log key {str(path)!r} is not an Ed25519 key")
    return NoteSigner(origin, private)


def log_signer_from_env(origin: str | None, key: str | None) -> NoteSigner | None:
    """The configured log signer, or None when no log key is configured."""
    if not key:
        return None
    if not origin:
        raise ConfigurationError(
            "ARTIFACTSTORE_LOG_KEY is set but ARTIFACTSTORE_LOG_ORIGIN is not: a checkpoint "
            "names its log, e.g. 'artifacts.example.org/prod'"
        )
    return load_note_signer(os.path.expanduser(key), origin)


def issue_checkpoint(ledger: Ledger, signer: NoteSigner) -> SignedCheckpoint:
    """Sign and store a checkpoint of the whole log under ``signer.name`` (its origin), or
    return the latest one if the log has not grown since. ``IntegrityError`` when the log
    is not an extension of the latest stored checkpoint: nothing is signed then."""
    with ledger.locked() as conn:
        size = EventLog().head(conn)
        tree = LogTree(conn)
        previous = _latest(conn, signer.name)
        tree.prefetch(lambda: (tree.root(size), previous and tree.root(previous.checkpoint.size)))
        if previous is not None:
            _check_extends(tree, size, previous.checkpoint)
            if previous.checkpoint.size == size:
                return previous
        checkpoint = Checkpoint(signer.name, size, tree.root(size))
        signed = SignedCheckpoint(checkpoint, signer.sign(checkpoint.to_text()), ledger.clock())
        conn.execute(
            sa.insert(log_checkpoints).values(
                origin=checkpoint.origin,
                size=checkpoint.size,
                root=checkpoint.root,
                note=signed.note,
                issued_at=signed.issued_at,
            )
        )
        return signed


def latest_checkpoint(ledger: Ledger, origin: str | None = None) -> SignedCheckpoint | None:
    """The latest stored checkpoint (of ``origin``, if given)."""
    with ledger.reading() as conn:
        return _latest(conn, origin)


def check_checkpoints(conn: sa.Connection, size: int) -> int:
    """Check the log of ``size`` events against the latest stored checkpoint of each
    origin; returns how many were checked. A log shorter than a checkpoint (its tail
    deleted) or whose tree differs from one (history rewritten) is
    ``EventLogTamperedError``."""
    tree = LogTree(conn)
    origins = conn.execute(sa.select(log_checkpoints.c.origin).distinct()).scalars().all()
    for origin in origins:
        latest = _latest(conn, origin)
        assert latest is not None
        _check_extends(tree, size, latest.checkpoint)
    return len(origins)


def inclusion_proof(ledger: Ledger, sequence: int, checkpoint: SignedCheckpoint) -> TlogProof:
    """The proof that event ``sequence`` is in the tree of ``checkpoint``, carrying the
    event's chain input as its extra data."""
    size = checkpoint.checkpoint.size
    if not 1 <= sequence <= size:
        raise InvalidInputError(
            f"event {sequence} is not in the checkpoint of size {size}"
            + (": issue a newer checkpoint" if sequence > size else "")
        )
    # Events up to the checkpoint's size never change: no snapshot is needed.
    with ledger.reading() as conn:
        row = (
            conn.execute(sa.select(events).where(events.c.sequence == sequence)).mappings().first()
        )
        if row is None:
            raise NotFoundError(f"the log has no event {sequence}")
        data = chain_input(row["previous_digest"], EventHeader.from_row(row))
        tree = LogTree(conn)
        tree.prefetch(lambda: (tree.leaf(sequence - 1), tree.inclusion(sequence - 1, size)))
        leaf = tree.leaf(sequence - 1)
        if leaf != merkle.leaf_hash(data):
            raise EventLogTamperedError(sequence, "leaf hash does not match the chain input")
        path = tree.inclusion(sequence - 1, size)
    root = checkpoint.checkpoint.root
    if not merkle.verify_inclusion(leaf, sequence - 1, size, path, root):
        raise EventLogTamperedError(
            sequence,
            f"the log no longer gives the root signed in checkpoint {checkpoint.checkpoint.origin}"
            f" of size {size}: history was rewritten",
        )
    return TlogProof(sequence - 1, tuple(path), checkpoint.note, extra=data)


def event_payload(conn: sa.Connection, sequence: int) -> bytes:
    """The stored CBOR payload of event ``sequence``, checked against its digest."""
    row = conn.execute(
        sa.select(events.c.payload, events.c.payload_digest).where(events.c.sequence == sequence)
    ).first()
    if row is None:
        raise NotFoundError(f"the log has no event {sequence}")
    payload = bytes(row.payload)
    if codec.payload_digest(payload) != row.payload_digest:
        raise EventLogTamperedError(sequence, "payload does not match its payload digest")
    return payload


def registration_sequence(conn: sa.Connection, package_id: object) -> int:
    """The sequence of the event that registered package ``package_id``."""
    found = conn.execute(
        sa.select(artifact_packages.c.event_sequence).where(
            artifact_packages.c.package_id == package_id
        )
    ).scalar()
    if found is None:
        raise NotFoundError(f"no package has id {package_id}")
    return int(found)


def consistency(ledger: Ledger, old_note: str, verifier: NoteVerifier) -> Consistency:
    """Check that the signed checkpoint ``old_note`` (verified with ``verifier``) is a
    prefix of the latest stored checkpoint of its origin, and prove it.

    ``CheckpointError`` if the note does not verify; ``IntegrityError`` naming what was
    found if the log was truncated or rewritten since the old checkpoint.
    """
    old = Checkpoint.parse(verifier.verify(old_note))
    if old.origin != verifier.name:
        raise CheckpointError(
            f"the checkpoint's origin {old.origin!r} is not the key's {verifier.name!r}"
        )
    with ledger.reading(snapshot=True) as conn:
        latest = _latest(conn, old.origin)
        if latest is None:
            raise NotFoundError(f"this registry has issued no checkpoint of log {old.origin!r}")
        tree = LogTree(conn)
        _check_extends(tree, EventLog().head(conn), old)
        new = latest.checkpoint
        if new.size < old.size:
            raise IntegrityError(
                f"the latest checkpoint (size {new.size}) is older than the one given "
                f"(size {old.size}): issue a new checkpoint"
            )
        proof = tree.consistency(old.size, new.size) if old.size else []
    if old.size and not merkle.verify_consistency(old.size, new.size, old.root, new.root, proof):
        raise IntegrityError(
            f"the log's checkpoint of size {new.size} is not consistent with the one of "
            f"size {old.size}"
        )
    return Consistency(old, latest, tuple(proof))


def _check_extends(tree: LogTree, size: int, checkpoint: Checkpoint) -> None:
    """``EventLogTamperedError`` unless the log of ``size`` events extends ``checkpoint``."""
    if size < checkpoint.size:
        raise EventLogTamperedError(
            size + 1,
            f"the log ends at event {size} but checkpoint {checkpoint.origin} signed "
            f"{checkpoint.size} events: its tail was removed",
        )
    try:
        root = tree.root(checkpoint.size)
    except IntegrityError as exc:
        raise EventLogTamperedError(size, f"the log's tree cannot be computed: {exc}") from exc
    if root != checkpoint.root:
        raise EventLogTamperedError(
            checkpoint.size,
            f"the first {checkpoint.size} events do not give the root signed in checkpoint "
            f"{checkpoint.origin}: history was rewritten",
        )


def _latest(conn: sa.Connection, origin: str | None) -> SignedCheckpoint | None:
    query = sa.select(log_checkpoints).order_by(log_checkpoints.c.size.desc()).limit(1)
    if origin is not None:
        query = query.where(log_checkpoints.c.origin == origin)
    row = conn.execute(query).mappings().first()
    if row is None:
        return None
    note: str = row["note"]
    checkpoint = Checkpoint.parse(note.rpartition("\n\n")[0] + "\n")
    if (checkpoint.origin, checkpoint.size, checkpoint.root) != (
        row["origin"],
        row["size"],
        bytes(row["root"]),
    ):
        raise IntegrityError(
            f"stored checkpoint {row['origin']} at size {row['size']} differs from its note"
        )
    return SignedCheckpoint(checkpoint, note, row["issued_at"])
