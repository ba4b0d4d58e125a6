"""Checkpoints as C2SP signed notes: the spec's example verifier key, round trips, and
every alteration refused naming what failed."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from artifactstore_core.domain import merkle
from artifactstore_core.domain.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    key_id,
)
from artifactstore_core.errors import InvalidInputError

#: The verifier key of C2SP signed-note's example: its key id derives from name and key.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner("registry.example/log", Ed25519PrivateKey.generate())


def test_the_specs_verifier_key_parses_and_its_key_id_derives() -> None:
    verifier = NoteVerifier.parse(SPEC_VKEY)
    assert verifier.name == "example.com/foo"
    assert key_id(verifier.name, verifier.public_key).hex() == "530d903a"
    with pytest.raises(InvalidInputError, match="key id 530d903b does not match"):
        NoteVerifier.parse(SPEC_VKEY.replace("530d903a", "530d903b"))


def test_a_signed_checkpoint_round_trips(signer: NoteSigner) -> None:
    head = merkle.root([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])
    checkpoint = Checkpoint("registry.example/log", 2, head)
    note = signer.sign(checkpoint.to_text())
    assert note.startswith("registry.example/log\n2\n")
    assert "\n\n\u2014 registry.example/log " in note
    verifier = NoteVerifier.parse(signer.verifier_key)
    assert Checkpoint.parse(verifier.verify(note)) == checkpoint
    # Another key's signature line is ignored; a second signature by ours still verifies.
    other = NoteSigner("witness.example", Ed25519PrivateKey.generate())
    cosigned = note + other.sign(checkpoint.to_text()).split("\n\n", 1)[1]
    assert verifier.verify(cosigned) == checkpoint.to_text()


def test_altered_notes_are_refused_naming_what_failed(signer: NoteSigner) -> None:
    checkpoint = Checkpoint("registry.example/log", 7, bytes(32))
    note = signer.sign(checkpoint.to_text())
    verifier = NoteVerifier.parse(signer.verifier_key)
    with pytest.raises(CheckpointError, match="does not verify"):
        verifier.verify(note.replace("\n7\n", "\n8\n"))
    with pytest.raises(CheckpointError, match="no signature by key"):
        NoteVerifier.parse(
            NoteSigner("registry.example/log", Ed25519PrivateKey.generate()).verifier_key
        ).verify(note)
    with pytest.raises(CheckpointError, match="no blank line"):
        verifier.verify(checkpoint.to_text())
    with pytest.raises(CheckpointError, match="malformed signature line"):
        verifier.verify(note.replace("\u2014", "-"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("origin\n12\n", "3 lines"),
        ("origin\n012\n" + "A" * 43 + "=\n", "size '012' is not a decimal"),
        ("origin\n-1\n" + "A" * 43 + "=\n", "size '-1'"),
        ("origin\n1\nnot base64\n", "root 'not base64' is not a base64 SHA-256"),
        ("\n1\n" + "A" * 43 + "=\n", "origin line is empty"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.parse(text)
