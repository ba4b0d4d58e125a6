"""Offline inclusion proofs in the C2SP ``tlog-proof@v1`` text format.

::

    c2sp.org/tlog-proof@v1
    extra <base64 of the leaf's data>      (optional)
    index <leaf index>
    <base64 hash>                          (the audit path, the leaf's sibling first)
    ...
    <blank line>
    <the signed checkpoint note, verbatim>

Here the extra data is the event's chain input, so a verifier holding only this file and
the log's verifier key can check which event the leaf is and that the log's signed
checkpoint includes it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from artifactstore_core.domain import merkle
from artifactstore_core.domain.checkpoint import Checkpoint, NoteVerifier
from artifactstore_core.errors import CheckpointError

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PATH = 64  # a tree of 2**64 leaves needs no more


@dataclass(frozen=True)
class TlogProof:
    """Leaf ``index`` (with data ``extra``) is in the tree of the signed ``checkpoint_note``."""

    index: int
    path: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def to_text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {base64.b64encode(self.extra).decode()}")
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode() for h in self.path]
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def parse(cls, text: str) -> TlogProof:
        """The proof ``text`` holds; ``CheckpointError`` names the malformed line."""
        head, sep, note = text.partition("\n\n")
        lines = head.split("\n")
        if not sep or lines[0] != HEADER:
            raise CheckpointError(f"not a {HEADER} proof: it must start with that line")
        rest, extra = lines[1:], None
        if rest and rest[0].startswith("extra "):
            extra = _b64(rest.pop(0)[6:], "extra data")
        if not rest or not rest[0].startswith("index ") or not rest[0][6:].isdigit():
            raise CheckpointError("the proof has no 'index <n>' line after its header")
        index = int(rest[0][6:])
        if len(rest) - 1 > MAX_PATH:
            raise CheckpointError(f"the proof's path has {len(rest) - 1} hashes (max {MAX_PATH})")
        path = tuple(_b64(line, f"path hash {n}") for n, line in enumerate(rest[1:], 1))
        if any(len(h) != 32 for h in path):
            raise CheckpointError("a path hash of the proof is not a SHA-256 digest")
        return cls(index, path, note, extra)

    def verify(self, verifier: NoteVerifier, *, leaf: bytes | None = None) -> Checkpoint:
        """The checkpoint, once its signature verifies and the path leads from the leaf
        (``leaf``, else the hash of ``extra``) to its root; ``CheckpointError`` otherwise."""
        checkpoint = Checkpoint.parse(verifier.verify(self.checkpoint_note))
        if checkpoint.origin != verifier.name:
            raise CheckpointError(
                f"the checkpoint's origin {checkpoint.origin!r} is not the key's {verifier.name!r}"
            )
        if leaf is None:
            if self.extra is None:
                raise CheckpointError("the proof carries no leaf data and no leaf hash was given")
            leaf = merkle.leaf_hash(self.extra)
        if not merkle.verify_inclusion(
            leaf, self.index, checkpoint.size, self.path, checkpoint.root
        ):
            raise CheckpointError(
                f"the inclusion proof of leaf {self.index} does not lead to the root of the "
                f"checkpoint of size {checkpoint.size}"
            )
        return checkpoint


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise CheckpointError(f"the proof's {what} is not base64") from None
