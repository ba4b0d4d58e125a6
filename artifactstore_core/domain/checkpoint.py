"""Transparency-log checkpoints as C2SP signed notes (Ed25519).

A checkpoint (C2SP tlog-checkpoint) is the note text ``<origin>\\n<size>\\n<base64
root>\\n``. A signed note (C2SP signed-note) is that text, a blank line, and one line
per signature: ``— <key name> <base64(4-byte key id ‖ signature)>``. An Ed25519 key's
id is the first 4 bytes of ``SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)``, and its
verifier key reads ``<name>+<hex key id>+<base64(0x01 ‖ public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from artifactstore_core.errors import CheckpointError, InvalidInputError

ED25519 = 0x01
_DASH = "\u2014"  # the em dash that starts a signature line
MAX_SIGNATURES = 100


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte id of Ed25519 key ``public_key`` named ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise InvalidInputError(f"invalid key name {name!r}: no spaces or '+', not empty")
    return name


@dataclass(frozen=True)
class Checkpoint:
    """The state of a log: ``size`` entries whose RFC 9162 tree head is ``root``."""

    origin: str
    size: int
    root: bytes

    def to_text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """The checkpoint a note's text holds; ``CheckpointError`` names the bad line."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise CheckpointError(
                "a checkpoint is 3 lines (origin, size, root), each ending in \\n"
            )
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin:
            raise CheckpointError("the checkpoint's origin line is empty")
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise CheckpointError(f"the checkpoint's size {size[:40]!r} is not a decimal number")
        try:
            digest = base64.b64decode(root, validate=True)
        except binascii.Error:
            digest = b""
        if len(digest) != 32:
            raise CheckpointError(f"the checkpoint's root {root[:60]!r} is not a base64 SHA-256")
        return cls(origin, int(size), digest)


class Ed25519Signing(Protocol):
    """What signing a note needs of a key: ``Ed25519PrivateKey`` has it, and so can an
    adapter over a key held elsewhere (a KMS)."""

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> Ed25519PublicKey: ...


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint as a registry stores it: the state, the signed note, when issued."""

    checkpoint: Checkpoint
    note: str
    issued_at: dt.datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "origin": self.checkpoint.origin,
            "size": self.checkpoint.size,
            "root": base64.b64encode(self.checkpoint.root).decode(),
            "issued_at": self.issued_at.isoformat(),
            "note": self.note,
        }


@dataclass(frozen=True)
class NoteSigner:
    """Signs notes with an Ed25519 key under ``name``."""

    name: str
    private_key: Ed25519PrivateKey | Ed25519Signing

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def verifier_key(self) -> str:
        """The text a verifier is given: ``<name>+<hex key id>+<base64(0x01 ‖ key)>``."""
        encoded = base64.b64encode(bytes([ED25519]) + self.public_key).decode()
        return f"{_check_name(self.name)}+{key_id(self.name, self.public_key).hex()}+{encoded}"

    def sign(self, text: str) -> str:
        """``text`` (ending in a newline) as a signed note."""
        if not text.endswith("\n"):
            raise InvalidInputError("a note's text must end with a newline")
        signature = self.private_key.sign(text.encode())
        blob = base64.b64encode(key_id(self.name, self.public_key) + signature).decode()
        return f"{text}\n{_DASH} {_check_name(self.name)} {blob}\n"


@dataclass(frozen=True)
class NoteVerifier:
    """Verifies notes signed by one Ed25519 key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, verifier_key: str) -> NoteVerifier:
        """The verifier ``<name>+<hex key id>+<base64(0x01 ‖ key)>`` describes."""
        parts = verifier_key.strip().split("+", 2)  # base64 may hold "+"
        if len(parts) != 3:
            raise InvalidInputError(f"invalid verifier key {verifier_key[:80]!r}: want name+id+key")
        name, hex_id, encoded = parts
        try:
            raw, wanted = base64.b64decode(encoded, validate=True), bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise InvalidInputError(f"invalid verifier key {verifier_key[:80]!r}") from None
        if len(raw) != 33 or raw[0] != ED25519:
            raise InvalidInputError(f"verifier key {name!r} is not an Ed25519 key")
        if key_id(_check_name(name), raw[1:]) != wanted:
            raise InvalidInputError(
                f"verifier key {name!r}: key id {hex_id} does not match the key"
            )
        return cls(name, wanted, raw[1:])

    def verify(self, note: str) -> str:
        """The text of ``note`` once a signature by this key verifies on it; otherwise
        ``CheckpointError`` says why (no signature by this key, or a bad one)."""
        text, sep, signatures = note.rpartition("\n\n")
        if not sep or not note.endswith("\n"):
            raise CheckpointError("malformed note: no blank line before its signatures")
        lines = signatures[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise CheckpointError(
                f"the note has {len(lines)} signature lines (max {MAX_SIGNATURES})"
            )
        message = (text + "\n").encode()
        for line in lines:
            dash, _, rest = line.partition(" ")
            name, _, encoded = rest.partition(" ")
            if dash != _DASH or not encoded:
                raise CheckpointError(f"malformed signature line {line[:80]!r}")
            if name != self.name:
                continue  # verifiers ignore the signatures of keys they do not know
            try:
                blob = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise CheckpointError(f"signature of {name!r} is not base64") from None
            if blob[:4] != self.key_id:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(self.public_key).verify(blob[4:], message)
            except InvalidSignature:
                raise CheckpointError(f"the signature of {name!r} does not verify") from None
            return text + "\n"
        raise CheckpointError(f"the note has no signature by key {self.name!r}")
